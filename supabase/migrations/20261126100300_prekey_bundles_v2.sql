/**
 * Prekey bundles V2: one row per published bundle, owned by the agent's owner.
 *
 * kind one_time: a bundle carrying a one-time prekey, handed out at most once (consumed).
 * kind last_resort: the device's reusable bundle (last-resort Kyber prekey), served when the
 * one-time stock is empty; at most one unconsumed per device, replaced on upload.
 * key_id is the one-time prekey id (one_time) or the last-resort Kyber prekey id: re-uploading
 * the same key id is a no-op, so publishing is idempotent and a consumed key is never revived.
 *
 * Only the owner inserts, updates and reads its rows (RLS: user_id = auth.uid() and, on insert,
 * an active device of the caller's own agent; the composite foreign key keeps user, agent and
 * device consistent for every writer). Nobody reads other users' rows directly: the gated
 * function (20261126100600) is the only read path for others' keys.
 */

/** Section - table */

-- Published prekey bundles (one-time and last-resort) per agent device.
create table if not exists public.signal_prekey_bundles_v2 (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  agent_id text not null,
  device_id integer not null check (device_id between 1 and 127),
  key_id integer not null check (key_id between 0 and 16777215),
  kind text not null check (kind in ('one_time', 'last_resort')),
  bundle_json jsonb not null
    constraint signal_prekey_bundles_v2_bundle_shape
    check (jsonb_typeof(bundle_json) = 'object' and octet_length(bundle_json::text) <= 8192),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  consumed boolean not null default false,
  consumed_at timestamptz,
  constraint signal_prekey_bundles_v2_consumed_at check (consumed = (consumed_at is not null)),
  constraint signal_prekey_bundles_v2_expiry
    check (expires_at > created_at and expires_at <= created_at + interval '400 days'),
  constraint signal_prekey_bundles_v2_device_fkey foreign key (user_id, agent_id, device_id)
    references public.agent_devices (user_id, agent_id, device_id) on delete cascade,
  constraint signal_prekey_bundles_v2_key unique (agent_id, device_id, kind, key_id)
);
comment on table public.signal_prekey_bundles_v2 is
  'Prekey bundles V2 (one_time | last_resort) per agent device. Owner-only via RLS; others only through keyserver.get_prekey_bundle_for_contact_v1.';

-- The claim path: unconsumed, unexpired bundles of one device in expiry order.
create index if not exists signal_prekey_bundles_v2_claim_idx
  on public.signal_prekey_bundles_v2 (agent_id, device_id, consumed, expires_at);
-- At most one unconsumed last-resort bundle per device.
create unique index if not exists signal_prekey_bundles_v2_last_resort_idx
  on public.signal_prekey_bundles_v2 (agent_id, device_id)
  where kind = 'last_resort' and not consumed;
-- Owner lookups (RLS) and the device foreign key.
create index if not exists signal_prekey_bundles_v2_owner_idx
  on public.signal_prekey_bundles_v2 (user_id, agent_id, device_id);
-- Cleanup: expired unconsumed bundles and consumed bundles past retention.
create index if not exists signal_prekey_bundles_v2_expires_idx
  on public.signal_prekey_bundles_v2 (expires_at) where not consumed;
create index if not exists signal_prekey_bundles_v2_consumed_idx
  on public.signal_prekey_bundles_v2 (consumed_at) where consumed;

/** Section - settings */

insert into keyserver.settings (key, value, description, client_visible) values
  ('prekey_batch_max', '100', 'Most one-time bundles accepted in one publish call.', true),
  ('prekey_low_stock_threshold', '10', 'Below this many unconsumed one-time bundles a device is low on stock.', true),
  ('prekey_one_time_ttl', '"90 days"', 'Default lifetime of a one-time bundle.', true),
  ('prekey_last_resort_ttl', '"180 days"', 'Default lifetime of a last-resort bundle.', true)
on conflict (key) do nothing;

/** Section - triggers */

-- New bundles start unconsumed, stamped now, with the default lifetime of their kind.
create or replace function keyserver.prekey_bundles_v2_before_insert()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  new.created_at := now();
  new.consumed := false;
  new.consumed_at := null;
  if new.expires_at is null then
    new.expires_at := new.created_at + case new.kind
      when 'last_resort' then keyserver.setting_interval('prekey_last_resort_ttl')
      else keyserver.setting_interval('prekey_one_time_ttl') end;
  end if;
  return new;
end;
$$;
comment on function keyserver.prekey_bundles_v2_before_insert() is
  'Before insert on signal_prekey_bundles_v2: created_at = now(), unconsumed, default expiry per kind.';

create trigger prekey_bundles_v2_before_insert
  before insert on public.signal_prekey_bundles_v2
  for each row execute function keyserver.prekey_bundles_v2_before_insert();

-- A consumed bundle stays consumed: the same bundle is never handed out twice.
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
  return new;
end;
$$;
comment on function keyserver.prekey_bundles_v2_keep_consumed() is
  'Before update on signal_prekey_bundles_v2: refuses to un-consume a bundle (KS409 bundle_already_consumed).';

create trigger prekey_bundles_v2_keep_consumed
  before update on public.signal_prekey_bundles_v2
  for each row execute function keyserver.prekey_bundles_v2_keep_consumed();

-- A device whose identity key changed drops its unconsumed bundles (signed by the old key).
create or replace function keyserver.agent_devices_identity_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.identity_key is distinct from old.identity_key then
    delete from public.signal_prekey_bundles_v2 b
    where b.agent_id = new.agent_id and b.device_id = new.device_id and not b.consumed;
  end if;
  return new;
end;
$$;
comment on function keyserver.agent_devices_identity_changed() is
  'After update of identity_key on agent_devices: deletes the device''s unconsumed bundles.';

create trigger agent_devices_identity_changed
  after update of identity_key on public.agent_devices
  for each row execute function keyserver.agent_devices_identity_changed();

revoke all on function keyserver.prekey_bundles_v2_before_insert(), keyserver.prekey_bundles_v2_keep_consumed(),
  keyserver.agent_devices_identity_changed() from public, anon, authenticated, service_role;

/** Section - row level security */

alter table public.signal_prekey_bundles_v2 enable row level security;

revoke all on table public.signal_prekey_bundles_v2 from anon, authenticated;
grant select, delete on table public.signal_prekey_bundles_v2 to authenticated;
grant insert (user_id, agent_id, device_id, key_id, kind, bundle_json, expires_at)
  on table public.signal_prekey_bundles_v2 to authenticated;
grant update (expires_at, consumed, consumed_at) on table public.signal_prekey_bundles_v2 to authenticated;

create policy signal_prekey_bundles_v2_select_owner on public.signal_prekey_bundles_v2
  for select to authenticated
  using (user_id = (select auth.uid()));

-- The owner publishes only for an active device of an agent it owns.
create policy signal_prekey_bundles_v2_insert_owner on public.signal_prekey_bundles_v2
  for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and exists (select 1 from public.agent_devices d
                where d.user_id = (select auth.uid())
                  and d.agent_id = signal_prekey_bundles_v2.agent_id
                  and d.device_id = signal_prekey_bundles_v2.device_id
                  and d.revoked_at is null));

create policy signal_prekey_bundles_v2_update_owner on public.signal_prekey_bundles_v2
  for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));

create policy signal_prekey_bundles_v2_delete_owner on public.signal_prekey_bundles_v2
  for delete to authenticated
  using (user_id = (select auth.uid()));

/** Section - publish and stock (gateway, as authenticated; security invoker) */

-- Stock of the caller's active devices: unconsumed unexpired one-time bundles and last resort.
create or replace function keyserver.prekey_stock(p_agent_id text default null)
returns table (
  agent_id text,
  device_id integer,
  one_time_remaining integer,
  last_resort_present boolean,
  low_stock boolean,
  low_stock_threshold integer
)
language sql
stable
set search_path = ''
as $$
  with threshold as (select keyserver.setting_int('prekey_low_stock_threshold') as n)
  select d.agent_id, d.device_id, s.remaining, lr.present, s.remaining < t.n, t.n
  from public.agent_devices d
  cross join threshold t
  cross join lateral (
    select count(*)::integer as remaining from public.signal_prekey_bundles_v2 b
    where b.agent_id = d.agent_id and b.device_id = d.device_id
      and b.consumed = false and b.expires_at > now() and b.kind = 'one_time') s
  cross join lateral (
    select exists (
      select 1 from public.signal_prekey_bundles_v2 b
      where b.agent_id = d.agent_id and b.device_id = d.device_id
        and b.kind = 'last_resort' and b.consumed = false and b.expires_at > now()) as present) lr
  where d.revoked_at is null
    and (p_agent_id is null or d.agent_id = p_agent_id)
  order by d.agent_id, d.device_id
$$;
comment on function keyserver.prekey_stock(text) is
  'As authenticated: per active device of the caller (optionally one agent), unconsumed one-time bundles left, whether a last-resort bundle is present, and the low-stock flag.';

-- Publishes a batch of one-time bundles and/or a last-resort bundle for one of the caller's devices.
create or replace function keyserver.publish_prekey_bundles(
  p_agent_id text,
  p_device_id integer,
  p_one_time jsonb default '[]'::jsonb,
  p_last_resort jsonb default null
)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_user uuid := (select auth.uid());
  v_batch_max integer := keyserver.setting_int('prekey_batch_max');
  v_items integer;
  v_inserted integer := 0;
  v_conflicts integer := 0;
  v_last_resort text := null;
  v_current_id bigint;
  v_current_key integer;
  v_lr_key integer;
  v_stock record;
begin
  if v_user is null then
    raise exception using errcode = 'KS401', message = 'not_authenticated';
  end if;
  p_one_time := coalesce(p_one_time, '[]'::jsonb);
  if jsonb_typeof(p_one_time) <> 'array' then
    raise exception using errcode = 'KS400', message = 'invalid_argument', detail = 'one_time must be a JSON array';
  end if;
  v_items := jsonb_array_length(p_one_time);
  if v_items > v_batch_max then
    raise exception using errcode = 'KS400', message = 'batch_too_large',
      detail = format('%s one-time bundles in one call; at most %s', v_items, v_batch_max);
  end if;
  if p_last_resort is not null and jsonb_typeof(p_last_resort) <> 'object' then
    raise exception using errcode = 'KS400', message = 'invalid_argument', detail = 'last_resort must be a JSON object';
  end if;
  if exists (select 1 from jsonb_array_elements(p_one_time) e
             where jsonb_typeof(e) <> 'object'
                or jsonb_typeof(e -> 'key_id') is distinct from 'number'
                or jsonb_typeof(e -> 'bundle') is distinct from 'object')
     or (p_last_resort is not null
         and (jsonb_typeof(p_last_resort -> 'key_id') is distinct from 'number'
              or jsonb_typeof(p_last_resort -> 'bundle') is distinct from 'object')) then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'each bundle is {"key_id": <integer>, "bundle": <object>, "expires_at"?: <timestamp>}';
  end if;
  if not exists (select 1 from public.agent_devices d
                 where d.agent_id = p_agent_id and d.device_id = p_device_id and d.revoked_at is null) then
    raise exception using errcode = 'KS403', message = 'device_not_owned',
      detail = 'publish for an active device of an agent you own';
  end if;

  -- One publisher per device at a time (the stock cap counts under the same lock).
  perform pg_advisory_xact_lock(hashtextextended('keyserver.prekeys:' || p_agent_id || ':' || p_device_id, 0));

  if v_items > 0 then
    with items as (
      select (e ->> 'key_id')::integer as key_id, e -> 'bundle' as bundle, (e ->> 'expires_at')::timestamptz as expires_at
      from jsonb_array_elements(p_one_time) e
    ), ins as (
      insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json, expires_at)
      select v_user, p_agent_id, p_device_id, i.key_id, 'one_time', i.bundle, i.expires_at from items i
      on conflict (agent_id, device_id, kind, key_id) do nothing
      returning 1
    )
    select count(*) into v_inserted from ins;
    -- Same key id already stored with a different bundle: reported, never overwritten.
    select count(*) into v_conflicts
    from jsonb_array_elements(p_one_time) e
    join public.signal_prekey_bundles_v2 b
      on b.agent_id = p_agent_id and b.device_id = p_device_id and b.kind = 'one_time'
     and b.key_id = (e ->> 'key_id')::integer
    where b.bundle_json <> e -> 'bundle';
  end if;

  if p_last_resort is not null then
    v_lr_key := (p_last_resort ->> 'key_id')::integer;
    select b.id, b.key_id into v_current_id, v_current_key from public.signal_prekey_bundles_v2 b
    where b.agent_id = p_agent_id and b.device_id = p_device_id and b.kind = 'last_resort' and not b.consumed;
    if v_current_id is not null and v_current_key = v_lr_key then
      v_last_resort := 'unchanged';
    elsif exists (select 1 from public.signal_prekey_bundles_v2 b
                  where b.agent_id = p_agent_id and b.device_id = p_device_id
                    and b.kind = 'last_resort' and b.key_id = v_lr_key) then
      v_last_resort := 'stale'; -- an older, already replaced key: never revived
    else
      if v_current_id is not null then
        update public.signal_prekey_bundles_v2 b set consumed = true, consumed_at = now() where b.id = v_current_id;
        v_last_resort := 'replaced';
      else
        v_last_resort := 'inserted';
      end if;
      insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json, expires_at)
      values (v_user, p_agent_id, p_device_id, v_lr_key, 'last_resort', p_last_resort -> 'bundle',
              (p_last_resort ->> 'expires_at')::timestamptz);
    end if;
  end if;

  select * into v_stock from keyserver.prekey_stock(p_agent_id) s where s.device_id = p_device_id;
  return jsonb_build_object(
    'one_time_inserted', v_inserted,
    'one_time_duplicates', v_items - v_inserted,
    'one_time_conflicts', v_conflicts,
    'last_resort', v_last_resort,
    'stock', jsonb_build_object(
      'one_time_remaining', v_stock.one_time_remaining,
      'last_resort_present', v_stock.last_resort_present,
      'low_stock', v_stock.low_stock,
      'low_stock_threshold', v_stock.low_stock_threshold));
end;
$$;
comment on function keyserver.publish_prekey_bundles(text, integer, jsonb, jsonb) is
  'As authenticated: publishes up to prekey_batch_max one-time bundles [{key_id, bundle, expires_at?}] and/or a last-resort bundle {key_id, bundle, expires_at?} for one of the caller''s active devices. Idempotent by key id; a new last-resort key replaces the previous one. Returns counts and the device''s stock.';

revoke all on function keyserver.prekey_stock(text), keyserver.publish_prekey_bundles(text, integer, jsonb, jsonb)
  from public, anon, service_role;
grant execute on function keyserver.prekey_stock(text), keyserver.publish_prekey_bundles(text, integer, jsonb, jsonb)
  to authenticated;
