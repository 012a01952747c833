/**
 * Blobs: epoch-scheme messages are stored again.
 *
 * 20261126100800 made sender_chain_id and sender_chain_iteration required for every new blob, but
 * an epoch-scheme blob (version 1: one AES-256-GCM key per epoch, the scheme communities use until
 * their members distribute sender chains) has no chain position, so a current client could no
 * longer post in a community that had not moved to sender chains. New rows must still name the
 * sender device; the chain position is now either both columns (sender-chain blob, unique per
 * chain iteration as before) or neither (epoch-scheme blob). The client fills the columns from
 * the blob's public header (docs/COMMUNITY.md).
 */

alter table public.community_message_blobs
  drop constraint if exists community_message_blobs_sender_chain_required;

alter table public.community_message_blobs
  add constraint community_message_blobs_sender_device_required
    check (sender_device_id is not null) not valid,
  add constraint community_message_blobs_chain_position_complete
    check ((sender_chain_id is null) = (sender_chain_iteration is null)) not valid;

comment on constraint community_message_blobs_chain_position_complete on public.community_message_blobs is
  'Sender-chain blobs carry chain id and iteration, epoch-scheme blobs neither.';
