/**
 * Storage caps: a per-device cap on unconsumed one-time bundles and a per-recipient-device cap on
 * pending envelopes. Both reject the whole statement with a clear error (KS507); nothing is ever
 * dropped silently. Each check runs once per statement over the rows it inserted, under a
 * per-device advisory lock, so concurrent writers cannot overshoot (READ COMMITTED: the count
 * after the lock sees every committed row).
 */

/** Section - settings */

insert into keyserver.settings (key, value, description, client_visible) values
  ('prekey_device_cap', '200', 'Most unconsumed unexpired one-time bundles one device may hold.', true),
  ('dm_pending_cap', '1000', 'Most pending (unacknowledged, unexpired) envelopes one recipient device may hold.', true)
on conflict (key) do nothing;

/** Section - prekey stock cap */

-- After inserting bundles: each touched device must stay within prekey_device_cap.
create or replace function keyserver.enforce_prekey_device_cap()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  r record;
  v_cap integer := keyserver.setting_int('prekey_device_cap');
  v_count integer;
begin
  for r in select distinct n.agent_id, n.device_id from new_rows n where n.kind = 'one_time' order by 1, 2 loop
    perform pg_advisory_xact_lock(hashtextextended('keyserver.prekeys:' || r.agent_id || ':' || r.device_id, 0));
    select count(*) into v_count from public.signal_prekey_bundles_v2 b
    where b.agent_id = r.agent_id and b.device_id = r.device_id
      and b.consumed = false and b.expires_at > now() and b.kind = 'one_time';
    if v_count > v_cap then
      raise exception using errcode = 'KS507', message = 'prekey_cap_exceeded',
        detail = format('device %s of agent %s would hold %s unconsumed one-time bundles; the cap is %s',
                        r.device_id, r.agent_id, v_count, v_cap),
        hint = 'Publish fewer bundles; nothing from this batch was stored.';
    end if;
  end loop;
  return null;
end;
$$;
comment on function keyserver.enforce_prekey_device_cap() is
  'After insert (statement) on signal_prekey_bundles_v2: KS507 prekey_cap_exceeded when a device would exceed prekey_device_cap unconsumed one-time bundles.';

create trigger prekey_bundles_v2_device_cap
  after insert on public.signal_prekey_bundles_v2
  referencing new table as new_rows
  for each statement execute function keyserver.enforce_prekey_device_cap();

/** Section - pending envelope cap */

-- After inserting envelopes: each recipient device must stay within dm_pending_cap.
create or replace function keyserver.enforce_dm_pending_cap()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  r record;
  v_cap integer := keyserver.setting_int('dm_pending_cap');
  v_count integer;
begin
  for r in select distinct n.to_agent_id, n.to_device_id from new_rows n order by 1, 2 loop
    perform pg_advisory_xact_lock(hashtextextended('keyserver.inbox:' || r.to_agent_id || ':' || r.to_device_id, 0));
    select count(*) into v_count from public.dm_envelopes e
    where e.to_agent_id = r.to_agent_id and e.to_device_id = r.to_device_id and e.expires_at > now();
    if v_count > v_cap then
      raise exception using errcode = 'KS507', message = 'inbox_full',
        detail = format('device %s of agent %s would hold %s pending envelopes; the cap is %s',
                        r.to_device_id, r.to_agent_id, v_count, v_cap),
        hint = 'The recipient must acknowledge envelopes first; nothing from this batch was stored.';
    end if;
  end loop;
  return null;
end;
$$;
comment on function keyserver.enforce_dm_pending_cap() is
  'After insert (statement) on dm_envelopes: KS507 inbox_full when a recipient device would exceed dm_pending_cap pending envelopes.';

create trigger dm_envelopes_pending_cap
  after insert on public.dm_envelopes
  referencing new table as new_rows
  for each statement execute function keyserver.enforce_dm_pending_cap();

revoke all on function keyserver.enforce_prekey_device_cap(), keyserver.enforce_dm_pending_cap()
  from public, anon, authenticated, service_role;
