-- keyserver.gateway_prekey_fetch_batch_held: the batch of fetches, whose statement (and the
-- rate-limit rows it locked) lasts until the given hold when any answer is a refusal, so a
-- fetch of the same caller elsewhere cannot time the refusal; a batch that only hands out
-- bundles returns at once.
begin;
\ir ../helpers/tests_schema.sql
select plan(10);

do $$
begin
  perform tests.create_agent('alice');
  perform tests.create_agent('friend');
  perform tests.create_agent('stranger');
  perform tests.stock('agent-friend', 1, 3);
  insert into public.communities (id, name, created_by) values (tests.community('hold'), 'hold', tests.uid('alice'));
  insert into public.community_members (community_id, user_id) values (tests.community('hold'), tests.uid('friend'));
end
$$;

create function pg_temp.fetches(p_caller text, p_target text) returns jsonb language sql as $$
  select jsonb_build_array(jsonb_build_object('caller_user', tests.uid(p_caller), 'caller_agent', 'agent-' || p_caller,
                                              'caller_device', 1, 'target_agent', p_target, 'target_device', 1))
$$;

/** Who may execute */
select function_privs_are('keyserver', 'gateway_prekey_fetch_batch_held', array['jsonb', 'interval'],
  'service_role', array['EXECUTE'], 'service_role executes it');
select function_privs_are('keyserver', 'gateway_prekey_fetch_batch_held', array['jsonb', 'interval'],
  'authenticated', '{}'::text[], 'authenticated cannot');
select function_privs_are('keyserver', 'gateway_prekey_fetch_batch_held', array['jsonb', 'interval'],
  'anon', '{}'::text[], 'anon cannot');
select ok((select prosecdef and proconfig = array['search_path=""'] from pg_proc
           where oid = 'keyserver.gateway_prekey_fetch_batch_held(jsonb,interval)'::regprocedure),
  'security definer with search_path = ''''');

select tests.authenticate_as_service_role();
select throws_ok($$ select * from keyserver.gateway_prekey_fetch_batch_held(pg_temp.fetches('alice', 'agent-friend'), '-1 ms') $$,
  'KS400', 'invalid_argument', 'a negative hold is refused');
select throws_ok($$ select * from keyserver.gateway_prekey_fetch_batch_held(pg_temp.fetches('alice', 'agent-friend'), '2 seconds') $$,
  'KS400', 'invalid_argument', 'a hold over a second is refused');

/** Held only with a refusal (the row's clock_timestamp() is read once the function returned) */
create temporary table timed (kind text, took interval, answer jsonb);
insert into timed
select 'refused', max(clock_timestamp()) - statement_timestamp(), jsonb_agg(to_jsonb(f))
from keyserver.gateway_prekey_fetch_batch_held(pg_temp.fetches('alice', 'agent-stranger'), '300 ms') f;
insert into timed
select 'handed out', max(clock_timestamp()) - statement_timestamp(), jsonb_agg(to_jsonb(f))
from keyserver.gateway_prekey_fetch_batch_held(pg_temp.fetches('alice', 'agent-friend'), '300 ms') f;

select is((select answer -> 0 ->> 'bundles' from timed where kind = 'refused'), '[]',
  'a fetch of a target without a shared community is refused (nothing handed out)');
select ok((select took >= interval '300 ms' from timed where kind = 'refused'),
  'a batch holding a refusal lasts the whole hold');
select is((select jsonb_array_length((answer -> 0 ->> 'bundles')::jsonb) from timed where kind = 'handed out'), 1,
  'a fetch of an eligible target hands out its bundle');
select ok((select took < interval '300 ms' from timed where kind = 'handed out'),
  'a batch that only hands out bundles returns at once');

select * from finish();
rollback;
