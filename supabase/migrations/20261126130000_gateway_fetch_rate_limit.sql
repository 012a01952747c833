/**
 * Gateway: the prekey-fetch rate limit on its own, for fetches the gateway's policy denied.
 *
 * The gateway evaluates eligibility in WASM before it claims anything. When it denies, it does
 * not call keyserver.get_prekey_bundle_for_contact_v1, but the answer must still be
 * indistinguishable from one for an eligible target: the same buckets consumed the same way and
 * the same RateLimit headers. This function consumes exactly what the gated function consumes
 * first (the per caller->target bucket, then, if allowed, the per caller bucket, reporting the
 * tighter one) and nothing else. It depends on the caller and the requested id string only.
 *
 * Security invoker: it runs with the gateway's service_role, which may already execute
 * keyserver.consume_rate_limit and read the settings; it needs no privileges of its own.
 */

/** Section - function */

-- Consumes one prekey fetch for (caller, target id) and returns the rate_limit object.
create or replace function keyserver.prekey_fetch_rate_limit(
  p_caller_user uuid,
  p_target_agent text,
  p_now timestamptz default now()
)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  v_pair record;
  v_all record;
  v_rate jsonb;
begin
  if p_caller_user is null or p_target_agent is null then
    raise exception using errcode = 'KS400', message = 'invalid_argument';
  end if;
  select * into v_pair from keyserver.consume_rate_limit(
    'prekey_fetch:pair:' || p_caller_user || ':' || p_target_agent,
    keyserver.setting_int('prekey_fetch_pair_capacity'),
    keyserver.setting_interval('prekey_fetch_pair_refill'), 1, p_now);
  v_rate := to_jsonb(v_pair);
  if v_pair.allowed then
    select * into v_all from keyserver.consume_rate_limit(
      'prekey_fetch:caller:' || p_caller_user,
      keyserver.setting_int('prekey_fetch_caller_capacity'),
      keyserver.setting_interval('prekey_fetch_caller_refill'), 1, p_now);
    if not v_all.allowed or v_all.remaining < v_pair.remaining then
      v_rate := to_jsonb(v_all);
    end if;
  end if;
  return v_rate;
end;
$$;
comment on function keyserver.prekey_fetch_rate_limit(uuid, text, timestamptz) is
  'service_role (gateway): consumes one prekey fetch for caller -> target id exactly as keyserver.get_prekey_bundle_for_contact_v1 does first, and returns its rate_limit object {allowed, capacity, remaining, reset_seconds, retry_after_seconds}. Used when the gateway policy denies, so denied and allowed fetches cost and look the same.';

revoke all on function keyserver.prekey_fetch_rate_limit(uuid, text, timestamptz) from public, anon, authenticated;
grant execute on function keyserver.prekey_fetch_rate_limit(uuid, text, timestamptz) to service_role;
