/**
 * A batch of prekey fetches that holds a refusal keeps its transaction until the refusal's
 * minimum answer time.
 *
 * The gateway holds every refusal until SPOTS_FETCH_MIN_MS after its request started, so that
 * a missing, an ineligible, a blocked and an empty target cannot be told apart by timing. What
 * waits for a refusal must not come back sooner either, or its timing tells how long the
 * refusal took. Within one gateway isolate the gateway sees to that. But a fetch of the same
 * caller from another isolate or gateway process waits for the caller's rate-limit rows, which
 * the batch's statement holds until it commits: so the statement itself waits until the
 * minimum before it ends, when the batch holds a refusal (an error, a rate limit, or nothing
 * handed out, which is the database's verdict and the gateway policy's too).
 *
 * keyserver.gateway_prekey_fetch_batch_held(requests, hold) answers exactly what
 * keyserver.gateway_prekey_fetch_batch answers, and then, if any answer is a refusal, sleeps
 * until `hold` after its statement started. The gateway passes what is left of the minimum of
 * the batch's latest fetch. One statement, one round trip: an explicit transaction around the
 * batch (begin, the batch, commit) gave the same guarantee but cost 25-30% of the gateway's
 * fetch rate (BENCHMARKS.md, Gateway).
 */

create type keyserver.prekey_fetch_answer as (
  n integer,
  error text,
  rate_allowed boolean,
  rate_capacity integer,
  rate_remaining integer,
  rate_reset_seconds integer,
  rate_retry_after_seconds integer,
  facts jsonb,
  bundles text
);
comment on type keyserver.prekey_fetch_answer is
  'One answer of keyserver.gateway_prekey_fetch_batch, as keyserver.gateway_prekey_fetch_batch_held returns it.';

create function keyserver.gateway_prekey_fetch_batch_held(
  p_requests jsonb,
  p_refusal_hold interval
)
returns setof keyserver.prekey_fetch_answer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_answers keyserver.prekey_fetch_answer[];
begin
  if p_refusal_hold is null or p_refusal_hold < interval '0' or p_refusal_hold > interval '1 second' then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'gateway_prekey_fetch_batch_held(fetches, a hold of 0 to 1 second)';
  end if;
  select coalesce(array_agg(row(f.n, f.error, f.rate_allowed, f.rate_capacity, f.rate_remaining,
                                f.rate_reset_seconds, f.rate_retry_after_seconds, f.facts,
                                f.bundles)::keyserver.prekey_fetch_answer order by f.n), '{}')
    into v_answers
  from keyserver.gateway_prekey_fetch_batch(p_requests) f;
  if exists (select 1 from unnest(v_answers) a
             where a.error is not null or a.rate_allowed is not true or a.bundles = '[]') then
    perform pg_sleep(greatest(0, extract(epoch from (statement_timestamp() + p_refusal_hold - clock_timestamp()))));
  end if;
  return query select * from unnest(v_answers);
end;
$$;
comment on function keyserver.gateway_prekey_fetch_batch_held(jsonb, interval) is
  'service_role (gateway): keyserver.gateway_prekey_fetch_batch(requests), and if any answer is a refusal, the statement (and its locks) lasts until p_refusal_hold after it started.';

revoke all on function keyserver.gateway_prekey_fetch_batch_held(jsonb, interval) from public, anon, authenticated;
grant execute on function keyserver.gateway_prekey_fetch_batch_held(jsonb, interval) to service_role;
