-- Rate limits with frozen time: the leaky bucket (exhaustion, retry-after, refill, reset,
-- clock going backwards, bookkeeping of denials) and the limits inside the gated function
-- (per caller -> target and per caller), which apply before anything about the target is read.
begin;
\ir ../helpers/tests_schema.sql
select plan(24);

create temporary table t0 as select now() as at;
grant select on t0 to service_role;
create function pg_temp.take(p_seconds numeric, p_capacity integer default 3, p_cost integer default 1)
returns text language sql as $$
  select format('%s/%s/%s/%s', case when allowed then 'allowed' else 'denied' end, remaining, reset_seconds, retry_after_seconds)
  from keyserver.consume_rate_limit('test:bucket', p_capacity, interval '1 minute', p_cost,
                                    (select at from t0) + p_seconds * interval '1 second')
$$;

select tests.authenticate_as_service_role();
-- capacity 3 per minute: one token drains every 20 seconds. Format: allowed/remaining/reset/retry_after.
select is(pg_temp.take(0), 'allowed/2/20/0', 'first request: allowed, 2 left, empty again in 20 s');
select is(pg_temp.take(0), 'allowed/1/40/0', 'second request');
select is(pg_temp.take(0), 'allowed/0/60/0', 'third request exhausts the bucket');
select is(pg_temp.take(0), 'denied/0/60/20', 'fourth request is denied: retry after 20 s');
select is(pg_temp.take(10), 'denied/0/50/10', 'ten seconds later: still denied, retry after 10 s');
select is(pg_temp.take(20), 'allowed/0/60/0', 'after 20 s one token has leaked out: allowed again');
select is(pg_temp.take(140), 'allowed/2/20/0', 'two minutes on, the bucket is empty again (full quota)');
select is(pg_temp.take(-3600), 'allowed/1/40/0', 'a clock going backwards does not refill the bucket');
select is(pg_temp.take(140, 3, 3), 'denied/1/40/40', 'a cost larger than what is left is denied (retry when enough has leaked)');
select results_eq($$ select denied_total, last_denied_at from keyserver.rate_limit_buckets where key = 'test:bucket' $$,
  $$ values (3::bigint, (select at from t0) + interval '140 seconds') $$, 'denials are counted with their time');
select throws_ok($$ select * from keyserver.consume_rate_limit('test:bad', 0, interval '1 minute') $$, 'KS400', 'invalid_argument',
  'capacity must be positive');
select throws_ok($$ select * from keyserver.consume_rate_limit('test:bad', 1, interval '0') $$, 'KS400', 'invalid_argument',
  'the refill interval must be positive');

select tests.authenticate_as('alice');
select throws_ok($$ select * from keyserver.consume_rate_limit('test:bucket', 3, interval '1 minute') $$, '42501', null,
  'signed-in users cannot touch rate limits');
select tests.clear_authentication();

/** The gated function's limits */
do $$
begin
  perform tests.create_agent('alice');
  perform tests.create_agent('friend');
  perform tests.stock('agent-friend', 1, 20);
  insert into public.communities (id, name, created_by) values (tests.community('cafe'), 'cafe', tests.uid('alice'));
  insert into public.community_members (community_id, user_id) values (tests.community('cafe'), tests.uid('friend'));
  update keyserver.settings set value = '3' where key = 'prekey_fetch_pair_capacity';
  update keyserver.settings set value = '"3 minutes"' where key = 'prekey_fetch_pair_refill';
end
$$;
select tests.authenticate_as_service_role();
create function pg_temp.fetch(p_target text, p_seconds integer) returns jsonb language sql as $$
  select keyserver.get_prekey_bundle_for_contact_v1(tests.uid('alice'), 'agent-alice', p_target, null, null,
                                                   (select at from t0) + p_seconds * interval '1 second')
$$;
select is(jsonb_array_length(pg_temp.fetch('agent-friend', 0) -> 'bundles'), 1, 'fetch 1 of 3 is served');
select is(pg_temp.fetch('agent-friend', 0) -> 'rate_limit',
  '{"allowed": true, "capacity": 3, "remaining": 1, "reset_seconds": 120, "retry_after_seconds": 0}'::jsonb,
  'fetch 2 reports the pair bucket for RateLimit headers');
select is(jsonb_array_length(pg_temp.fetch('agent-friend', 0) -> 'bundles'), 1, 'fetch 3 is served');
select is(pg_temp.fetch('agent-friend', 0),
  '{"bundles": [], "rate_limit": {"allowed": false, "capacity": 3, "remaining": 0, "reset_seconds": 180, "retry_after_seconds": 60}}'::jsonb,
  'fetch 4 is denied with retry-after, and no bundle');
select is((select count(*)::integer from public.signal_prekey_bundles_v2 where agent_id = 'agent-friend' and consumed), 3,
  'a denied fetch consumes nothing');
select is(pg_temp.fetch('agent-ghost', 0) -> 'rate_limit' ->> 'remaining', '2',
  'the limit is per caller -> target: another (even missing) target has its own bucket');
select is(jsonb_array_length(pg_temp.fetch('agent-friend', 60) -> 'bundles'), 1, 'a minute later one fetch has refilled');

select tests.clear_authentication();
update keyserver.settings set value = '2' where key = 'prekey_fetch_caller_capacity';
select tests.authenticate_as_service_role();
select is(pg_temp.fetch('agent-ghost2', 60) -> 'rate_limit',
  '{"allowed": true, "capacity": 2, "remaining": 0, "reset_seconds": 3600, "retry_after_seconds": 0}'::jsonb,
  'when the per-caller bucket is tighter, it is the one reported');
select is(pg_temp.fetch('agent-ghost3', 60) -> 'rate_limit' ->> 'allowed', 'false',
  'the per-caller limit caps fetches across many targets (enumeration)');
select is(jsonb_array_length(pg_temp.fetch('agent-friend', 3600) -> 'bundles'), 1, 'an hour later the caller is served again');
select is((select count(*)::integer from keyserver.rate_limit_buckets where key like 'prekey_fetch:pair:%'), 4,
  'one pair bucket per requested target id');

select * from finish();
rollback;
