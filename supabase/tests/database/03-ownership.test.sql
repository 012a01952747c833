-- Ownership: agent ids are claimed once and never re-claimed; every write naming an agent_id
-- checks that the agent belongs to the caller; the refusals do not tell whether an agent exists.
begin;
\ir ../helpers/tests_schema.sql
select plan(33);

do $$
begin
  perform tests.create_agent('alice', array[1]);
  perform tests.create_agent('mallory', array[1]);
  perform tests.create_user('newbie');
  perform tests.stock('agent-alice', 1, 2);
end
$$;

/** Claiming */
select tests.authenticate_as('newbie');
select is(keyserver.claim_agent('agent-newbie'), true, 'a fresh agent id is claimed');
select is(keyserver.claim_agent('agent-newbie'), false, 'claiming one''s own agent again is a no-op');
select throws_ok($$ select keyserver.claim_agent('agent-alice') $$, 'KS409', 'agent_unavailable',
  're-claiming another user''s agent fails');
select throws_ok($$ insert into public.agents (agent_id, user_id) values ('agent-alice', tests.uid('newbie')) $$,
  'KS409', 'agent_unavailable', 'a direct insert re-claiming another user''s agent fails the same way');
select throws_ok($$ insert into public.agents (agent_id, user_id) values ('agent-free', tests.uid('alice')) $$,
  '42501', null, 'claiming an agent for someone else is refused by RLS');
select throws_ok($$ update public.agents set user_id = tests.uid('newbie') where agent_id = 'agent-alice' $$,
  '42501', null, 'an agent cannot be moved to another owner');
select throws_ok($$ select keyserver.claim_agent('bad id with spaces') $$, '23514', null,
  'agent ids are restricted to a safe alphabet');
select is_empty($$ select * from public.agents where agent_id = 'agent-alice' $$, 'other users'' agents are invisible');

/** Retired and legacy ids */
select tests.clear_authentication();
do $$ begin perform tests.create_agent('leaver'); end $$;
delete from auth.users where id = tests.uid('leaver');
select ok(exists (select 1 from keyserver.retired_agents where agent_id = 'agent-leaver'),
  'deleting the owner retires the agent id');
insert into public.signal_prekey_bundles (agent_id, registration_id, identity_key, bundle_data)
values ('legacy-agent-1', 7, 'BWxlZ2FjeQ==', '{}'), ('00000000-0000-4000-8000-' || substr(md5('newbie'), 1, 12), 8, 'x', '{}');
select tests.authenticate_as('newbie');
select throws_ok($$ select keyserver.claim_agent('agent-leaver') $$, 'KS409', 'agent_unavailable',
  'a retired agent id can never be claimed again');
select throws_ok($$ select keyserver.claim_agent('legacy-agent-1') $$, 'KS409', 'agent_unavailable',
  'a legacy (V1) agent id cannot be claimed directly');
select is(keyserver.claim_agent(tests.uid('newbie')::text), true,
  'a legacy id equal to the caller''s own user id (the only V1 rows production RLS allowed) is claimable');
select tests.authenticate_as_service_role();
select is((select identity_key from keyserver.legacy_agent_identity('legacy-agent-1')), 'BWxlZ2FjeQ==',
  'the gateway reads the V1 identity key to verify a possession proof');
select is(keyserver.claim_legacy_agent(tests.uid('newbie'), 'legacy-agent-1'), true,
  'after verification the gateway claims the legacy id for the user');
select throws_ok($$ select keyserver.claim_legacy_agent(tests.uid('mallory'), 'legacy-agent-1') $$, 'KS409', 'agent_unavailable',
  'a claimed legacy id cannot be claimed again through the verified path');
select is_empty($$ select * from keyserver.legacy_agent_identity('legacy-agent-1') $$,
  'a claimed legacy id no longer offers its identity for proofs');

/** Devices */
select tests.authenticate_as('mallory');
select throws_ok($$ select keyserver.register_device('agent-alice', 5, 55, tests.identity_key('m')) $$, 'KS403', 'agent_not_owned',
  'registering a device under another user''s agent fails');
select throws_ok($$ select keyserver.register_device('agent-nobody', 5, 55, tests.identity_key('m')) $$, 'KS403', 'agent_not_owned',
  '... exactly as for an agent that does not exist');
select throws_ok($$ insert into public.agent_devices (agent_id, device_id, user_id, registration_id, identity_key)
                   values ('agent-alice', 1, tests.uid('mallory'), 55, tests.identity_key('m')) $$, '42501', null,
  'a direct insert of an existing device of another agent is refused by RLS (not a duplicate-key oracle)');
select throws_ok($$ insert into public.agent_devices (agent_id, device_id, user_id, registration_id, identity_key)
                   values ('agent-nobody', 1, tests.uid('mallory'), 55, tests.identity_key('m')) $$, '42501', null,
  '... with the same error as for a missing agent');
select is(tests.probe('mallory', $$ update public.agent_devices set registration_id = 9 where agent_id = 'agent-alice' $$), 'rows:0',
  'updating another user''s device touches nothing');
select is((select registration_id from public.agent_devices where agent_id = 'agent-mallory' and device_id = 1), 1001,
  'mallory sees only her own device');

/** Publishing under another user's agent id */
select throws_ok($$ select keyserver.publish_prekey_bundles('agent-alice', 1, '[{"key_id": 500, "bundle": {"evil": true}}]') $$,
  'KS403', 'device_not_owned', 'publishing through the function under another user''s agent fails');
select throws_ok($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
                   values (tests.uid('mallory'), 'agent-alice', 1, 500, 'one_time', '{"evil": true}') $$, '42501', null,
  'auth.uid() = user_id alone is not enough: own user id with another user''s agent is refused');
select throws_ok($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
                   values (tests.uid('mallory'), 'agent-alice', 1, 1, 'one_time', '{"evil": true}') $$, '42501', null,
  'colliding with an existing key id of another agent gives the same refusal (no duplicate-key oracle)');
select throws_ok($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
                   values (tests.uid('alice'), 'agent-alice', 1, 500, 'one_time', '{"evil": true}') $$, '42501', null,
  'writing a row in the victim''s name is refused');
select throws_ok($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
                   values (tests.uid('mallory'), 'agent-alice', 1, 500, 'one_time', '{}')
                   on conflict do nothing $$, '42501', null,
  'ON CONFLICT DO NOTHING does not turn the refusal into a silent existence probe');
select is(tests.probe('mallory', $$ update public.signal_prekey_bundles_v2 set consumed = true where agent_id = 'agent-alice' $$), 'rows:0',
  'updating another user''s bundles touches nothing');
select is(tests.probe('mallory', $$ delete from public.signal_prekey_bundles_v2 where agent_id = 'agent-alice' $$), 'rows:0',
  'deleting another user''s bundles touches nothing');
select tests.clear_authentication();
select is((select count(*)::integer from public.signal_prekey_bundles_v2 where agent_id = 'agent-alice' and not consumed), 3,
  'alice''s bundles are untouched');

/** Even the trusted paths cannot mix owners */
select throws_ok($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
                   values (tests.uid('mallory'), 'agent-alice', 1, 600, 'one_time', '{}') $$, '23503', null,
  'as service_role/superuser, the composite foreign key still ties user, agent and device together');
select throws_ok($$ insert into public.dm_envelopes (to_user_id, to_agent_id, to_device_id, from_agent_id, from_device_id, message_type, body, expires_at)
                   values (tests.uid('mallory'), 'agent-alice', 1, 'agent-mallory', 1, 2, '\x01', now() + interval '1 day') $$, '23503', null,
  'an envelope cannot name a recipient owner other than the agent''s owner');
select throws_ok($$ insert into public.contact_invites (inviter_user_id, inviter_agent_id, token_hash)
                   values (tests.uid('mallory'), 'agent-alice', sha256('x'::bytea)) $$, '23503', null,
  'an invite cannot be issued for an agent of another user');

select * from finish();
rollback;
