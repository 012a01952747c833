-- keyserver.gateway_prekey_fetch, the gateway's prekey fetch in one statement: who may execute
-- it; the caller and caller-device checks; the same rate limits as the gated function, bucket
-- for bucket; the facts it returns for the gateway's policy are keyserver.eligibility_facts';
-- the database's own verdict refuses missing, ineligible and blocked targets (one uniform
-- answer); the claim (either AI2AI score, invites single use, blocks win); and the shared
-- helpers rewritten in PL/pgSQL answer as before.
begin;
\ir ../helpers/tests_schema.sql
select plan(42);

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
  insert into public.user_blocks (blocker_user_id, blocked_agent_id) values (tests.uid('blocker'), 'agent-alice');
  insert into public.ai2ai_connections (agent_a, agent_b, entanglement_score, compatibility_score) values
    ('agent-alice', 'agent-connent', 0.7, 0.1), ('agent-alice', 'agent-connlo', 0.3, 0.4);
end
$$;

create temporary table t0 as select now() as at;
grant select on t0 to service_role;
-- One fetch by `p_caller` (device 1) at t0 + p_seconds, as the gateway sees it: "rate
-- bundle-kinds" with rate = allowed/capacity/remaining/reset/retry-after.
create function pg_temp.claim(p_target text, p_seconds integer default 0,
                              p_caller text default 'alice', p_device integer default null, p_token text default null)
returns text language sql as $$
  select format('%s/%s/%s/%s/%s %s', c.rate_allowed::text, c.rate_capacity, c.rate_remaining, c.rate_reset_seconds,
                c.rate_retry_after_seconds,
                coalesce((select string_agg((b ->> 'device_id') || ':' || (b ->> 'kind'), ',' order by (b ->> 'device_id')::int)
                          from jsonb_array_elements(c.bundles::jsonb) b), ''))
  from keyserver.gateway_prekey_fetch(tests.uid(p_caller), 'agent-' || p_caller, 1, p_target, p_device, p_token,
                                      (select at from t0) + p_seconds * interval '1 second') c
$$;
create function pg_temp.consumed(p_agent text) returns integer language sql as $$
  select count(*)::integer from public.signal_prekey_bundles_v2 where agent_id = p_agent and consumed
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
  array['search_path=""', 'enable_seqscan=off'], 'with search_path = '''' (and by index)');
select hasnt_function('keyserver', 'gateway_prekey_claim', 'the two-statement claim is gone');
select tests.authenticate_as('alice');
select throws_ok($$ select * from keyserver.gateway_prekey_fetch(tests.uid('alice'), 'agent-alice', 1, 'agent-friend', null, null) $$,
  '42501', null, 'a signed-in user calling it directly is refused');
select tests.authenticate_as_service_role();

/** Argument and caller checks (independent of the target): answered, not raised */
select is((select jsonb_agg(jsonb_build_array(f.error, f.rate_allowed, f.facts, f.bundles) order by t.n)
           from (values (1, 'agent-friend', 1, 'agent-friend', null::integer),
                        (2, 'agent-alice', 3, 'agent-friend', null),
                        (3, 'agent-alice', 1, 'agent-friend', 128),
                        (4, 'agent-alice', 1, 'bad id!', null),
                        (5, 'agent-alice', null, 'agent-friend', null)) t(n, agent, device, target, target_device),
                keyserver.gateway_prekey_fetch(tests.uid('alice'), t.agent, t.device, t.target, t.target_device, null) f),
  '[["caller_agent_not_owned", null, null, null], ["device_not_owned", null, null, null],
    ["invalid_argument", null, null, null], ["invalid_argument", null, null, null],
    ["invalid_argument", null, null, null]]'::jsonb,
  'another user''s agent, a device not its own, device 128, a malformed target id, no caller device: each its error and nothing else');
select is((select count(*)::integer from keyserver.rate_limit_buckets where key like 'prekey_fetch:%'), 0,
  'refused arguments touched no bucket');

/** The facts for the gateway's policy */
select is((select jsonb_agg(f.facts order by t.target)
           from unnest(array['agent-ghost', 'agent-stranger', 'agent-blocker', 'agent-connlo', 'agent-friend']) t(target),
                keyserver.gateway_prekey_fetch(tests.uid('connent'), 'agent-connent', 1, t.target, 1, null, (select at from t0)) f),
          (select jsonb_agg(keyserver.eligibility_facts(tests.uid('connent'), 'agent-connent', t.target, null, (select at from t0))
                            order by t.target)
           from unnest(array['agent-ghost', 'agent-stranger', 'agent-blocker', 'agent-connlo', 'agent-friend']) t(target)),
  'the facts it returns are keyserver.eligibility_facts (no target_user_id), missing target or not');
select is(pg_temp.consumed('agent-friend'), 0, 'connent shares no community with friend: nothing claimed');

/** The database's verdict: it refuses these, all alike */
create temporary table uniform as
select t.target, pg_temp.claim(t.target) as answer
from unnest(array['agent-ghost', 'agent-stranger', 'agent-blocker', 'agent-connlo']) t(target);
select is((select count(distinct answer)::integer from uniform), 1,
  'no such agent, not eligible, blocking the caller, a connection below both thresholds: one answer');
select is((select answer from uniform limit 1), 'true/10/9/360/0 ', 'that answer: fetch 1 of 10 counted, no bundles');
select is((select sum(pg_temp.consumed(a))::integer from unnest(array['agent-stranger', 'agent-blocker', 'agent-connlo']) a), 0,
  'and nothing claimed');
select is((select f.facts from keyserver.gateway_prekey_fetch(tests.uid('alice'), 'agent-alice', 1, 'agent-ghost5', null, null) f),
          (select f.facts from keyserver.gateway_prekey_fetch(tests.uid('alice'), 'agent-alice', 1, 'agent-ghost6', null, null) f),
  'the facts about two missing targets are the same document');

/** The claim */
select is(pg_temp.claim('agent-friend'), 'true/10/9/360/0 1:one_time,2:last_resort',
  'a shared community: a one-time bundle per active device where stock remains, else the last-resort bundle');
select is(pg_temp.consumed('agent-friend'), 1, 'the one-time bundle is consumed (the last-resort one is not)');
select is((select count(*)::integer from keyserver.last_resort_claims where agent_id = 'agent-friend' and device_id = 2), 1,
  'the last-resort hand-out is logged');
select is(pg_temp.claim('agent-friend', 0, 'alice', 1), 'true/10/8/720/0 1:one_time', 'one device by number');
select is(pg_temp.claim('agent-friend', 0, 'alice', 1), 'true/10/7/1080/0 1:one_time', 'and again');
select is((select jsonb_agg(b.key_id order by b.key_id) from public.signal_prekey_bundles_v2 b
           where b.agent_id = 'agent-friend' and b.device_id = 1 and b.kind = 'one_time' and b.consumed), '[1, 2, 3]'::jsonb,
  'three claims, three different one-time bundles');
select is((select ((c.bundles::jsonb -> 0) - 'bundle') - 'key_id'
           from keyserver.gateway_prekey_fetch(tests.uid('alice'), 'agent-alice', 1, 'agent-friend', 2, null) c),
  jsonb_build_object('device_id', 2, 'registration_id', 1002, 'kind', 'last_resort',
                     'identity_key', encode(tests.identity_key('friend'), 'base64')),
  'bundles is the gated function''s array as JSON text');
select is(pg_temp.claim('agent-connent'), 'true/10/9/360/0 1:one_time',
  'an AI2AI connection with only the entanglement score at its threshold is served');
select is(pg_temp.claim('agent-alice', 0, 'blocker'), 'true/10/9/360/0 ',
  'the blocker cannot fetch the blocked user either (blocks win over a shared community)');

/** Invites */
select tests.authenticate_as('inviter');
create temporary table invite as select * from keyserver.create_contact_invite('agent-inviter');
grant select on invite to service_role;
select tests.authenticate_as_service_role();
select is(pg_temp.claim('agent-inviter', 0, 'alice', null, 'not-the-token'), 'true/10/9/360/0 ',
  'a wrong invite token: the uniform answer');
select tests.clear_authentication();
select is((select used_at from public.contact_invites where id = (select invite_id from invite)), null,
  '... and the invite is still unused');
select tests.authenticate_as_service_role();
select is(pg_temp.claim('agent-inviter', 0, 'alice', null, (select token from invite)), 'true/10/8/720/0 1:one_time',
  'a valid invite token opens the inviter''s bundles');
select tests.clear_authentication();
select is((select used_by_agent_id from public.contact_invites where id = (select invite_id from invite)), 'agent-alice',
  'the invite is marked used by alice in the same call');
select tests.authenticate_as_service_role();
select is(pg_temp.claim('agent-inviter', 0, 'bob', null, (select token from invite)), 'true/10/9/360/0 ',
  'single use: bob cannot use it too');
select is(pg_temp.claim('agent-inviter'), 'true/10/7/1080/0 1:one_time', 'the used invite made alice and the inviter contacts');

/** Rate limits: the gated function's buckets, consumed the same way */
select tests.clear_authentication();
update keyserver.settings set value = '3' where key = 'prekey_fetch_pair_capacity';
update keyserver.settings set value = '"3 minutes"' where key = 'prekey_fetch_pair_refill';
select tests.authenticate_as_service_role();
create temporary table seq as
select s.i, pg_temp.claim('agent-friend', s.at, 'bob') as answer,
       keyserver.get_prekey_bundle_for_contact_v1(tests.uid('stranger'), 'agent-stranger', 'agent-friend', null, null,
                                                 (select at from t0) + s.at * interval '1 second') -> 'rate_limit' as old
from (values (1, 0), (2, 0), (3, 0), (4, 0), (5, 30), (6, 60), (7, 60)) s(i, at)
order by s.i;
select is((select string_agg(answer, ' | ' order by i) from seq),
  'true/3/2/60/0  | true/3/1/120/0  | true/3/0/180/0  | false/3/0/180/60  | false/3/0/150/30  | true/3/0/180/0  | false/3/0/180/60 ',
  'the pair bucket leaks: three allowed, then refused with retry-after until a minute has passed');
select is((select string_agg(split_part(answer, ' ', 1), ' ' order by i) from seq),
  (select string_agg(format('%s/%s/%s/%s/%s', old ->> 'allowed', old ->> 'capacity', old ->> 'remaining',
                            old ->> 'reset_seconds', old ->> 'retry_after_seconds'), ' ' order by i) from seq),
  'step for step the rate-limit state of get_prekey_bundle_for_contact_v1 for another caller');
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
select is(pg_temp.claim('agent-ghost7', 120, 'connlo'), 'true/2/1/1800/0 ',
  'when the per-caller bucket is tighter, it is the one reported');
select is(pg_temp.claim('agent-ghost8', 120, 'connlo'), 'true/2/0/3600/0 ', '... counting down');
select is(pg_temp.claim('agent-ghost9', 120, 'connlo'), 'false/2/0/3600/1800 ',
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
