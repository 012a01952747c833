/**
 * Gateway: the claim half of a prekey fetch in one cheap statement, and cheaper shared helpers.
 *
 * Before, a fetch cost Postgres about 3.6 ms of CPU under load: the gateway read the facts and
 * the caller's device (one statement), then called keyserver.get_prekey_bundle_for_contact_v1
 * (or, when its policy refused, keyserver.prekey_fetch_rate_limit), which checked the caller
 * again, consumed two rate-limit buckets through keyserver.consume_rate_limit (three statements
 * each, plus four settings read through nested SQL-language functions), derived the facts
 * again and claimed. Profiled, most of that went into executor start-up of the many small
 * statements and into parsing and planning SQL-language helpers, which PostgreSQL 15 does again
 * on every call (PL/pgSQL caches its plans per session).
 *
 * keyserver.gateway_prekey_claim replaces both second statements. The gateway passes the
 * decision of the core's policy (WASM evaluateEligibility over keyserver.eligibility_facts) as
 * p_policy_allowed:
 *
 *   1. arguments; the caller owns p_caller_agent (KS403 caller_agent_not_owned);
 *   2. the two fetch buckets, exactly as get_prekey_bundle_for_contact_v1 consumes them (the
 *      per caller->target bucket, then, if it allowed, the per caller bucket; the tighter one is
 *      reported), with one read under FOR UPDATE and one write per bucket, whatever the policy
 *      said (a refused fetch costs the same); refused by a bucket: nothing else happens;
 *   3. only when the policy allowed: a presented invite locked, the facts derived again
 *      (keyserver.contact_facts) and the database's own verdict on them
 *      (keyserver.facts_allow_contact: target owned, no block either way, a relationship), and
 *      only when that allows too: the invite marked used, one bundle per active device claimed
 *      (keyserver.claim_prekey_bundles: FOR UPDATE SKIP LOCKED, else last resort), then the V1
 *      fallback while dual_read.
 *
 * So no bundle is handed out unless both the policy and the database's recheck allow, and a
 * gateway passing p_policy_allowed = true for anything gets no more than the recheck allows.
 * Missing, ineligible and blocked targets all get bundles = '[]' and the same rate-limit state.
 * The bundles come back as JSON text for the gateway to splice into its answer unparsed.
 *
 * Shared helpers made cheaper without changing what they return: the setting accessors and
 * keyserver.facts_allow_contact become PL/pgSQL (plans cached per session instead of a parse
 * and plan per call; they are not inlinable either way because of their fixed search_path).
 */

/** Section - settings accessors and the recheck, as PL/pgSQL */

create or replace function keyserver.setting_int(p_key text)
returns integer
language plpgsql
stable
set search_path = ''
as $$
begin
  return (keyserver.setting(p_key) #>> '{}')::integer;
end;
$$;

create or replace function keyserver.setting_numeric(p_key text)
returns numeric
language plpgsql
stable
set search_path = ''
as $$
begin
  return (keyserver.setting(p_key) #>> '{}')::numeric;
end;
$$;

create or replace function keyserver.setting_interval(p_key text)
returns interval
language plpgsql
stable
set search_path = ''
as $$
begin
  return (keyserver.setting(p_key) #>> '{}')::interval;
end;
$$;

create or replace function keyserver.setting_text(p_key text)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  return keyserver.setting(p_key) #>> '{}';
end;
$$;

-- The same rule as 20261127100000 (either score), never null.
create or replace function keyserver.facts_allow_contact(p_facts jsonb)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return coalesce(
    (p_facts ->> 'target_user_id') is not null
    and not (p_facts ->> 'blocked_by_caller')::boolean
    and not (p_facts ->> 'blocked_by_target')::boolean
    and ((p_facts ->> 'same_owner')::boolean
      or jsonb_array_length(p_facts -> 'shared_communities') > 0
      or (jsonb_typeof(p_facts -> 'connection') = 'object'
          and ((p_facts #>> '{connection,entanglement_score}')::numeric
                 >= (p_facts #>> '{thresholds,min_entanglement_score}')::numeric
            or (p_facts #>> '{connection,compatibility_score}')::numeric
                 >= (p_facts #>> '{thresholds,min_compatibility_score}')::numeric))
      or (p_facts #>> '{invite,valid}')::boolean
      or (p_facts ->> 'contact_via_invite')::boolean),
    false);
end;
$$;

-- create or replace keeps the privileges; restated for the reader.
revoke all on function keyserver.facts_allow_contact(jsonb) from public, anon, authenticated, service_role;

/** Section - the gateway's claim */

create or replace function keyserver.gateway_prekey_claim(
  p_caller_user uuid,
  p_caller_agent text,
  p_target_agent text,
  p_target_device integer,
  p_invite_token text,
  p_policy_allowed boolean,
  p_now timestamptz default now()
)
returns table (
  rate_allowed boolean,
  rate_capacity integer,
  rate_remaining integer,
  rate_reset_seconds integer,
  rate_retry_after_seconds integer,
  bundles text
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_agent_ok boolean;
  v_settings jsonb;
  v_pair_capacity integer;
  v_pair_refill interval;
  v_caller_capacity integer;
  v_caller_refill interval;
  v_bucket integer;
  v_key text;
  v_capacity integer;
  v_refill interval;
  v_seconds numeric;
  v_level numeric;
  v_updated timestamptz;
  v_created boolean;
  v_allowed boolean;
  v_remaining integer;
  v_hash bytea;
  v_facts jsonb;
  v_bundles jsonb;
begin
  if p_caller_user is null or p_caller_agent is null or p_target_agent is null
     or p_target_agent !~ '^[A-Za-z0-9._:-]{1,128}$'
     or (p_target_device is not null and p_target_device not between 1 and 127)
     or p_policy_allowed is null or p_now is null then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'caller user and agent, a valid target agent id, target device 1..127 or null, the policy decision';
  end if;

  -- The caller (nothing here depends on the target) and the bucket settings, in one statement.
  select exists (select 1 from public.agents a
                 where a.agent_id = p_caller_agent and a.user_id = p_caller_user),
         (select jsonb_object_agg(s.key, s.value) from keyserver.settings s
          where s.key in ('prekey_fetch_pair_capacity', 'prekey_fetch_pair_refill',
                          'prekey_fetch_caller_capacity', 'prekey_fetch_caller_refill'))
    into v_agent_ok, v_settings;
  if not v_agent_ok then
    raise exception using errcode = 'KS403', message = 'caller_agent_not_owned';
  end if;
  v_pair_capacity := (v_settings #>> '{prekey_fetch_pair_capacity}')::integer;
  v_pair_refill := (v_settings #>> '{prekey_fetch_pair_refill}')::interval;
  v_caller_capacity := (v_settings #>> '{prekey_fetch_caller_capacity}')::integer;
  v_caller_refill := (v_settings #>> '{prekey_fetch_caller_refill}')::interval;
  if v_pair_capacity is null or v_pair_refill is null or v_caller_capacity is null or v_caller_refill is null then
    raise exception using errcode = 'KS500', message = 'unknown setting prekey_fetch_*';
  end if;

  -- Rate limits first, whatever the policy said, as in get_prekey_bundle_for_contact_v1: the
  -- per caller->target bucket, then (if it allowed) the per caller bucket; the same leaky bucket
  -- as keyserver.consume_rate_limit (cost 1), with one read and one write per bucket.
  for v_bucket in 1..2 loop
    if v_bucket = 1 then
      v_key := 'prekey_fetch:pair:' || p_caller_user || ':' || p_target_agent;
      v_capacity := v_pair_capacity;
      v_refill := v_pair_refill;
    else
      exit when not rate_allowed;
      v_key := 'prekey_fetch:caller:' || p_caller_user;
      v_capacity := v_caller_capacity;
      v_refill := v_caller_refill;
    end if;
    v_seconds := extract(epoch from v_refill);
    if v_capacity < 1 or v_seconds <= 0 then
      raise exception using errcode = 'KS400', message = 'invalid_argument',
        detail = 'consume_rate_limit(key, capacity >= 1, refill_interval > 0, cost >= 1)';
    end if;

    select b.level, b.updated_at into v_level, v_updated
    from keyserver.rate_limit_buckets b where b.key = v_key for update;
    v_created := false;
    if not found then
      -- A new bucket is empty: this first request fits (capacity >= 1).
      insert into keyserver.rate_limit_buckets as b (key, level, capacity, refill_interval, updated_at)
      values (v_key, 1, v_capacity, v_refill, p_now)
      on conflict (key) do nothing;
      v_created := found;
      if v_created then
        v_level := 1;
        v_allowed := true;
      else
        -- Created concurrently: take it like any existing bucket.
        select b.level, b.updated_at into v_level, v_updated
        from keyserver.rate_limit_buckets b where b.key = v_key for update;
      end if;
    end if;
    if not v_created then
      v_level := greatest(0, v_level - greatest(0, extract(epoch from (p_now - v_updated))) * v_capacity / v_seconds);
      v_allowed := v_level + 1 <= v_capacity;
      if v_allowed then
        v_level := v_level + 1;
      end if;
      update keyserver.rate_limit_buckets b
      set level = v_level,
          capacity = v_capacity,
          refill_interval = v_refill,
          updated_at = greatest(v_updated, p_now),
          denied_total = b.denied_total + case when v_allowed then 0 else 1 end,
          last_denied_at = case when v_allowed then b.last_denied_at else p_now end
      where b.key = v_key;
    end if;

    v_remaining := floor(v_capacity - v_level)::integer;
    if v_bucket = 1 or not v_allowed or v_remaining < rate_remaining then
      rate_allowed := v_allowed;
      rate_capacity := v_capacity;
      rate_remaining := v_remaining;
      rate_reset_seconds := ceil(v_level * v_seconds / v_capacity)::integer;
      rate_retry_after_seconds := case when v_allowed then 0
                                       else ceil((v_level + 1 - v_capacity) * v_seconds / v_capacity)::integer end;
    end if;
  end loop;
  bundles := '[]';
  if not rate_allowed or not p_policy_allowed then
    return next;
    return;
  end if;

  -- The database's own recheck. A presented invite is locked first so two holders cannot both
  -- use it.
  if p_invite_token is not null then
    v_hash := pg_catalog.sha256(convert_to(p_invite_token, 'UTF8'));
    perform 1 from public.contact_invites ci
    where ci.token_hash = v_hash and ci.inviter_agent_id = p_target_agent
    for update;
  end if;
  v_facts := keyserver.contact_facts(p_caller_user, p_caller_agent, p_target_agent, p_invite_token, p_now);
  if not keyserver.facts_allow_contact(v_facts) then
    return next;
    return;
  end if;

  if (v_facts #>> '{invite,valid}')::boolean then
    update public.contact_invites ci
    set used_at = p_now, used_by_agent_id = p_caller_agent, used_by_user_id = p_caller_user
    where ci.token_hash = v_hash and ci.inviter_agent_id = p_target_agent and ci.used_at is null;
  end if;

  v_bundles := keyserver.claim_prekey_bundles(p_target_agent, p_target_device, p_now);
  if jsonb_array_length(v_bundles) = 0 then
    v_bundles := keyserver.read_legacy_v1_bundle(p_target_agent, p_target_device);
  end if;
  bundles := v_bundles::text;
  return next;
end;
$$;
comment on function keyserver.gateway_prekey_claim(uuid, text, text, integer, text, boolean, timestamptz) is
  'service_role (gateway), after its policy decided on keyserver.eligibility_facts: KS400, KS403 caller_agent_not_owned; the two prekey fetch buckets consumed as by get_prekey_bundle_for_contact_v1 whatever the decision (rate_*: the tighter one); then, only if p_policy_allowed and the database''s own recheck of the facts allows, the invite used and the claim. bundles is JSON text: [] alike for a missing, ineligible or blocked target and a refused fetch.';

revoke all on function keyserver.gateway_prekey_claim(uuid, text, text, integer, text, boolean, timestamptz)
  from public, anon, authenticated;
grant execute on function keyserver.gateway_prekey_claim(uuid, text, text, integer, text, boolean, timestamptz)
  to service_role;
