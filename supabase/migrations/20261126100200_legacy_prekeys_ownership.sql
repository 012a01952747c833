/**
 * Legacy prekeys (V1): replace the never-true policies with the ownership check.
 *
 * During the dual-read window a legacy client whose agent id is claimed can still maintain its
 * V1 bundle, and only its owner can: every write that names an agent_id checks that the agent
 * belongs to the caller through public.agents. anon loses the Data API access production
 * granted it by default. The table is retired by 20261126120000_retire_prekeys_v1.sql.
 */

/** Section - policies */

drop policy if exists "Users can read own prekey bundles" on public.signal_prekey_bundles;
drop policy if exists "Users can insert own prekey bundles" on public.signal_prekey_bundles;
drop policy if exists "Users can update own prekey bundles" on public.signal_prekey_bundles;
drop policy if exists "Users can delete own prekey bundles" on public.signal_prekey_bundles;

revoke all on table public.signal_prekey_bundles from anon, authenticated;
grant select, delete on table public.signal_prekey_bundles to authenticated;
grant insert (agent_id, registration_id, identity_key, bundle_data) on table public.signal_prekey_bundles to authenticated;
grant update (registration_id, identity_key, bundle_data, updated_at) on table public.signal_prekey_bundles to authenticated;

create policy signal_prekey_bundles_select_owner on public.signal_prekey_bundles
  for select to authenticated
  using (agent_id in (select a.agent_id from public.agents a where a.user_id = (select auth.uid())));

create policy signal_prekey_bundles_insert_owner on public.signal_prekey_bundles
  for insert to authenticated
  with check (agent_id in (select a.agent_id from public.agents a where a.user_id = (select auth.uid())));

create policy signal_prekey_bundles_update_owner on public.signal_prekey_bundles
  for update to authenticated
  using (agent_id in (select a.agent_id from public.agents a where a.user_id = (select auth.uid())))
  with check (agent_id in (select a.agent_id from public.agents a where a.user_id = (select auth.uid())));

create policy signal_prekey_bundles_delete_owner on public.signal_prekey_bundles
  for delete to authenticated
  using (agent_id in (select a.agent_id from public.agents a where a.user_id = (select auth.uid())));

comment on table public.signal_prekey_bundles is
  'LEGACY (V1) prekey bundles, one per agent, kept for the dual-read window. Owner access through public.agents; read for others only by the gated function while prekey_read_mode = dual_read.';
