/**
 * keyserver.gateway_prekey_fetch_batch (20261129090000) checked each fetch's target agent id
 * with '^[A-Za-z0-9._:-]{1,128}$'. PostgreSQL's regex engine unrolls the bounded repetition:
 * 13 us per check, about 2% of a fetch's Postgres CPU in the gateway bench. The same rule as a
 * length check and an unbounded class is 1 us. Nothing else changes (the parity test,
 * supabase/tests/database/14-gateway-fetch-batch.test.sql, also covers a 129-character id).
 */

create or replace function keyserver.gateway_prekey_fetch_batch(
  p_requests jsonb,
  p_now timestamptz default now()
)
returns table (
  n integer,
  error text,
  rate_allowed boolean,
  rate_capacity integer,
  rate_remaining integer,
  rate_reset_seconds integer,
  rate_retry_after_seconds integer,
  facts jsonb,
  bundles text
)
language plpgsql
volatile
security definer
set search_path = ''
-- PL/pgSQL may plan the query again for every call's argument (a custom plan): 2.5 ms of
-- Postgres CPU per batch of 16 in pgbench, about as much as running it. The lookups are
-- scalar subqueries, so the generic plan has the same shape.
set plan_cache_mode = force_generic_plan
as $$
declare
  v_pair_capacity integer;
  v_pair_refill interval;
  v_pair_seconds numeric;
  v_caller_capacity integer;
  v_caller_refill interval;
  v_caller_seconds numeric;
  v_min_entanglement numeric;
  v_min_compatibility numeric;
  v_repeated_callers bigint;
  v_repeated_targets bigint;
begin
  if p_now is null or jsonb_typeof(p_requests) is distinct from 'array'
     or jsonb_array_length(p_requests) not between 1 and 16 then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'gateway_prekey_fetch_batch(an array of 1 to 16 fetches, now)';
  end if;

  select (max(s.value #>> '{}') filter (where s.key = 'prekey_fetch_pair_capacity'))::integer,
         (max(s.value #>> '{}') filter (where s.key = 'prekey_fetch_pair_refill'))::interval,
         (max(s.value #>> '{}') filter (where s.key = 'prekey_fetch_caller_capacity'))::integer,
         (max(s.value #>> '{}') filter (where s.key = 'prekey_fetch_caller_refill'))::interval,
         (max(s.value #>> '{}') filter (where s.key = 'min_entanglement_score'))::numeric,
         (max(s.value #>> '{}') filter (where s.key = 'min_compatibility_score'))::numeric,
         (select count(e ->> 'caller_user') - count(distinct lower(e ->> 'caller_user'))
          from jsonb_array_elements(p_requests) e),
         (select count(e ->> 'target_agent') - count(distinct e ->> 'target_agent')
          from jsonb_array_elements(p_requests) e)
    into v_pair_capacity, v_pair_refill, v_caller_capacity, v_caller_refill,
         v_min_entanglement, v_min_compatibility, v_repeated_callers, v_repeated_targets
  from keyserver.settings s
  where s.key in ('prekey_fetch_pair_capacity', 'prekey_fetch_pair_refill', 'prekey_fetch_caller_capacity',
                  'prekey_fetch_caller_refill', 'min_entanglement_score', 'min_compatibility_score');
  if v_pair_capacity is null or v_pair_refill is null or v_caller_capacity is null or v_caller_refill is null
     or v_min_entanglement is null or v_min_compatibility is null then
    raise exception using errcode = 'KS500', message = 'unknown setting prekey_fetch_* or min_*_score';
  end if;
  v_pair_seconds := extract(epoch from v_pair_refill);
  v_caller_seconds := extract(epoch from v_caller_refill);
  if v_pair_capacity < 1 or v_caller_capacity < 1 or v_pair_seconds <= 0 or v_caller_seconds <= 0 then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'consume_rate_limit(key, capacity >= 1, refill_interval > 0, cost >= 1)';
  end if;
  if v_repeated_callers > 0 or v_repeated_targets > 0 then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'gateway_prekey_fetch_batch takes one fetch per caller and per target';
  end if;

  -- Lookups are scalar subqueries, not joins or EXISTS: a batch is a few rows, and they stay
  -- index probes whatever the planner guesses for the size of the batch or of small tables.
  return query
  with req as materialized (
    select r.n::integer as n, r.caller_user, r.caller_agent, r.caller_device, r.target_agent, r.target_device
    from rows from (jsonb_to_recordset(p_requests) as (caller_user uuid, caller_agent text,
           caller_device integer, target_agent text, target_device integer)) with ordinality
      as r(caller_user, caller_agent, caller_device, target_agent, target_device, n)
  ),
  checked as materialized (
    select r.*,
      case
        when r.caller_user is null or r.caller_agent is null or r.caller_device is null
             or r.target_agent is null
             -- The same rule as '^[A-Za-z0-9._:-]{1,128}$': that bounded repetition cost 13 us per
             -- fetch in PostgreSQL's regex engine, this 1 us.
             or length(r.target_agent) not between 1 and 128 or r.target_agent !~ '^[A-Za-z0-9._:-]+$'
             or (r.target_device is not null and r.target_device not between 1 and 127)
          then 'invalid_argument'
        when (select a.user_id from public.agents a where a.agent_id = r.caller_agent)
             is distinct from r.caller_user
          then 'caller_agent_not_owned'
        when not coalesce((select d.user_id = r.caller_user and d.revoked_at is null
                           from public.agent_devices d
                           where d.agent_id = r.caller_agent and d.device_id = r.caller_device), false)
          then 'device_not_owned'
      end as error,
      'prekey_fetch:pair:' || r.caller_user || ':' || r.target_agent as pair_key,
      'prekey_fetch:caller:' || r.caller_user as caller_key
    from req r
  ),
  -- The leaky bucket of keyserver.consume_rate_limit (cost 1), computed on the locked row.
  pair as materialized (
    insert into keyserver.rate_limit_buckets as b (key, level, capacity, refill_interval, updated_at, last_allowed)
    select c.pair_key, 1, v_pair_capacity, v_pair_refill, p_now, true
    from checked c
    where c.error is null
    order by c.pair_key
    on conflict (key) do update set
      level = case
        when greatest(0, b.level - greatest(0, extract(epoch from (p_now - b.updated_at))) * excluded.capacity / v_pair_seconds) + 1 <= excluded.capacity
        then greatest(0, b.level - greatest(0, extract(epoch from (p_now - b.updated_at))) * excluded.capacity / v_pair_seconds) + 1
        else greatest(0, b.level - greatest(0, extract(epoch from (p_now - b.updated_at))) * excluded.capacity / v_pair_seconds) end,
      last_allowed =
        greatest(0, b.level - greatest(0, extract(epoch from (p_now - b.updated_at))) * excluded.capacity / v_pair_seconds) + 1 <= excluded.capacity,
      capacity = excluded.capacity,
      refill_interval = excluded.refill_interval,
      updated_at = greatest(b.updated_at, p_now),
      denied_total = b.denied_total + case
        when greatest(0, b.level - greatest(0, extract(epoch from (p_now - b.updated_at))) * excluded.capacity / v_pair_seconds) + 1 <= excluded.capacity
        then 0 else 1 end,
      last_denied_at = case
        when greatest(0, b.level - greatest(0, extract(epoch from (p_now - b.updated_at))) * excluded.capacity / v_pair_seconds) + 1 <= excluded.capacity
        then b.last_denied_at else p_now end
    returning b.key, b.level, b.capacity, b.last_allowed
  ),
  -- Only for the fetches the pair bucket allowed; the ORDER BY (a sort reads all of its input)
  -- also makes every pair bucket locked before the first caller bucket.
  caller as materialized (
    insert into keyserver.rate_limit_buckets as b (key, level, capacity, refill_interval, updated_at, last_allowed)
    select c.caller_key, 1, v_caller_capacity, v_caller_refill, p_now, true
    from checked c
    join pair p on p.key = c.pair_key
    where p.last_allowed
    order by c.caller_key
    on conflict (key) do update set
      level = case
        when greatest(0, b.level - greatest(0, extract(epoch from (p_now - b.updated_at))) * excluded.capacity / v_caller_seconds) + 1 <= excluded.capacity
        then greatest(0, b.level - greatest(0, extract(epoch from (p_now - b.updated_at))) * excluded.capacity / v_caller_seconds) + 1
        else greatest(0, b.level - greatest(0, extract(epoch from (p_now - b.updated_at))) * excluded.capacity / v_caller_seconds) end,
      last_allowed =
        greatest(0, b.level - greatest(0, extract(epoch from (p_now - b.updated_at))) * excluded.capacity / v_caller_seconds) + 1 <= excluded.capacity,
      capacity = excluded.capacity,
      refill_interval = excluded.refill_interval,
      updated_at = greatest(b.updated_at, p_now),
      denied_total = b.denied_total + case
        when greatest(0, b.level - greatest(0, extract(epoch from (p_now - b.updated_at))) * excluded.capacity / v_caller_seconds) + 1 <= excluded.capacity
        then 0 else 1 end,
      last_denied_at = case
        when greatest(0, b.level - greatest(0, extract(epoch from (p_now - b.updated_at))) * excluded.capacity / v_caller_seconds) + 1 <= excluded.capacity
        then b.last_denied_at else p_now end
    returning b.key, b.level, b.capacity, b.last_allowed
  ),
  -- The state reported: the pair bucket's, or the caller bucket's when that one refused or
  -- has fewer left (as keyserver.gateway_prekey_fetch reports).
  rated as materialized (
    select c.n, c.error, c.caller_user, c.caller_agent, c.target_agent, c.target_device,
           p.last_allowed and k.last_allowed as allowed, t.level, t.capacity, t.seconds,
           (select a.user_id from public.agents a where a.agent_id = c.target_agent) as target_user
    from checked c
    left join pair p on p.key = c.pair_key
    left join caller k on k.key = c.caller_key
    cross join lateral (
      select k.key is not null
             and (not k.last_allowed or floor(k.capacity - k.level) < floor(p.capacity - p.level))
             as caller_reported) u
    cross join lateral (
      select case when u.caller_reported then k.level else p.level end as level,
             case when u.caller_reported then k.capacity else p.capacity end as capacity,
             case when u.caller_reported then v_caller_seconds else v_pair_seconds end as seconds) t
  ),
  -- keyserver.contact_facts for a fetch without an invite, and the database's verdict.
  factual as materialized (
    select r.n, r.target_agent, r.target_device, f.facts, keyserver.facts_allow_contact(f.facts) as db_allows
    from rated r
    cross join lateral (select jsonb_build_object(
      'target_user_id', r.target_user,
      'same_owner', coalesce(r.target_user = r.caller_user, false),
      'blocked_by_caller',
        coalesce((select true from public.user_blocks b
                  where b.blocker_user_id = r.caller_user and b.blocked_agent_id = r.target_agent limit 1), false)
        or coalesce((select true from public.user_blocks b
                     where b.blocker_user_id = r.caller_user and b.blocked_user_id = r.target_user limit 1), false),
      'blocked_by_target',
        coalesce((select true from public.user_blocks b
                  where b.blocker_user_id = r.target_user and b.blocked_agent_id = r.caller_agent limit 1), false)
        or coalesce((select true from public.user_blocks b
                     where b.blocker_user_id = r.target_user and b.blocked_user_id = r.caller_user limit 1), false),
      'shared_communities', coalesce((
        select jsonb_agg(mc.community_id order by mc.community_id)
        from public.community_members mc
        join public.community_members mt on mt.community_id = mc.community_id
        where mc.user_id = r.caller_user and mc.removed_at is null
          and mt.user_id = r.target_user and mt.removed_at is null), '[]'::jsonb),
      'connection', (
        select jsonb_build_object('entanglement_score', cn.entanglement_score,
                                  'compatibility_score', cn.compatibility_score)
        from public.ai2ai_connections cn
        where cn.agent_a = least(r.caller_agent, r.target_agent)
          and cn.agent_b = greatest(r.caller_agent, r.target_agent)),
      'invite', jsonb_build_object('presented', false, 'valid', false),
      'contact_via_invite',
        coalesce((select true from public.contact_invites i
                  where i.used_at is not null
                    and i.inviter_agent_id = r.target_agent and i.used_by_agent_id = r.caller_agent limit 1), false)
        or coalesce((select true from public.contact_invites i
                     where i.used_at is not null
                       and i.inviter_agent_id = r.caller_agent and i.used_by_agent_id = r.target_agent limit 1), false),
      'thresholds', jsonb_build_object(
        'min_entanglement_score', v_min_entanglement,
        'min_compatibility_score', v_min_compatibility)) as facts
      offset 0) f -- kept a subquery: inlined, the facts would be built once per use
    where r.allowed
  ),
  -- Each active target device of an allowed fetch (a target is in one fetch of the batch).
  wanted as materialized (
    select f.n, d.agent_id, d.device_id, d.registration_id, d.identity_key
    from factual f
    cross join lateral (
      select ad.agent_id, ad.device_id, ad.registration_id, ad.identity_key
      from public.agent_devices ad
      where ad.agent_id = f.target_agent and ad.revoked_at is null
        and (f.target_device is null or ad.device_id = f.target_device)
      offset 0) d
    where f.db_allows
  ),
  -- One unclaimed one-time bundle per device, oldest expiry first: keyserver.claim_prekey_bundles'
  -- query (20261129090100: "consumed <= false" and this ORDER BY keep the generic plan on the
  -- claim index rather than walking the expiry index across every device's bundles).
  claimed as materialized (
    update public.signal_prekey_bundles_v2 b
    set consumed = true, consumed_at = p_now
    from wanted w
    where b.id = (
      select c.id from public.signal_prekey_bundles_v2 c
      where c.agent_id = w.agent_id and c.device_id = w.device_id and c.consumed <= false
        and c.expires_at > p_now and c.kind = 'one_time'
      order by c.consumed, c.expires_at
      limit 1
      for update skip locked)
    returning w.n, w.device_id, b.key_id, b.kind, b.bundle_json
  ),
  -- No one-time bundle left for that device: its last-resort bundle, logged.
  last_resort as materialized (
    select w.n, w.agent_id, w.device_id, lr.key_id, lr.kind, lr.bundle_json
    from wanted w
    cross join lateral (
      select b.key_id, b.kind, b.bundle_json from public.signal_prekey_bundles_v2 b
      where b.agent_id = w.agent_id and b.device_id = w.device_id and b.kind = 'last_resort'
        and b.consumed = false and b.expires_at > p_now
      limit 1) lr
    where not exists (select 1 from claimed cl where cl.n = w.n and cl.device_id = w.device_id)
  ),
  last_resort_logged as (
    insert into keyserver.last_resort_claims (agent_id, device_id, key_id, claimed_at)
    select l.agent_id, l.device_id, l.key_id, p_now from last_resort l
  ),
  -- The answer as the text keyserver.gateway_prekey_fetch returns (jsonb's output form: keys
  -- by length, then bytes), built as text: as jsonb, each 3.9 KB bundle was taken apart and
  -- put together again by jsonb_build_object, jsonb_agg and the final cast.
  handed as (
    select w.n, '[' || string_agg(format(
        '{"kind": %s, "bundle": %s, "key_id": %s, "device_id": %s, "identity_key": %s, "registration_id": %s}',
        to_json(h.kind), h.bundle_json, h.key_id, w.device_id,
        to_json(encode(w.identity_key, 'base64')), w.registration_id), ', ' order by w.device_id) || ']' as bundles
    from wanted w
    join (select cl.n, cl.device_id, cl.key_id, cl.kind, cl.bundle_json from claimed cl
          union all
          select l.n, l.device_id, l.key_id, l.kind, l.bundle_json from last_resort l) h
      on h.n = w.n and h.device_id = w.device_id
    group by w.n
  )
  select r.n, r.error,
         r.allowed,
         r.capacity,
         floor(r.capacity - r.level)::integer,
         ceil(r.level * r.seconds / r.capacity)::integer,
         case when r.allowed then 0 else ceil((r.level + 1 - r.capacity) * r.seconds / r.capacity)::integer end,
         f.facts - 'target_user_id',
         case when r.error is not null then null
              when h.bundles is not null then h.bundles
              when f.db_allows then keyserver.read_legacy_v1_bundle(f.target_agent, f.target_device)::text
              else '[]' end
  from rated r
  left join factual f on f.n = r.n
  left join handed h on h.n = r.n
  order by r.n;
end;
$$;
comment on function keyserver.gateway_prekey_fetch_batch(jsonb, timestamptz) is
  'service_role (gateway): up to 16 prekey fetches without an invite ([{caller_user, caller_agent, caller_device, target_agent, target_device}], one per caller and per target), answered one row per fetch in order (n = 1..) exactly as keyserver.gateway_prekey_fetch answers each; locks every pair bucket, then every caller bucket, in key order.';

revoke all on function keyserver.gateway_prekey_fetch_batch(jsonb, timestamptz) from public, anon, authenticated;
grant execute on function keyserver.gateway_prekey_fetch_batch(jsonb, timestamptz) to service_role;
