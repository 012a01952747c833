/**
 * Gateway: a prekey fetch in one statement, the facts derived once.
 *
 * Before, a fetch was two statements: keyserver.eligibility_facts (plus the caller's device)
 * for the gateway's policy, then keyserver.gateway_prekey_claim with the policy's decision,
 * which derived the same facts a second time for the database's own recheck. Measured on the
 * 2-core bench machine that was 1.8 ms of Postgres CPU and two round trips per fetch, a third
 * of it spent twice on the same facts and on a second statement's start-up and commit.
 *
 * keyserver.gateway_prekey_fetch replaces both:
 *
 *   1. arguments; the caller owns p_caller_agent and p_caller_device is an active device of
 *      it; else one row whose error is invalid_argument, caller_agent_not_owned or
 *      device_not_owned and nothing else happens (answered, not raised, so that one bad
 *      request does not fail the others of a batch, below);
 *   2. the two fetch buckets, exactly as before (per caller->target, then per caller; the
 *      tighter one reported); refused by a bucket: nothing else happens, facts is null;
 *   3. a presented invite locked, the facts derived once (keyserver.contact_facts) and the
 *      database's verdict on them (keyserver.facts_allow_contact); only when it allows: the
 *      invite marked used and the claim (keyserver.claim_prekey_bundles);
 *   4. the facts are returned without target_user_id (the same document
 *      keyserver.eligibility_facts returns), for the gateway's policy.
 *
 * The gateway hands the bundles out only when its policy (the core's evaluateEligibility, in
 * WASM) also allows on these facts: nothing is handed out unless both allow, as before. The
 * two rules are the same (20261127100000; edge-functions/tests/policy_parity_test.ts runs both
 * on every combination of facts), so they disagree only if one is changed without the other;
 * then the claimed bundle is withheld and the gateway logs the disagreement: it fails closed at
 * the price of one one-time key, where the two-statement fetch claimed nothing.
 *
 * Batches: the gateway sends the fetches that arrive while earlier ones are in the database as
 * one statement, a LATERAL call of this function per request in one transaction, so the
 * statement, transaction and round-trip costs are shared. The rows a fetch waits for are its
 * caller's two buckets (per caller->target, then per caller; bundles are claimed with SKIP
 * LOCKED); two batches that run at the same time never hold fetches of the same caller, so
 * they never wait for each other and cannot deadlock. A fetch presenting an invite runs alone
 * (its invite row may be wanted by another caller).
 *
 * Missing, ineligible and blocked targets all get bundles = '[]', the same rate-limit state and
 * facts that say nothing about the target's existence. keyserver.gateway_prekey_claim has no
 * caller left and is dropped.
 */

/** Section - the gateway's fetch */

create or replace function keyserver.gateway_prekey_fetch(
  p_caller_user uuid,
  p_caller_agent text,
  p_caller_device integer,
  p_target_agent text,
  p_target_device integer,
  p_invite_token text,
  p_now timestamptz default now()
)
returns table (
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
as $$
declare
  v_agent_ok boolean;
  v_device_ok boolean;
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
  if p_caller_user is null or p_caller_agent is null or p_caller_device is null
     or p_target_agent is null
     or p_target_agent !~ '^[A-Za-z0-9._:-]{1,128}$'
     or (p_target_device is not null and p_target_device not between 1 and 127)
     or p_now is null then
    error := 'invalid_argument';
    return next;
    return;
  end if;

  -- The caller and its device (nothing here depends on the target) and the bucket settings.
  select exists (select 1 from public.agents a
                 where a.agent_id = p_caller_agent and a.user_id = p_caller_user),
         exists (select 1 from public.agent_devices d
                 where d.agent_id = p_caller_agent and d.device_id = p_caller_device
                   and d.user_id = p_caller_user and d.revoked_at is null),
         (select jsonb_object_agg(s.key, s.value) from keyserver.settings s
          where s.key in ('prekey_fetch_pair_capacity', 'prekey_fetch_pair_refill',
                          'prekey_fetch_caller_capacity', 'prekey_fetch_caller_refill'))
    into v_agent_ok, v_device_ok, v_settings;
  if not v_agent_ok or not v_device_ok then
    error := case when v_agent_ok then 'device_not_owned' else 'caller_agent_not_owned' end;
    return next;
    return;
  end if;
  v_pair_capacity := (v_settings #>> '{prekey_fetch_pair_capacity}')::integer;
  v_pair_refill := (v_settings #>> '{prekey_fetch_pair_refill}')::interval;
  v_caller_capacity := (v_settings #>> '{prekey_fetch_caller_capacity}')::integer;
  v_caller_refill := (v_settings #>> '{prekey_fetch_caller_refill}')::interval;
  if v_pair_capacity is null or v_pair_refill is null or v_caller_capacity is null or v_caller_refill is null then
    raise exception using errcode = 'KS500', message = 'unknown setting prekey_fetch_*';
  end if;

  -- Rate limits first, as in get_prekey_bundle_for_contact_v1: the per caller->target bucket,
  -- then (if it allowed) the per caller bucket; the same leaky bucket as
  -- keyserver.consume_rate_limit (cost 1), with one read and one write per bucket.
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
  if not rate_allowed then
    return next;
    return;
  end if;

  -- A presented invite is locked before the facts are derived, so two holders cannot both use it.
  if p_invite_token is not null then
    v_hash := pg_catalog.sha256(convert_to(p_invite_token, 'UTF8'));
    perform 1 from public.contact_invites ci
    where ci.token_hash = v_hash and ci.inviter_agent_id = p_target_agent
    for update;
  end if;
  v_facts := keyserver.contact_facts(p_caller_user, p_caller_agent, p_target_agent, p_invite_token, p_now);
  facts := v_facts - 'target_user_id';
  if keyserver.facts_allow_contact(v_facts) then
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
  end if;
  return next;
end;
$$;
comment on function keyserver.gateway_prekey_fetch(uuid, text, integer, text, integer, text, timestamptz) is
  'service_role (gateway): error = invalid_argument | caller_agent_not_owned | device_not_owned and nothing else; or the two prekey fetch buckets (rate_*: the tighter one); unless a bucket refused: the facts (as keyserver.eligibility_facts returns them) for the gateway''s policy and, when the database''s own verdict on them allows, the invite used and the claim. bundles is JSON text: [] alike for a missing, ineligible or blocked target and a refused fetch. The gateway hands bundles out only if its policy allows too.';

revoke all on function keyserver.gateway_prekey_fetch(uuid, text, integer, text, integer, text, timestamptz)
  from public, anon, authenticated;
grant execute on function keyserver.gateway_prekey_fetch(uuid, text, integer, text, integer, text, timestamptz)
  to service_role;

/** Section - retired */

drop function if exists keyserver.gateway_prekey_claim(uuid, text, text, integer, text, boolean, timestamptz);
