-- keyserver.gateway_prekey_fetch_batch, the gateway's fetches without an invite as one
-- set-based statement: who may execute it; what it refuses as a whole; and, fetch for fetch,
-- the answers and the rows left behind of keyserver.gateway_prekey_fetch on the same fetches
-- (both run from the same state: errors, refusals, the uniform answer, rate limits of both
-- buckets with leak over time, one-time bundles handed out in turn, the last-resort fallback
-- and its log).
begin;
\ir ../helpers/tests_schema.sql
select plan(16);

do $$
begin
  perform tests.create_agent('alice', array[1, 2]);
  perform tests.create_agent('friend', array[1, 2]);
  perform tests.create_agent('bob');
  perform tests.create_agent('stranger');
  perform tests.create_agent('blocker');
  perform tests.create_agent('connent');
  perform tests.create_agent('connlo');
  perform tests.create_agent('inviter');
  perform tests.create_agent('dora');
  perform tests.stock('agent-friend', 1, 3);
  perform tests.stock('agent-friend', 2, 0);
  perform tests.stock('agent-stranger', 1, 3);
  perform tests.stock('agent-connent', 1, 2);
  insert into public.communities (id, name, created_by) values (tests.community('cafe'), 'cafe', tests.uid('alice'));
  insert into public.community_members (community_id, user_id)
  select tests.community('cafe'), tests.uid(n) from unnest(array['friend', 'blocker', 'bob']) n;
  insert into public.user_blocks (blocker_user_id, blocked_agent_id) values (tests.uid('blocker'), 'agent-alice');
  insert into public.ai2ai_connections (agent_a, agent_b, entanglement_score, compatibility_score) values
    ('agent-alice', 'agent-connent', 0.7, 0.1), ('agent-alice', 'agent-connlo', 0.3, 0.4);
  update keyserver.settings set value = '2' where key = 'prekey_fetch_pair_capacity';
  update keyserver.settings set value = '"3 minutes"' where key = 'prekey_fetch_pair_refill';
  update keyserver.settings set value = '3' where key = 'prekey_fetch_caller_capacity';
end
$$;

/** Who may execute */
select function_privs_are('keyserver', 'gateway_prekey_fetch_batch', array['jsonb', 'timestamp with time zone'],
  'service_role', array['EXECUTE'], 'service_role executes the batch');
select function_privs_are('keyserver', 'gateway_prekey_fetch_batch', array['jsonb', 'timestamp with time zone'],
  'authenticated', '{}'::text[], 'authenticated cannot');
select function_privs_are('keyserver', 'gateway_prekey_fetch_batch', array['jsonb', 'timestamp with time zone'],
  'anon', '{}'::text[], 'anon cannot');
select ok((select prosecdef and proconfig = array['search_path=""', 'plan_cache_mode=force_generic_plan',
                                                  'enable_seqscan=off'] from pg_proc
           where oid = 'keyserver.gateway_prekey_fetch_batch(jsonb,timestamptz)'::regprocedure),
  'security definer with search_path = '''' (and always its generic plan, by index)');
select tests.authenticate_as('alice');
select throws_ok($$ select * from keyserver.gateway_prekey_fetch_batch(
    jsonb_build_array(jsonb_build_object('caller_user', tests.uid('alice'), 'caller_agent', 'agent-alice',
                                         'caller_device', 1, 'target_agent', 'agent-friend'))) $$,
  '42501', null, 'a signed-in user calling it directly is refused');
select tests.authenticate_as_service_role();

/** Refused as a whole */
select throws_ok($$ select * from keyserver.gateway_prekey_fetch_batch('{}') $$, 'KS400', 'invalid_argument',
  'not an array');
select throws_ok($$ select * from keyserver.gateway_prekey_fetch_batch('[]') $$, 'KS400', 'invalid_argument',
  'an empty batch');
select throws_ok($$ select * from keyserver.gateway_prekey_fetch_batch(
    (select jsonb_agg(jsonb_build_object('caller_user', gen_random_uuid(), 'caller_agent', 'x', 'caller_device', 1,
                                         'target_agent', 'agent-friend')) from generate_series(1, 17))) $$,
  'KS400', 'invalid_argument', 'more than 16 fetches');
select throws_ok($$ select * from keyserver.gateway_prekey_fetch_batch(
    jsonb_build_array(
      jsonb_build_object('caller_user', tests.uid('alice'), 'caller_agent', 'agent-alice', 'caller_device', 1,
                         'target_agent', 'agent-friend'),
      jsonb_build_object('caller_user', upper(tests.uid('alice')::text), 'caller_agent', 'agent-alice',
                         'caller_device', 2, 'target_agent', 'agent-bob'))) $$,
  'KS400', 'invalid_argument', 'two fetches of one caller (its buckets would be written twice)');
select throws_ok($$ select * from keyserver.gateway_prekey_fetch_batch(
    jsonb_build_array(
      jsonb_build_object('caller_user', tests.uid('alice'), 'caller_agent', 'agent-alice', 'caller_device', 1,
                         'target_agent', 'agent-friend', 'target_device', 1),
      jsonb_build_object('caller_user', tests.uid('bob'), 'caller_agent', 'agent-bob',
                         'caller_device', 1, 'target_agent', 'agent-friend', 'target_device', 2))) $$,
  'KS400', 'invalid_argument', 'two fetches of one target (each target device''s claim takes one bundle)');
select is((select count(*)::integer from keyserver.rate_limit_buckets where key like '%' || tests.uid('alice') || '%'), 0,
  'refused batches touched no bucket');

/**
 * The same fetches through both functions, from the same state. Rounds are batches (one fetch
 * per caller); the single function takes a round's fetches one by one, in order.
 */
create temporary table rounds (round integer, n integer, at integer, caller text, agent text, device integer,
                               target text, target_device integer);
insert into rounds values
  -- eligible (a device with a one-time bundle, one with only its last-resort bundle; a target
  -- without bundles); not eligible (no shared community); errors
  (1, 1, 0, 'alice', 'agent-alice', 1, 'agent-friend', null),
  (1, 2, 0, 'friend', 'agent-friend', 1, 'agent-alice', null),
  (1, 3, 0, 'bob', 'agent-bob', 1, 'agent-stranger', 1),
  (1, 4, 0, 'stranger', 'agent-alice', 1, 'agent-x1', 1),
  (1, 5, 0, 'inviter', 'agent-inviter', 3, 'agent-x2', 1),
  (1, 6, 0, 'connlo', 'agent-connlo', 1, 'bad id!', null),
  (1, 7, 0, 'dora', 'agent-dora', 1, 'agent-x3', 128),
  (1, 8, 0, 'blocker', 'agent-blocker', 1, repeat('a', 129), null),
  (1, 9, 0, 'connent', 'agent-connent', 1, '', null),
  -- the next one-time bundle of friend's device 1; blocked; not eligible
  (2, 1, 0, 'bob', 'agent-bob', 1, 'agent-friend', 1),
  (2, 2, 0, 'blocker', 'agent-blocker', 1, 'agent-alice', 1),
  (2, 3, 0, 'connlo', 'agent-connlo', 1, 'agent-connent', null),
  (2, 4, 0, 'connent', 'agent-connent', 1, 'agent-stranger', 1),
  -- the last one; eligible by an AI2AI connection (nothing to hand out); missing
  (3, 1, 0, 'alice', 'agent-alice', 1, 'agent-friend', 1),
  (3, 2, 0, 'connent', 'agent-connent', 1, 'agent-alice', 1),
  (3, 3, 0, 'bob', 'agent-bob', 1, 'agent-ghost1', null),
  -- the pair bucket refuses alice's third fetch of friend; last-resort bundles only; bob's
  -- caller bucket is full
  (4, 1, 10, 'alice', 'agent-alice', 1, 'agent-friend', 2),
  (4, 2, 10, 'blocker', 'agent-blocker', 1, 'agent-ghost2', null),
  (4, 3, 10, 'connlo', 'agent-connlo', 1, 'agent-ghost3', null),
  (4, 4, 10, 'friend', 'agent-friend', 2, 'agent-blocker', null),
  -- the caller bucket refuses (bob's fourth fetch); connlo's fills
  (5, 1, 20, 'bob', 'agent-bob', 1, 'agent-ghost4', null),
  (5, 2, 20, 'connlo', 'agent-connlo', 1, 'agent-ghost5', 1),
  (5, 3, 20, 'blocker', 'agent-blocker', 1, 'agent-friend', null),
  -- 100 s in: alice's pair bucket has leaked enough for one more; bob's and connlo's caller
  -- buckets still refuse
  (6, 1, 100, 'alice', 'agent-alice', 1, 'agent-friend', 2),
  (6, 2, 100, 'bob', 'agent-bob', 1, 'agent-ghost6', null),
  (6, 3, 100, 'connlo', 'agent-connlo', 1, 'agent-ghost7', 1),
  -- the longest valid agent id (a missing target)
  (6, 4, 100, 'dora', 'agent-dora', 1, repeat('b', 128), null);
create temporary table t0 as select now() as at;
grant select on rounds, t0 to service_role;

-- Every answer, in round and fetch order, and the rows the fetches left: buckets, claimed
-- bundles, the last-resort log.
create function pg_temp.fetch_all(p_batch boolean) returns jsonb language plpgsql as $$
declare
  v_round integer;
  v_out jsonb := '[]';
  v_answers jsonb;
begin
  for v_round in select distinct r.round from rounds r order by 1 loop
    if p_batch then
      select jsonb_agg(to_jsonb(f) order by f.n) into v_answers
      from keyserver.gateway_prekey_fetch_batch(
             (select jsonb_agg(jsonb_build_object('caller_user', tests.uid(r.caller), 'caller_agent', r.agent,
                                                  'caller_device', r.device, 'target_agent', r.target,
                                                  'target_device', r.target_device) order by r.n)
              from rounds r where r.round = v_round),
             (select (select at from t0) + max(r.at) * interval '1 second' from rounds r where r.round = v_round)) f;
    else
      select jsonb_agg(to_jsonb(f) || jsonb_build_object('n', r.n) order by r.n) into v_answers
      from rounds r,
           keyserver.gateway_prekey_fetch(tests.uid(r.caller), r.agent, r.device, r.target, r.target_device, null,
             (select (select at from t0) + max(r2.at) * interval '1 second' from rounds r2 where r2.round = v_round)) f
      where r.round = v_round;
    end if;
    v_out := v_out || jsonb_build_array(v_answers);
  end loop;
  return jsonb_build_object(
    'answers', v_out,
    'buckets', (select jsonb_agg(jsonb_build_array(b.key, b.level, b.capacity, b.refill_interval, b.updated_at,
                                                   b.denied_total, b.last_denied_at) order by b.key)
                from keyserver.rate_limit_buckets b
                where exists (select 1 from rounds r where b.key like 'prekey_fetch:%' || tests.uid(r.caller) || '%')),
    'claimed', (select jsonb_agg(jsonb_build_array(b.agent_id, b.device_id, b.key_id, b.consumed_at)
                                 order by b.agent_id, b.device_id, b.key_id)
                from public.signal_prekey_bundles_v2 b where b.consumed and b.consumed_at >= (select at from t0)),
    'last_resort_log', (select jsonb_agg(jsonb_build_array(l.agent_id, l.device_id, l.key_id, l.claimed_at)
                                         order by l.agent_id, l.device_id, l.claimed_at)
                        from keyserver.last_resort_claims l where l.claimed_at >= (select at from t0)));
end;
$$;

savepoint before_fetches;
select pg_temp.fetch_all(false) as single_fetches \gset
rollback to savepoint before_fetches;
create temporary table batched as select pg_temp.fetch_all(true) as result;

select is((select result -> 'answers' from batched), (:'single_fetches')::jsonb -> 'answers',
  'every answer (error, rate limit state, facts, bundles) is the single function''s, fetch for fetch');
select is((select result - 'answers' from batched), (:'single_fetches')::jsonb - 'answers',
  'and so are the buckets, the claimed bundles and the last-resort log it leaves');

-- What those answers are, so that the comparison above cannot pass on two empty runs.
create function pg_temp.summary(p_from integer, p_to integer) returns text language sql as $$
  select string_agg(format('%s.%s %s/%s/%s/%s/%s %s', rnd, a ->> 'n', coalesce(a ->> 'error', a ->> 'rate_allowed'),
                           a ->> 'rate_capacity', a ->> 'rate_remaining', a ->> 'rate_reset_seconds',
                           a ->> 'rate_retry_after_seconds',
                           (select string_agg((b ->> 'device_id') || ':' || (b ->> 'kind') || ':' || (b ->> 'key_id'), ',')
                            from jsonb_array_elements((a ->> 'bundles')::jsonb) b)),
                    ' | ' order by rnd, (a ->> 'n')::integer)
  from batched, jsonb_array_elements(result -> 'answers') with ordinality r(answers, rnd),
       jsonb_array_elements(r.answers) a
  where rnd between p_from and p_to
$$;
select is(pg_temp.summary(1, 1),
  '1.1 true/2/1/90/0 1:one_time:1,2:last_resort:1000002 | 1.2 true/2/1/90/0  | 1.3 true/2/1/90/0  | '
  || '1.4 caller_agent_not_owned////  | 1.5 device_not_owned////  | 1.6 invalid_argument////  | '
  || '1.7 invalid_argument////  | 1.8 invalid_argument////  | 1.9 invalid_argument//// ',
  'round 1: a one-time bundle and a last-resort one; the uniform answer; errors answered per fetch');
select is(pg_temp.summary(2, 6),
  '2.1 true/2/1/90/0 1:one_time:2 | 2.2 true/2/1/90/0  | 2.3 true/2/1/90/0  | 2.4 true/2/1/90/0  | '
  || '3.1 true/2/0/180/0 1:one_time:3 | 3.2 true/2/1/90/0  | 3.3 true/3/0/3600/0  | '
  || '4.1 false/2/0/171/81  | 4.2 true/2/1/90/0  | 4.3 true/2/1/90/0  | 4.4 true/2/1/90/0  | '
  || '5.1 false/3/0/3580/1180  | 5.2 true/3/0/3581/0  | 5.3 true/3/0/3581/0 1:last_resort:1000001,2:last_resort:1000002 | '
  || '6.1 true/2/0/171/0 2:last_resort:1000002 | 6.2 false/3/0/3500/1100  | 6.3 false/3/0/3501/1101  | '
  || '6.4 true/2/1/90/0 ',
  'rounds 2-6: one-time bundles in turn, then last-resort ones; the pair bucket, then the caller bucket, refuse '
  || 'with retry-after; the tighter bucket is reported; after 100 s alice''s pair bucket has leaked enough');
select is((select (jsonb_array_length(result -> 'claimed'), jsonb_array_length(result -> 'last_resort_log'))::text
           from batched),
  '(3,4)', 'rows left: three one-time bundles claimed, four last-resort hand-outs logged');

select * from finish();
rollback;
