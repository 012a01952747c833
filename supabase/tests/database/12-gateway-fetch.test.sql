-- keyserver.gateway_prekey_fetch, the gateway's one-statement prekey fetch: who may execute it;
-- the caller checks (an inactive caller device consumes nothing); the same rate limits as the
-- gated function, bucket for bucket; one uniform answer for missing, ineligible and blocked
-- targets; the facts it returns are the eligibility facts of the policy module; the database's
-- own verdict gates the claim (either AI2AI score, invites single use, blocks win); and the
-- shared helpers rewritten in PL/pgSQL answer as before.
begin;
\ir ../helpers/tests_schema.sql
select plan(47);

do $$
begin
  perform tests.create_agent('alice', array[1, 2]);
  perform tests.create_agent('friend', array[1, 2]);
  perform tests.create_agent('stranger');
  perform tests.create_agent('blocker');
  perform tests.create_agent('connent');
  perform tests.create_agent('connlo');
  perform tests.create_agent('inviter');
  perform tests.create_agent('bob');
  perform tests.stock('agent-friend', 1, 3);
  perform tests.stock('agent-friend', 2, 0);
  perform tests.stock('agent-stranger', 1, 3);
  perform tests.stock('agent-blocker', 1, 3);
  perform tests.stock('agent-connent', 1, 3);
  perform tests.stock('agent-connlo', 1, 3);
  perform tests.stock('agent-inviter', 1, 3);
  insert into public.communities (id, name, created_by) values (tests.community('cafe'), 'cafe', tests.uid('alice'));
  insert into public.community_members (community_id, user_id)
  select tests.community('cafe'), tests.uid(n) from unnest(array['friend', 'blocker']) n;
  update public.agent_devices set revoked_at = now() where agent_id = 'agent-alice' and device_id = 2;
  insert into public.user_blocks (blocker_user_id, blocked_agent_id) values (tests.uid('blocker'), 'agent-alice');
  insert into public.ai2ai_connections (agent_a, agent_b, entanglement_score, compatibility_score) values
    ('agent-alice', 'agent-connent', 0.7, 0.1), ('agent-alice', 'agent-connlo', 0.3, 0.4);
end
$$;

create temporary table t0 as select now() as at;
grant select on t0 to service_role;
-- One fetch by `p_caller` (device 1) at t0 + p_seconds, as a row of the function's columns.
create function pg_temp.fetch(p_target text, p_seconds integer default 0, p_caller text default 'alice',
                              p_device integer default null, p_token text default null, p_caller_device integer default 1)
returns setof record language sql as $$
  select f.device_ok, f.facts, f.contact_allowed, f.rate_allowed, f.rate_capacity, f.rate_remaining,
         f.rate_reset_seconds, f.rate_retry_after_seconds, f.bundles
  from keyserver.gateway_prekey_fetch(tests.uid(p_caller), 'agent-' || p_caller, p_caller_device, p_target, p_device,
                                      p_token, (select at from t0) + p_seconds * interval '1 second') f
$$;
-- The answer as the gateway sees it, without the facts: "device_ok contact_allowed rate bundle-kinds".
create function pg_temp.answer(p_target text, p_seconds integer default 0, p_caller text default 'alice',
                               p_device integer default null, p_token text default null)
returns text language sql as $$
  select format('%s %s %s/%s/%s/%s/%s %s', r.device_ok::text, coalesce(r.contact_allowed::text, '-'),
                r.rate_allowed::text, r.rate_capacity, r.rate_remaining, r.rate_reset_seconds, r.rate_retry_after_seconds,
                coalesce((select string_agg((b ->> 'device_id') || ':' || (b ->> 'kind'), ',' order by (b ->> 'device_id')::int)
                          from jsonb_array_elements(r.bundles::jsonb) b), ''))
  from pg_temp.fetch(p_target, p_seconds, p_caller, p_device, p_token) as r(
    device_ok boolean, facts jsonb, contact_allowed boolean, rate_allowed boolean, rate_capacity integer,
    rate_remaining integer, rate_reset_seconds integer, rate_retry_after_seconds integer, bundles text)
$$;
create function pg_temp.facts(p_target text, p_token text default null)
returns jsonb language sql as $$
  select r.facts from pg_temp.fetch(p_target, 0, 'alice', null, p_token) as r(
    device_ok boolean, facts jsonb, contact_allowed boolean, rate_allowed boolean, rate_capacity integer,
    rate_remaining integer, rate_reset_seconds integer, rate_retry_after_seconds integer, bundles text)
$$;

/** Who may execute */
select function_privs_are('keyserver', 'gateway_prekey_fetch',
  array['uuid', 'text', 'integer', 'text', 'integer', 'text', 'timestamp with time zone'], 'service_role', array['EXECUTE'],
  'service_role executes the gateway fetch');
select function_privs_are('keyserver', 'gateway_prekey_fetch',
  array['uuid', 'text', 'integer', 'text', 'integer', 'text', 'timestamp with time zone'], 'authenticated', '{}'::text[],
  'authenticated cannot');
select function_privs_are('keyserver', 'gateway_prekey_fetch',
  array['uuid', 'text', 'integer', 'text', 'integer', 'text', 'timestamp with time zone'], 'anon', '{}'::text[],
  'anon cannot');
select is_definer('keyserver', 'gateway_prekey_fetch',
  array['uuid', 'text', 'integer', 'text', 'integer', 'text', 'timestamp with time zone'], 'it is security definer');
select is((select proconfig from pg_proc where oid = 'keyserver.gateway_prekey_fetch(uuid,text,integer,text,integer,text,timestamptz)'::regprocedure),
  array['search_path=""'], 'with search_path = ''''');
select tests.authenticate_as('alice');
select throws_ok($$ select * from keyserver.gateway_prekey_fetch(tests.uid('alice'), 'agent-alice', 1, 'agent-friend') $$,
  '42501', null, 'a signed-in user calling it directly is refused');
select tests.authenticate_as_service_role();

/** Caller checks (independent of the target) */
select throws_ok($$ select * from keyserver.gateway_prekey_fetch(tests.uid('alice'), 'agent-friend', 1, 'agent-friend') $$,
  'KS403', 'caller_agent_not_owned', 'the caller must own the agent it calls as');
select throws_ok($$ select * from keyserver.gateway_prekey_fetch(tests.uid('alice'), 'agent-alice', 0, 'agent-friend') $$,
  'KS400', 'invalid_argument', 'caller device ids are 1..127');
select throws_ok($$ select * from keyserver.gateway_prekey_fetch(tests.uid('alice'), 'agent-alice', 1, 'agent-friend', 128) $$,
  'KS400', 'invalid_argument', 'target device ids are 1..127');
select throws_ok($$ select * from keyserver.gateway_prekey_fetch(tests.uid('alice'), 'agent-alice', 1, 'bad id!') $$,
  'KS400', 'invalid_argument', 'a malformed target id is refused for its format alone');
select is((select count(*)::integer from pg_temp.fetch('agent-friend', 0, 'alice', null, null, 2) as r(
    device_ok boolean, facts jsonb, contact_allowed boolean, rate_allowed boolean, rate_capacity integer,
    rate_remaining integer, rate_reset_seconds integer, rate_retry_after_seconds integer, bundles text)
  where not r.device_ok and r.facts is null and r.rate_allowed is null and r.bundles = '[]'), 1,
  'a revoked caller device: device_ok = false, no facts, no rate state, no bundles');
select is((select count(*)::integer from pg_temp.fetch('agent-friend', 0, 'alice', null, null, 9) as r(
    device_ok boolean, facts jsonb, contact_allowed boolean, rate_allowed boolean, rate_capacity integer,
    rate_remaining integer, rate_reset_seconds integer, rate_retry_after_seconds integer, bundles text)
  where not r.device_ok), 1, 'an unknown caller device likewise');
select is((select count(*)::integer from keyserver.rate_limit_buckets where key like 'prekey_fetch:%'), 0,
  '... and neither touched a rate-limit bucket');
select is((select count(*)::integer from public.signal_prekey_bundles_v2 where consumed), 0, '... nor claimed anything');

/** One uniform answer for missing, ineligible and blocked targets */
create temporary table uniform as
select t.target, pg_temp.answer(t.target) as answer
from unnest(array['agent-ghost', 'agent-stranger', 'agent-blocker', 'agent-connlo']) t(target);
select is((select count(distinct answer)::integer from uniform), 1,
  'no such agent, not eligible, blocking the caller, a connection below both thresholds: one answer');
select is((select answer from uniform limit 1), 'true false true/10/9/360/0 ',
  'that answer: the caller''s device is fine, the database refuses, fetch 1 of 10 is counted, no bundles');
select is((select count(*)::integer from public.signal_prekey_bundles_v2
           where agent_id in ('agent-stranger', 'agent-blocker', 'agent-connlo') and consumed), 0,
  'refused fetches consume nothing');
select is(pg_temp.facts('agent-ghost2'), pg_temp.facts('agent-stranger'),
  'the facts of a missing agent equal those of an unrelated existing one');
select is(pg_temp.facts('agent-blocker'),
  keyserver.eligibility_facts(tests.uid('alice'), 'agent-alice', 'agent-blocker'),
  'the facts are exactly keyserver.eligibility_facts (what the policy module reads; the block by the target included)');
select ok(not (pg_temp.facts('agent-stranger') ? 'target_user_id'), 'the target''s user id is not among them');

/** The database's verdict gates the claim */
select is(pg_temp.answer('agent-friend'), 'true true true/10/9/360/0 1:one_time,2:last_resort',
  'a shared community: a one-time bundle per active device where stock remains, else the last-resort bundle');
select is((select count(*)::integer from public.signal_prekey_bundles_v2 where agent_id = 'agent-friend' and device_id = 1 and consumed), 1,
  'the one-time bundle is consumed');
select is(pg_temp.answer('agent-friend', 0, 'alice', 1), 'true true true/10/8/720/0 1:one_time',
  'one device by number, the pair bucket counting down');
select is((select count(distinct b ->> 'key_id')::integer
           from (select 1) x, lateral (select r.bundles::jsonb from pg_temp.fetch('agent-friend') as r(
             device_ok boolean, facts jsonb, contact_allowed boolean, rate_allowed boolean, rate_capacity integer,
             rate_remaining integer, rate_reset_seconds integer, rate_retry_after_seconds integer, bundles text)) f(j),
           jsonb_array_elements(f.j) b where b ->> 'kind' = 'one_time'), 1, 'the third fetch gets the last one-time bundle');
select is((select jsonb_agg(b.key_id order by b.key_id) from public.signal_prekey_bundles_v2 b
           where b.agent_id = 'agent-friend' and b.device_id = 1 and b.kind = 'one_time' and b.consumed), '[1, 2, 3]'::jsonb,
  'three fetches, three different one-time bundles');
select is(pg_temp.answer('agent-connent'), 'true true true/10/9/360/0 1:one_time',
  'an AI2AI connection with only the entanglement score at its threshold is served');
select is(pg_temp.answer('agent-blocker', 0, 'alice'), 'true false true/10/7/1080/0 ',
  'a block by the target wins over a shared community');
select is(pg_temp.answer('agent-alice', 0, 'blocker'), 'true false true/10/9/360/0 ',
  '... in both directions');

/** Invites */
select tests.authenticate_as('inviter');
create temporary table invite as select * from keyserver.create_contact_invite('agent-inviter');
grant select on invite to service_role;
select tests.authenticate_as_service_role();
select is(pg_temp.answer('agent-inviter', 0, 'alice', null, 'not-the-token'), 'true false true/10/9/360/0 ',
  'a wrong invite token: the uniform answer');
select is(pg_temp.facts('agent-inviter', (select token from invite)) -> 'invite', '{"presented": true, "valid": true}'::jsonb,
  'a valid invite is a fact');
select is(pg_temp.answer('agent-inviter', 0, 'alice', null, (select token from invite)), 'true true true/10/7/1080/0 1:one_time',
  'a valid invite token opens the inviter''s bundles');
select tests.clear_authentication();
select is((select used_by_agent_id from public.contact_invites where id = (select invite_id from invite)), 'agent-alice',
  'the invite is marked used by alice in the same call');
select tests.authenticate_as_service_role();
select is(pg_temp.answer('agent-inviter', 0, 'bob', null, (select token from invite)), 'true false true/10/9/360/0 ',
  'single use: bob cannot use it too');
select is(pg_temp.answer('agent-inviter', 0, 'alice'), 'true true true/10/6/1440/0 1:one_time',
  'the used invite made alice and the inviter contacts');

/** Rate limits: the gated function's buckets, consumed the same way */
select tests.clear_authentication();
update keyserver.settings set value = '3' where key = 'prekey_fetch_pair_capacity';
update keyserver.settings set value = '"3 minutes"' where key = 'prekey_fetch_pair_refill';
select tests.authenticate_as_service_role();
create temporary table seq as
select s.i, pg_temp.answer('agent-friend', s.at, 'bob') as answer,
       keyserver.get_prekey_bundle_for_contact_v1(tests.uid('stranger'), 'agent-stranger', 'agent-friend', null, null,
                                                 (select at from t0) + s.at * interval '1 second') -> 'rate_limit' as old
from (values (1, 0), (2, 0), (3, 0), (4, 0), (5, 30), (6, 60), (7, 60)) s(i, at)
order by s.i;
select is((select string_agg(split_part(answer, ' ', 3), ' ' order by i) from seq),
  'true/3/2/60/0 true/3/1/120/0 true/3/0/180/0 false/3/0/180/60 false/3/0/150/30 true/3/0/180/0 false/3/0/180/60',
  'the pair bucket leaks: three allowed, then refused with retry-after until a minute has passed');
select is((select string_agg(split_part(answer, ' ', 3), ' ' order by i) from seq),
  (select string_agg(format('%s/%s/%s/%s/%s', old ->> 'allowed', old ->> 'capacity', old ->> 'remaining',
                            old ->> 'reset_seconds', old ->> 'retry_after_seconds'), ' ' order by i) from seq),
  'step for step the rate-limit state of get_prekey_bundle_for_contact_v1 for another caller');
select is((select count(*)::integer from seq where answer like '% - false/%' and answer like '% '), 3,
  'a refused fetch carries no verdict and no bundles');
select is((select denied_total from keyserver.rate_limit_buckets
           where key = 'prekey_fetch:pair:' || tests.uid('bob') || ':agent-friend'),
          (select denied_total from keyserver.rate_limit_buckets
           where key = 'prekey_fetch:pair:' || tests.uid('stranger') || ':agent-friend'),
  'denials are counted the same way');
select ok((select (level, capacity, refill_interval, updated_at, last_denied_at) from keyserver.rate_limit_buckets
            where key = 'prekey_fetch:pair:' || tests.uid('bob') || ':agent-friend')
         = (select (level, capacity, refill_interval, updated_at, last_denied_at) from keyserver.rate_limit_buckets
            where key = 'prekey_fetch:pair:' || tests.uid('stranger') || ':agent-friend'),
  'and the bucket rows end up equal');
select tests.clear_authentication();
update keyserver.settings set value = '2' where key = 'prekey_fetch_caller_capacity';
select tests.authenticate_as_service_role();
select is(split_part(pg_temp.answer('agent-ghost7', 120, 'connlo'), ' ', 3), 'true/2/1/1800/0',
  'when the per-caller bucket is tighter, it is the one reported');
select is(split_part(pg_temp.answer('agent-ghost8', 120, 'connlo'), ' ', 3), 'true/2/0/3600/0', '... counting down');
select is(split_part(pg_temp.answer('agent-ghost9', 120, 'connlo'), ' ', 3), 'false/2/0/3600/1800',
  'and capping fetches across many targets');
select is((select level from keyserver.rate_limit_buckets where key = 'prekey_fetch:pair:' || tests.uid('connlo') || ':agent-ghost9'),
  1::numeric, 'the pair bucket of a fetch the caller bucket refused stays consumed (as in the gated function)');

/** The shared helpers, now PL/pgSQL, answer as before */
select is(keyserver.setting_int('prekey_fetch_pair_capacity'), 3, 'setting_int');
select is(keyserver.setting_numeric('min_entanglement_score'), 0.5::numeric, 'setting_numeric');
select is(keyserver.setting_interval('prekey_fetch_pair_refill'), interval '3 minutes', 'setting_interval');
select throws_ok($$ select keyserver.setting_text('no_such_setting') $$, 'KS500', null, 'an unknown setting still raises KS500');

select * from finish();
rollback;
