/**
 * V1 -> V2 window: the read mode setting and the legacy read used by the gated function.
 *
 * prekey_read_mode = 'dual_read': the gated function serves V2 first and, when V2 has nothing
 * for the target agent, the agent's V1 bundle (as device 1, kind legacy_v1).
 * prekey_read_mode = 'v2_only' (the cutover): V1 is no longer read.
 * 20261126120000_retire_prekeys_v1.sql then revokes all access to V1 and pins v2_only.
 */

/** Section - setting */

insert into keyserver.settings (key, value, description, client_visible) values
  ('prekey_read_mode', '"dual_read"',
   'dual_read: the gated function falls back to the legacy V1 bundle when V2 has none; v2_only: V1 is not read (cutover).', false)
on conflict (key) do nothing;

alter table keyserver.settings add constraint settings_prekey_read_mode_values
  check (key <> 'prekey_read_mode' or value in ('"dual_read"'::jsonb, '"v2_only"'::jsonb));

/** Section - legacy read */

-- The V1 bundle of an agent as a one-element list in the gated function's shape, or [] when
-- the mode is v2_only, the agent has no V1 bundle, or a device other than 1 was asked for.
create or replace function keyserver.read_legacy_v1_bundle(p_agent_id text, p_device_id integer)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if keyserver.setting_text('prekey_read_mode') <> 'dual_read' or coalesce(p_device_id, 1) <> 1 then
    return '[]'::jsonb;
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object(
      'device_id', 1,
      'registration_id', l.registration_id,
      'identity_key', l.identity_key,
      'kind', 'legacy_v1',
      'key_id', null,
      'bundle', l.bundle_data))
    from public.signal_prekey_bundles l
    where l.agent_id = p_agent_id), '[]'::jsonb);
end;
$$;
comment on function keyserver.read_legacy_v1_bundle(text, integer) is
  'Internal (gated function): the agent''s V1 bundle as [{device_id: 1, kind: legacy_v1, ...}] while prekey_read_mode = dual_read; [] otherwise.';

revoke all on function keyserver.read_legacy_v1_bundle(text, integer) from public, anon, authenticated, service_role;
