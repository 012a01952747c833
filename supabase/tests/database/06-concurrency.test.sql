-- Concurrency, with real connections: dblink opens extra sessions to this database (over the
-- cluster's unix socket with peer authentication, as the same superuser, so no password is
-- involved). Their fixture must be committed to be visible across sessions, so it uses its own
-- "conc-" names, is removed at the end, and is also removed first in case an earlier run died.
--   A. a claimer holding its transaction open does not block another, which gets another bundle;
--   B. two sessions claiming 120 bundles each from a stock of 200, at the same time: the 200
--      one-time bundles are handed out exactly once, the other 40 claims get the last resort;
--   C. two publishers racing for the last places under the per-device cap: one is refused;
--   D. two holders of the same single-use invite: exactly one gets bundles.
begin;
\ir ../helpers/tests_schema.sql
select plan(16);

select dblink_connect('conc_setup', format('host=%s port=%s dbname=%s user=%s',
  split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database(), session_user));
select dblink_connect('conc_c1', format('host=%s port=%s dbname=%s user=%s',
  split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database(), session_user));
select dblink_connect('conc_c2', format('host=%s port=%s dbname=%s user=%s',
  split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database(), session_user));

create function pg_temp.conc_cleanup() returns void language sql as $fn$
  select dblink_exec('conc_setup', $$
    delete from public.communities where id = '00000000-0000-4000-a000-0000000c0c0c';
    delete from auth.users where email like 'conc-%@test.local';
    delete from keyserver.retired_agents where agent_id like 'conc-%';
    delete from keyserver.last_resort_claims where agent_id like 'conc-%';
    delete from keyserver.rate_limit_buckets where key like '%00000000-0000-4000-a000-00000000c0%';
  $$)
$fn$;
select pg_temp.conc_cleanup();

-- Users: a1 target (owner of the community and the stock), a2/a3 member claimers,
-- a4 publisher, a5/a6 outsiders holding the same invite.
select dblink_exec('conc_setup', $$
  insert into auth.users (id, email) select ('00000000-0000-4000-a000-00000000c0a' || n)::uuid, 'conc-' || n || '@test.local'
    from generate_series(1, 6) n;
  insert into public.agents (agent_id, user_id) select 'conc-' || n, ('00000000-0000-4000-a000-00000000c0a' || n)::uuid
    from generate_series(1, 6) n;
  insert into public.agent_devices (agent_id, device_id, user_id, registration_id, identity_key)
    select a.agent_id, d, a.user_id, 100 + d, '\x05'::bytea || sha256(convert_to(a.agent_id, 'UTF8'))
    from public.agents a, generate_series(1, 2) d where a.agent_id like 'conc-%';
  insert into public.communities (id, name, created_by) values ('00000000-0000-4000-a000-0000000c0c0c', 'conc', '00000000-0000-4000-a000-00000000c0a1');
  insert into public.community_members (community_id, user_id) values
    ('00000000-0000-4000-a000-0000000c0c0c', '00000000-0000-4000-a000-00000000c0a2'),
    ('00000000-0000-4000-a000-0000000c0c0c', '00000000-0000-4000-a000-00000000c0a3');
  insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
    select '00000000-0000-4000-a000-00000000c0a1', 'conc-1', d, k, 'one_time', jsonb_build_object('k', k)
    from generate_series(1, 2) d, generate_series(1, case d when 1 then 20 else 200 end) k;
  insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
    select '00000000-0000-4000-a000-00000000c0a1', 'conc-1', d, 999999, 'last_resort', '{"lr": true}' from generate_series(1, 2) d;
  insert into public.contact_invites (inviter_user_id, inviter_agent_id, token_hash)
    values ('00000000-0000-4000-a000-00000000c0a1', 'conc-1', sha256('conc-token'::bytea));
$$);

/** A. A held-open claim does not block another claimer, which gets a different bundle */
select dblink_exec('conc_c1', 'begin');
create temporary table held as
select * from dblink('conc_c1', $$ select keyserver.get_prekey_bundle_for_contact_v1(
  '00000000-0000-4000-a000-00000000c0a2', 'conc-2', 'conc-1', 1) #>> '{bundles,0,key_id}' $$) as t(key_id text);
select dblink_exec('conc_c2', 'set statement_timeout = ''5s''');
create temporary table other as
select * from dblink('conc_c2', $$ select keyserver.get_prekey_bundle_for_contact_v1(
  '00000000-0000-4000-a000-00000000c0a3', 'conc-3', 'conc-1', 1) #>> '{bundles,0,key_id}' $$) as t(key_id text);
select isnt((select key_id from other), null, 'while the first claim is still uncommitted, a second claimer is served without waiting');
select isnt((select key_id from other), (select key_id from held), '... with a different one-time bundle');
select dblink_exec('conc_c1', 'commit');
select is((select k from dblink('conc_setup', $$ select count(*)::int from public.signal_prekey_bundles_v2
           where agent_id = 'conc-1' and device_id = 1 and consumed $$) as t(k int)), 2, 'both claims are consumed');

/** B. Two sessions claiming at the same time never get the same bundle */
select dblink_send_query(c, $$
  select string_agg((b -> 0 ->> 'kind') || ':' || (b -> 0 ->> 'key_id') || '@' || extract(epoch from clock_timestamp()), ',')
  from (select keyserver.claim_prekey_bundles('conc-1', 2, now()) as b from generate_series(1, 120) g) x $$)
from unnest(array['conc_c1', 'conc_c2']) c;
create temporary table claims as
select c as conn, split_part(x, ':', 1) as kind, split_part(split_part(x, ':', 2), '@', 1)::int as key_id,
       to_timestamp(split_part(x, '@', 2)::double precision) as at
from unnest(array['conc_c1', 'conc_c2']) c,
     lateral (select r from dblink_get_result(c) as t(r text)) res,
     lateral unnest(string_to_array(res.r, ',')) x;
select dblink_get_result(c) is null from unnest(array['conc_c1', 'conc_c2']) c;
select is((select count(*)::int from claims), 240, 'the two sessions made 240 claims');
select is((select count(*)::int from claims where kind = 'one_time'), 200, '200 of them got one-time bundles');
select is((select count(distinct key_id)::int from claims where kind = 'one_time'), 200, 'no one-time bundle was handed out twice');
select is((select count(*)::int from claims where kind = 'last_resort'), 40, 'the other 40 got the last-resort bundle');
select ok((select max(at) from claims where conn = 'conc_c1') > (select min(at) from claims where conn = 'conc_c2')
      and (select max(at) from claims where conn = 'conc_c2') > (select min(at) from claims where conn = 'conc_c1'),
  'the two sessions were claiming at the same time (their claim periods overlap)');
select ok((select count(*) from claims where conn = 'conc_c1' and kind = 'one_time') > 0
      and (select count(*) from claims where conn = 'conc_c2' and kind = 'one_time') > 0,
  'both sessions were served one-time bundles');

/** C. The per-device cap holds between concurrent publishers */
select dblink_exec(c, 'set role authenticated'), dblink_exec(c, $$ set request.jwt.claims = '{"sub": "00000000-0000-4000-a000-00000000c0a4", "role": "authenticated"}' $$)
from unnest(array['conc_c1', 'conc_c2']) c;
select dblink_exec('conc_c1', 'begin');
select * from dblink('conc_c1', $$ select keyserver.publish_prekey_bundles('conc-4', 1,
  (select jsonb_agg(jsonb_build_object('key_id', k, 'bundle', '{}'::jsonb)) from generate_series(1, 100) k))::text $$) as t(r text);
select * from dblink('conc_c1', $$ select keyserver.publish_prekey_bundles('conc-4', 1,
  (select jsonb_agg(jsonb_build_object('key_id', k, 'bundle', '{}'::jsonb)) from generate_series(101, 200) k))::text $$) as t(r text);
select dblink_send_query('conc_c2', $$ select keyserver.publish_prekey_bundles('conc-4', 1, '[{"key_id": 500, "bundle": {}}]')::text $$);
select pg_sleep(0.3);
select is(dblink_is_busy('conc_c2'), 1, 'the second publisher waits for the first (per-device lock)');
select dblink_exec('conc_c1', 'commit');
select count(*) from dblink_get_result('conc_c2', false) as t(r text);
select matches(dblink_error_message('conc_c2'), 'prekey_cap_exceeded',
  'after the first committed 200 bundles, the second is refused by the cap of 200');
select dblink_get_result('conc_c2', false) is null;
select dblink_exec(c, 'reset role'), dblink_exec(c, 'reset request.jwt.claims') from unnest(array['conc_c1', 'conc_c2']) c;
select is((select k from dblink('conc_setup', $$ select count(*)::int from public.signal_prekey_bundles_v2
           where agent_id = 'conc-4' and not consumed $$) as t(k int)), 200, 'the device holds exactly the cap');

/** D. A single-use invite is used once even when presented concurrently */
select dblink_exec('conc_c1', 'begin');
create temporary table invite_one as
select * from dblink('conc_c1', $$ select jsonb_array_length(keyserver.get_prekey_bundle_for_contact_v1(
  '00000000-0000-4000-a000-00000000c0a5', 'conc-5', 'conc-1', null, 'conc-token') -> 'bundles') $$) as t(n int);
select dblink_send_query('conc_c2', $$ select jsonb_array_length(keyserver.get_prekey_bundle_for_contact_v1(
  '00000000-0000-4000-a000-00000000c0a6', 'conc-6', 'conc-1', null, 'conc-token') -> 'bundles') $$);
select pg_sleep(0.3);
select is(dblink_is_busy('conc_c2'), 1, 'the second holder waits on the invite');
select dblink_exec('conc_c1', 'commit');
create temporary table invite_two as select * from dblink_get_result('conc_c2') as t(n int);
select dblink_get_result('conc_c2') is null;
select is((select n from invite_one), 2, 'the first holder gets the inviter''s bundles (both devices)');
select is((select n from invite_two), 0, 'the second holder gets the uniform empty answer');
select is((select u from dblink('conc_setup', $$ select used_by_agent_id from public.contact_invites where inviter_agent_id = 'conc-1' $$) as t(u text)),
  'conc-5', 'the invite records its single user');

select pg_temp.conc_cleanup();
select dblink_disconnect(c) from unnest(array['conc_setup', 'conc_c1', 'conc_c2']) c;

select * from finish();
rollback;
