/**
 * The claim's row update without per-row work that cannot apply to it.
 *
 * Every claim marks one bundle consumed (UPDATE ... SET consumed, consumed_at). Two things ran
 * on each of those updates that only matter for other writes:
 *
 *   - the bundle-shape CHECK, `octet_length(bundle_json::text) <= 8192`: PostgreSQL evaluates
 *     every CHECK constraint on every update, whichever columns changed, so each claim
 *     de-TOASTed and printed the ~3 KB bundle it does not change;
 *   - the keep_consumed trigger, a PL/pgSQL call per updated row that acts only when a bundle
 *     would be un-consumed or is consumed without a time.
 *
 * Now the same rules hold, checked only when they can be broken:
 *
 *   - the shape rule moves to a trigger that fires on insert and on updates that name
 *     bundle_json, and raises what the CHECK raised (SQLSTATE 23514, constraint
 *     signal_prekey_bundles_v2_bundle_shape); an update that does not name the column cannot
 *     change it;
 *   - keep_consumed runs only for the rows its WHEN condition selects (evaluated in the
 *     executor, no function call otherwise), with the same errors and defaults.
 */

/** Section - the bundle shape */

create or replace function keyserver.prekey_bundles_v2_check_shape()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if jsonb_typeof(new.bundle_json) is distinct from 'object'
     or octet_length(new.bundle_json::text) > 8192 then
    raise exception using errcode = 'check_violation',
      constraint = 'signal_prekey_bundles_v2_bundle_shape',
      message = 'new row for relation "signal_prekey_bundles_v2" violates check constraint "signal_prekey_bundles_v2_bundle_shape"',
      detail = 'bundle_json must be a JSON object of at most 8192 bytes as text';
  end if;
  return new;
end;
$$;
comment on function keyserver.prekey_bundles_v2_check_shape() is
  'Before insert or update of bundle_json on signal_prekey_bundles_v2: a JSON object of at most 8192 bytes as text (23514, constraint signal_prekey_bundles_v2_bundle_shape).';
revoke all on function keyserver.prekey_bundles_v2_check_shape() from public, anon, authenticated, service_role;

-- Named to fire after prekey_bundles_v2_before_insert (triggers fire in name order).
create trigger prekey_bundles_v2_check_shape
  before insert or update of bundle_json on public.signal_prekey_bundles_v2
  for each row execute function keyserver.prekey_bundles_v2_check_shape();

alter table public.signal_prekey_bundles_v2 drop constraint signal_prekey_bundles_v2_bundle_shape;

/** Section - consumed stays consumed */

drop trigger prekey_bundles_v2_keep_consumed on public.signal_prekey_bundles_v2;
create trigger prekey_bundles_v2_keep_consumed
  before update on public.signal_prekey_bundles_v2
  for each row
  when ((old.consumed and not new.consumed) or (new.consumed and new.consumed_at is null))
  execute function keyserver.prekey_bundles_v2_keep_consumed();
