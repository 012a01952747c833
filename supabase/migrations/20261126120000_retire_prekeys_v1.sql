/**
 * Retire the legacy prekey table (V1): end of the V1 -> V2 window.
 *
 * Refuses to run while legacy rows exist and prekey_read_mode is still dual_read: the cutover
 * (setting v2_only, watched through keyserver.monitor_legacy_v1_only) must come first, so a
 * deploy can never silently cut legacy-only agents off. On a database without legacy rows (a
 * fresh project) it simply applies.
 *
 * Then: prekey_read_mode is pinned to v2_only, the gated function stops reading V1, and every
 * API role loses access to the table. The rows stay (for audit and so legacy agent ids stay
 * protected from claims: keyserver.agents_guard_claim still consults them); a later migration
 * may drop the table.
 */

/** Section - guard */

do $$
begin
  if exists (select 1 from public.signal_prekey_bundles)
     and keyserver.setting_text('prekey_read_mode') <> 'v2_only' then
    raise exception using errcode = 'KS503',
      message = 'refusing to retire signal_prekey_bundles (V1): legacy rows exist and prekey_read_mode is still dual_read',
      hint = 'Cut over first (update keyserver.settings set value = ''"v2_only"'' where key = ''prekey_read_mode''), check keyserver.monitor_legacy_v1_only, then apply this migration again.';
  end if;
end
$$;

/** Section - pin the read mode */

update keyserver.settings set value = '"v2_only"', updated_at = now() where key = 'prekey_read_mode';
alter table keyserver.settings add constraint settings_prekey_read_mode_retired
  check (key <> 'prekey_read_mode' or value = '"v2_only"'::jsonb);
update keyserver.settings
set description = 'Pinned to v2_only: V1 was retired by 20261126120000_retire_prekeys_v1.'
where key = 'prekey_read_mode';

/** Section - stop reading V1 */

-- After retirement the gated function never falls back to V1.
create or replace function keyserver.read_legacy_v1_bundle(p_agent_id text, p_device_id integer)
returns jsonb
language sql
immutable
security definer
set search_path = ''
as $$ select '[]'::jsonb $$;
comment on function keyserver.read_legacy_v1_bundle(text, integer) is
  'Retired: V1 is no longer read; always [].';
revoke all on function keyserver.read_legacy_v1_bundle(text, integer) from public, anon, authenticated, service_role;

/** Section - revoke access */

-- The cutover view has served its purpose (and could no longer read the table).
drop view if exists keyserver.monitor_legacy_v1_only;

revoke all on table public.signal_prekey_bundles from public, anon, authenticated, service_role;
comment on table public.signal_prekey_bundles is
  'RETIRED legacy (V1) prekey bundles: no API role has access. Rows kept for audit and to keep legacy agent ids unclaimable without proof.';
