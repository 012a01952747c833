-- The gated function keyserver.get_prekey_bundle_for_contact_v1 and the eligibility facts:
-- identical answers for missing, ineligible and blocked targets; every route to eligibility
-- (shared community, AI2AI connection with either score at its threshold, invite, contact via
-- invite, same owner);
-- one one-time bundle per active device, falling back to last resort; only service_role executes.
begin;
\ir ../helpers/tests_schema.sql
select plan(49);

do $$
declare
  v_cafe uuid := tests.community('cafe');
begin
  perform tests.create_agent('alice', array[1, 2]);
  perform tests.create_agent('friend', array[1, 2, 3]);
  perform tests.create_agent('stranger');
  perform tests.create_agent('blocked');
  perform tests.create_agent('blocker');
  perform tests.create_agent('connhi');
  perform tests.create_agent('connlo');
  perform tests.create_agent('connent');
  perform tests.create_agent('conncompat');
  perform tests.create_agent('inviter');
  perform tests.create_agent('bob');
  perform tests.stock('agent-friend', 1, 2);
  perform tests.stock('agent-friend', 2, 0);
  perform tests.stock('agent-friend', 3, 5);
  perform tests.stock('agent-stranger', 1, 5);
  perform tests.stock('agent-blocked', 1, 5);
  perform tests.stock('agent-blocker', 1, 5);
  perform tests.stock('agent-connhi', 1, 1);
  perform tests.stock('agent-connlo', 1, 1);
  perform tests.stock('agent-connent', 1, 1);
  perform tests.stock('agent-conncompat', 1, 1);
  perform tests.stock('agent-inviter', 1, 3);
  perform tests.stock('agent-alice', 2, 1);
  perform tests.stock('agent-alice', 1, 1);
  insert into public.communities (id, name, created_by, created_at) values (v_cafe, 'cafe', tests.uid('alice'), now() - interval '1 day');
  insert into public.community_members (community_id, user_id, joined_at)
  select v_cafe, tests.uid(n), now() - interval '1 day' from unnest(array['friend', 'blocked', 'blocker']) n;
  update public.agent_devices set revoked_at = now() where agent_id = 'agent-friend' and device_id = 3;
  insert into public.user_blocks (blocker_user_id, blocked_agent_id) values
    (tests.uid('alice'), 'agent-blocked'), (tests.uid('blocker'), 'agent-alice'), (tests.uid('alice'), 'agent-later');
  insert into public.ai2ai_connections (agent_a, agent_b, entanglement_score, compatibility_score) values
    ('agent-alice', 'agent-connhi', 0.8, 0.8), ('agent-alice', 'agent-connlo', 0.49, 0.2),
    ('agent-alice', 'agent-connent', 0.8, 0.2), ('agent-alice', 'agent-conncompat', 0.2, 0.5);
end
$$;

create function pg_temp.fetch(p_target text, p_device integer default null, p_token text default null,
                              p_caller text default 'alice', p_now timestamptz default now())
returns jsonb language sql as $$
  select keyserver.get_prekey_bundle_for_contact_v1(tests.uid(p_caller), 'agent-' || p_caller, p_target, p_device, p_token, p_now)
$$;
create function pg_temp.kinds(p_answer jsonb) returns text language sql as $$
  select coalesce(string_agg((b ->> 'device_id') || ':' || (b ->> 'kind'), ',' order by (b ->> 'device_id')::int), '')
  from jsonb_array_elements(p_answer -> 'bundles') b
$$;

/** Who may execute */
select tests.authenticate_as('alice');
select throws_ok($$ select keyserver.get_prekey_bundle_for_contact_v1(tests.uid('alice'), 'agent-alice', 'agent-friend') $$,
  '42501', null, 'authenticated cannot execute the gated function');
select throws_ok($$ select keyserver.eligibility_facts(tests.uid('alice'), 'agent-alice', 'agent-friend') $$,
  '42501', null, 'authenticated cannot execute the eligibility facts');
select tests.authenticate_as_anon();
select throws_ok($$ select keyserver.get_prekey_bundle_for_contact_v1(tests.uid('alice'), 'agent-alice', 'agent-friend') $$,
  '42501', null, 'anon cannot execute the gated function');
select tests.authenticate_as_service_role();

/** Enumeration: missing, ineligible and blocked look the same */
create temporary table answers as
select t.target, pg_temp.fetch(t.target) as answer
from unnest(array['agent-ghost', 'agent-stranger', 'agent-blocked', 'agent-blocker', 'agent-connlo']) with ordinality t(target, o)
order by t.o;
select is((select count(distinct answer)::integer from answers), 1,
  'no such agent, not eligible, blocked by the caller, blocking the caller and a low-score connection: one identical answer');
select is((select answer from answers where target = 'agent-ghost'),
  '{"bundles": [], "rate_limit": {"allowed": true, "capacity": 10, "remaining": 9, "reset_seconds": 360, "retry_after_seconds": 0}}'::jsonb,
  'that answer is an empty bundle list with the rate-limit state');
select is((select count(*)::integer from public.signal_prekey_bundles_v2
           where agent_id in ('agent-stranger', 'agent-blocked', 'agent-blocker') and consumed), 0,
  'refused fetches consume nothing');
select is(keyserver.eligibility_facts(tests.uid('alice'), 'agent-alice', 'agent-ghost'),
          keyserver.eligibility_facts(tests.uid('alice'), 'agent-alice', 'agent-stranger'),
  'eligibility facts of a missing agent equal those of an unrelated existing one');
select is(keyserver.eligibility_facts(tests.uid('alice'), 'agent-alice', 'agent-ghost'),
  '{"same_owner": false, "blocked_by_caller": false, "blocked_by_target": false, "shared_communities": [], "connection": null,
    "invite": {"presented": false, "valid": false}, "contact_via_invite": false,
    "thresholds": {"min_entanglement_score": 0.5, "min_compatibility_score": 0.5}}'::jsonb,
  'the facts document');
select is(keyserver.eligibility_facts(tests.uid('alice'), 'agent-alice', 'agent-blocker') ->> 'blocked_by_target', 'true',
  'the gateway learns of a block by the target (for its policy; it must not forward it)');
select is(keyserver.eligibility_facts(tests.uid('alice'), 'agent-alice', 'agent-friend') -> 'shared_communities',
  jsonb_build_array(tests.community('cafe')), 'shared current communities are listed');
select is(keyserver.eligibility_facts(tests.uid('alice'), 'agent-alice', 'agent-connlo') -> 'connection',
  '{"entanglement_score": 0.49, "compatibility_score": 0.2}'::jsonb, 'the connection''s scores are reported');

/** Argument and caller checks (independent of the target) */
select throws_ok($$ select keyserver.get_prekey_bundle_for_contact_v1(tests.uid('alice'), 'agent-friend', 'agent-friend') $$,
  'KS403', 'caller_agent_not_owned', 'the caller must own the agent it calls as');
select throws_ok($$ select keyserver.get_prekey_bundle_for_contact_v1(tests.uid('alice'), 'agent-alice', 'agent-friend', 128) $$,
  'KS400', 'invalid_argument', 'device ids are 1..127');
select throws_ok($$ select keyserver.get_prekey_bundle_for_contact_v1(tests.uid('alice'), 'agent-alice', 'bad id!') $$,
  'KS400', 'invalid_argument', 'a malformed target id is refused for its format alone');

/** Claiming through a shared community */
create temporary table first_fetch as select pg_temp.fetch('agent-friend') as answer;
select is(pg_temp.kinds((select answer from first_fetch)), '1:one_time,2:last_resort',
  'all active devices: a one-time bundle where stock remains, else the last-resort bundle; revoked devices are left out');
select is((select ((answer -> 'bundles' -> 0) - 'bundle') - 'key_id' from first_fetch),
  jsonb_build_object('device_id', 1, 'registration_id', 1001, 'kind', 'one_time',
                     'identity_key', encode(tests.identity_key('friend'), 'base64')),
  'each bundle carries device id, registration id, identity key and kind');
select is((select count(*)::integer from public.signal_prekey_bundles_v2
           where agent_id = 'agent-friend' and device_id = 1 and kind = 'one_time' and consumed), 1,
  'the handed-out one-time bundle is consumed');
select is((select count(*)::integer from keyserver.last_resort_claims where agent_id = 'agent-friend' and device_id = 2), 1,
  'the last-resort hand-out is logged');
select isnt(pg_temp.fetch('agent-friend', 1) #>> '{bundles,0,key_id}', (select answer #>> '{bundles,0,key_id}' from first_fetch),
  'the next claim for device 1 gets a different one-time bundle');
select is(pg_temp.kinds(pg_temp.fetch('agent-friend', 1)), '1:last_resort', 'when the stock is gone, the last-resort bundle');
select is(pg_temp.kinds(pg_temp.fetch('agent-friend', 3)), '', 'a revoked device gives nothing');
select is(pg_temp.kinds(pg_temp.fetch('agent-alice', 2)), '2:one_time', 'the same owner reaches its other devices');

/** Expiry */
select is(pg_temp.kinds(pg_temp.fetch('agent-stranger', 1, null, 'stranger', now() + interval '100 days')), '1:last_resort',
  'expired one-time bundles are skipped (frozen time: 100 days on, past the 90-day lifetime)');
select is(pg_temp.kinds(pg_temp.fetch('agent-stranger', 1, null, 'stranger', now() + interval '200 days')), '',
  '... and an expired last-resort bundle is not served either');

/** AI2AI connections and thresholds */
-- The policy module's rule (src/policy.rs): entanglement OR compatibility at or above its threshold.
select is(pg_temp.kinds(pg_temp.fetch('agent-connhi')), '1:one_time', 'a connection at or above both thresholds is eligible');
select is(pg_temp.kinds(pg_temp.fetch('agent-connent')), '1:one_time',
  'a connection with only the entanglement score at its threshold is eligible');
select is(pg_temp.kinds(pg_temp.fetch('agent-conncompat')), '1:one_time',
  'a connection with only the compatibility score at its threshold (exactly 0.5) is eligible');
select is(pg_temp.fetch('agent-connlo'), pg_temp.fetch('agent-ghost'),
  'a connection below both thresholds gets the uniform empty answer (the same bytes as a missing agent''s second fetch)');
select is(pg_temp.fetch('agent-connlo') -> 'bundles', '[]'::jsonb, '... an empty bundle list');
select is((select count(*)::integer from public.signal_prekey_bundles_v2 where agent_id = 'agent-connlo' and consumed), 0,
  '... and claims nothing');
select tests.clear_authentication();
select is(keyserver.facts_allow_contact(keyserver.contact_facts(tests.uid('alice'), 'agent-alice', 'agent-connent', null, now())),
  true, 'the recheck itself: entanglement alone suffices');
select is(keyserver.facts_allow_contact(keyserver.contact_facts(tests.uid('alice'), 'agent-alice', 'agent-connlo', null, now())),
  false, 'the recheck itself: both scores below is false (never null)');
select is(keyserver.facts_allow_contact(
  '{"target_user_id": "00000000-0000-4000-8000-000000000001", "same_owner": false, "blocked_by_caller": false,
    "blocked_by_target": true, "shared_communities": [], "connection": {"entanglement_score": 0.9, "compatibility_score": 0.9},
    "invite": {"presented": false, "valid": false}, "contact_via_invite": false,
    "thresholds": {"min_entanglement_score": 0.5, "min_compatibility_score": 0.5}}'::jsonb),
  false, 'a block still wins over a high-score connection');
select tests.authenticate_as_service_role();
select tests.clear_authentication();
update keyserver.settings set value = '0.1' where key = 'min_compatibility_score';
select tests.authenticate_as_service_role();
select is(pg_temp.kinds(pg_temp.fetch('agent-connlo')), '1:one_time', 'thresholds come from the settings table');

/** Blocks either way */
select tests.clear_authentication();
do $$
begin
  perform tests.create_agent('later');
  perform tests.stock('agent-later', 1, 1);
  insert into public.community_members (community_id, user_id) values (tests.community('cafe'), tests.uid('later'));
end
$$;
select tests.authenticate_as_service_role();
select is(pg_temp.kinds(pg_temp.fetch('agent-later')), '', 'a block on an agent id placed before the id was claimed still holds');
select is(pg_temp.kinds(pg_temp.fetch('agent-alice', null, null, 'blocker')), '', 'the blocker cannot fetch the blocked user either');

/** Invites */
select tests.authenticate_as('inviter');
create temporary table invite as select * from keyserver.create_contact_invite('agent-inviter');
grant select on invite to service_role;
select tests.authenticate_as_service_role();
select is(pg_temp.kinds(pg_temp.fetch('agent-inviter', null, 'not-the-token')), '', 'a wrong invite token gives the uniform empty answer');
select is(pg_temp.kinds(pg_temp.fetch('agent-inviter', null, (select token from invite), 'alice', now() + interval '8 days')), '',
  'an expired invite is not valid');
select is(pg_temp.kinds(pg_temp.fetch('agent-stranger', null, (select token from invite))), '',
  'an invite only opens the inviter''s bundles');
select is(pg_temp.kinds(pg_temp.fetch('agent-inviter', null, (select token from invite))), '1:one_time',
  'a valid invite token opens the inviter''s bundles');
select tests.clear_authentication();
select is((select used_by_agent_id from public.contact_invites where id = (select invite_id from invite)), 'agent-alice',
  'the invite is now used, by alice');
select tests.authenticate_as_service_role();
select is(pg_temp.kinds(pg_temp.fetch('agent-inviter', null, (select token from invite), 'bob')), '',
  'a used invite cannot be used by anyone else (single use)');
select is(pg_temp.kinds(pg_temp.fetch('agent-inviter')), '1:one_time', 'a used invite links the two agents as contacts');
select is(pg_temp.kinds(pg_temp.fetch('agent-alice', null, null, 'inviter')), '1:one_time,2:last_resort',
  '... in both directions');
select is(keyserver.eligibility_facts(tests.uid('inviter'), 'agent-inviter', 'agent-alice') ->> 'contact_via_invite', 'true',
  '... the reverse direction is eligible through contact_via_invite');
select is(keyserver.eligibility_facts(tests.uid('alice'), 'agent-alice', 'agent-inviter', (select token from invite)) -> 'invite',
  '{"presented": true, "valid": true}'::jsonb, 'the user of an invite may present it again (retries)');
select tests.clear_authentication();
select is((select token_hash from public.contact_invites where id = (select invite_id from invite)),
  sha256(convert_to((select token from invite), 'UTF8')), 'only the SHA-256 of the token is stored');
select tests.authenticate_as('inviter');
select throws_ok($$ select token_hash from public.contact_invites $$, '42501', null, 'not even the inviter reads the hash back');
select tests.authenticate_as('alice');
select throws_ok($$ select blocked_user_id from public.user_blocks $$, '42501', null,
  'the blocker never sees whose user an agent id resolved to');

select * from finish();
rollback;
