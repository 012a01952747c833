-- Production-like data, loaded right after the baseline migrations (as they run in production
-- today) and before any later migration, so every upgrade is applied to rows that exist.
--   ann, ben, cat: users; community "prod cafe" (ann owner, ben member, cat removed) now at
--   epoch 2 after a hard rotation; shares and blobs without devices (the old format); legacy
--   V1 bundles, one of them under an agent id equal to its user id (the only kind of row the
--   production policy ever let a client write).
\set ON_ERROR_STOP on
begin;

insert into auth.users (id, email, aud, role) values
  ('00000000-0000-4000-b000-0000000000a1', 'ann@prod.test', 'authenticated', 'authenticated'),
  ('00000000-0000-4000-b000-0000000000b2', 'ben@prod.test', 'authenticated', 'authenticated'),
  ('00000000-0000-4000-b000-0000000000c3', 'cat@prod.test', 'authenticated', 'authenticated');

insert into public.communities (id, name, created_by, created_at)
values ('00000000-0000-4000-b000-00000000cafe', 'prod cafe', '00000000-0000-4000-b000-0000000000a1', now() - interval '30 days');
insert into public.community_members (community_id, user_id, role, joined_at, removed_at) values
  ('00000000-0000-4000-b000-00000000cafe', '00000000-0000-4000-b000-0000000000b2', 'member', now() - interval '20 days', null),
  ('00000000-0000-4000-b000-00000000cafe', '00000000-0000-4000-b000-0000000000c3', 'member', now() - interval '20 days', now() - interval '10 days');
update public.community_sender_key_state
set key_id = 2, previous_key_id = 1, rotation_kind = 'hard', rotated_at = now() - interval '10 days'
where community_id = '00000000-0000-4000-b000-00000000cafe';

insert into public.community_sender_key_shares
  (community_id, key_id, from_user_id, from_agent_id, to_user_id, to_agent_id, message_type, encrypted_share, created_at)
values
  ('00000000-0000-4000-b000-00000000cafe', 2, '00000000-0000-4000-b000-0000000000a1', 'prod-agent-ann',
   '00000000-0000-4000-b000-0000000000b2', 'prod-agent-ben', 3, '\x0a0a', now() - interval '10 days'),
  ('00000000-0000-4000-b000-00000000cafe', 2, '00000000-0000-4000-b000-0000000000b2', 'prod-agent-ben',
   '00000000-0000-4000-b000-0000000000a1', 'prod-agent-ann', 2, '\x0b0b', now() - interval '10 days');

insert into public.community_message_blobs (community_id, key_id, sender_user_id, sender_agent_id, ciphertext, created_at) values
  ('00000000-0000-4000-b000-00000000cafe', 2, '00000000-0000-4000-b000-0000000000a1', 'prod-agent-ann', '\xaaaa', now() - interval '5 days'),
  ('00000000-0000-4000-b000-00000000cafe', 2, '00000000-0000-4000-b000-0000000000b2', 'prod-agent-ben', '\xbbbb', now() - interval '4 days');

insert into public.signal_prekey_bundles (agent_id, registration_id, identity_key, bundle_data) values
  ('prod-agent-ann', 101, 'BWFubg==', '{"legacy": "ann"}'),
  ('prod-agent-ben', 102, 'BWJlbg==', '{"legacy": "ben"}'),
  ('prod-agent-gone', 103, 'BWdvbmU=', '{"legacy": "gone"}'),
  ('00000000-0000-4000-b000-0000000000c3', 104, 'BWNhdA==', '{"legacy": "cat"}');

commit;
