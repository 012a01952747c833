/**
 * The claim's row update without per-row work that cannot apply to it.
 *
 * Every claim marks one bundle consumed (UPDATE ... SET consumed, consumed_at). On each of those
 * updates PostgreSQL 15 evaluated all six CHECK constraints of the table, and it parses and
 * prepares every CHECK expression again for each UPDATE statement it runs: about 50 us of the
 * claim's 170 us row update in a loop of claims. One of them,
 * `octet_length(bundle_json::text) <= 8192`, also de-TOASTed and printed the ~4 KB bundle the
 * claim does not change. And the keep_consumed trigger, a PL/pgSQL call, ran for every updated
 * row although it acts only when a bundle would be un-consumed or is consumed without a time.
 *
 * Now the same rules hold, checked only by the writes that can break them:
 *
 *   - device id, key id, kind, bundle shape and expiry are checked by a trigger on insert and on
 *     updates that name one of those columns, raising what the CHECK raised (SQLSTATE 23514, the
 *     same constraint names). An update that does not name a column cannot change it.
 *   - consumed = (consumed_at is not null) and "consumed stays consumed" are checked by
 *     keep_consumed, which now runs only for the rows its WHEN condition selects (evaluated in
 *     the executor, no function call otherwise): a claim sets both columns consistently and
 *     never fires it.
 */

/** Section - the row rules, on writes that can break them */

create or replace function keyserver.prekey_bundles_v2_check_row()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_broken text;
begin
  v_broken := case
    when new.device_id not between 1 and 127 then 'signal_prekey_bundles_v2_device_id_check'
    when new.key_id not between 0 and 16777215 then 'signal_prekey_bundles_v2_key_id_check'
    when new.kind not in ('one_time', 'last_resort') then 'signal_prekey_bundles_v2_kind_check'
    when jsonb_typeof(new.bundle_json) is distinct from 'object'
         or octet_length(new.bundle_json::text) > 8192 then 'signal_prekey_bundles_v2_bundle_shape'
    when not (new.expires_at > new.created_at and new.expires_at <= new.created_at + interval '400 days')
      then 'signal_prekey_bundles_v2_expiry'
  end;
  if v_broken is not null then
    raise exception using errcode = 'check_violation', constraint = v_broken,
      message = format('new row for relation "signal_prekey_bundles_v2" violates check constraint "%s"', v_broken);
  end if;
  return new;
end;
$$;
comment on function keyserver.prekey_bundles_v2_check_row() is
  'Before insert, or update of device_id, key_id, kind, bundle_json, created_at or expires_at, on signal_prekey_bundles_v2: device 1..127, key id 0..2^24-1, kind, bundle a JSON object of at most 8192 bytes as text, expiry after creation and within 400 days (23514, named as the CHECK constraints they replace).';
revoke all on function keyserver.prekey_bundles_v2_check_row() from public, anon, authenticated, service_role;

-- Named to fire after prekey_bundles_v2_before_insert, which sets created_at and the default
-- expiry (triggers fire in name order).
create trigger prekey_bundles_v2_check_row
  before insert or update of device_id, key_id, kind, bundle_json, created_at, expires_at
  on public.signal_prekey_bundles_v2
  for each row execute function keyserver.prekey_bundles_v2_check_row();

/** Section - consumed stays consumed, and has a time exactly when consumed */

create or replace function keyserver.prekey_bundles_v2_keep_consumed()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if old.consumed and not new.consumed then
    raise exception using errcode = 'KS409', message = 'bundle_already_consumed',
      detail = format('bundle %s of agent %s device %s was consumed at %s', old.key_id, old.agent_id, old.device_id, old.consumed_at);
  end if;
  if new.consumed and new.consumed_at is null then
    new.consumed_at := now();
  end if;
  if not new.consumed and new.consumed_at is not null then
    raise exception using errcode = 'check_violation', constraint = 'signal_prekey_bundles_v2_consumed_at',
      message = 'new row for relation "signal_prekey_bundles_v2" violates check constraint "signal_prekey_bundles_v2_consumed_at"';
  end if;
  return new;
end;
$$;
comment on function keyserver.prekey_bundles_v2_keep_consumed() is
  'Before update on signal_prekey_bundles_v2 (only when it can act): refuses to un-consume a bundle (KS409 bundle_already_consumed), stamps consumed_at when consumed without one, refuses consumed_at on an unconsumed bundle (23514).';

drop trigger prekey_bundles_v2_keep_consumed on public.signal_prekey_bundles_v2;
create trigger prekey_bundles_v2_keep_consumed
  before update on public.signal_prekey_bundles_v2
  for each row
  when ((old.consumed and not new.consumed)
        or (new.consumed and new.consumed_at is null)
        or (not new.consumed and new.consumed_at is not null))
  execute function keyserver.prekey_bundles_v2_keep_consumed();

/** Section - the CHECK constraints they replace */

alter table public.signal_prekey_bundles_v2
  drop constraint signal_prekey_bundles_v2_device_id_check,
  drop constraint signal_prekey_bundles_v2_key_id_check,
  drop constraint signal_prekey_bundles_v2_kind_check,
  drop constraint signal_prekey_bundles_v2_bundle_shape,
  drop constraint signal_prekey_bundles_v2_consumed_at,
  drop constraint signal_prekey_bundles_v2_expiry;
