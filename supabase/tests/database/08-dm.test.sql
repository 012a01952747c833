-- DMs: batch send through the gateway (all or nothing, Signal message types only, body size
-- cap, per-recipient pending cap with a clear error, a uniform refusal for missing, ineligible
-- and blocked recipients), inbox paging and acknowledgement by the recipient's owner only.
begin;
\ir ../helpers/tests_schema.sql
select plan(33);

do $$
begin
  perform tests.create_agent('alice', array[1, 2]);
  perform tests.create_agent('bob', array[1]);
  perform tests.create_agent('stranger');
  perform tests.create_agent('blocked');
  insert into public.communities (id, name, created_by) values (tests.community('cafe'), 'cafe', tests.uid('alice'));
  insert into public.community_members (community_id, user_id)
  select tests.community('cafe'), tests.uid(n) from unnest(array['bob', 'blocked']) n;
  insert into public.user_blocks (blocker_user_id, blocked_agent_id) values (tests.uid('alice'), 'agent-blocked');
end
$$;

create function pg_temp.env(p_agent text, p_device integer, p_type integer, p_body bytea) returns jsonb language sql as $$
  select jsonb_build_object('to_agent_id', p_agent, 'to_device_id', p_device, 'message_type', p_type,
                            'body', encode(p_body, 'base64'))
$$;
create function pg_temp.send(p_from text, p_envelopes jsonb, p_now timestamptz default now()) returns jsonb language sql as $$
  select keyserver.send_dm_batch(tests.uid(p_from), 'agent-' || p_from, 1, p_envelopes, p_now)
$$;

/** Sending */
select tests.authenticate_as('bob');
select throws_ok($$ select keyserver.send_dm_batch(tests.uid('bob'), 'agent-bob', 1, '[]') $$, '42501', null,
  'signed-in users cannot call the send function directly');
select throws_ok($$ insert into public.dm_envelopes (to_user_id, to_agent_id, to_device_id, from_agent_id, from_device_id, message_type, body, expires_at)
                   values (tests.uid('alice'), 'agent-alice', 1, 'agent-bob', 1, 3, '\x01', now() + interval '1 day') $$, '42501', null,
  'nor insert envelopes: inserts go through the gateway');
select tests.authenticate_as_service_role();
select is(pg_temp.send('bob', jsonb_build_array(pg_temp.env('agent-alice', 1, 3, '\x0101'), pg_temp.env('agent-alice', 2, 3, '\x0202'))) ->> 'accepted',
  '2', 'a batch to both of alice''s devices is accepted');
select is(pg_temp.send('alice', jsonb_build_array(pg_temp.env('agent-alice', 2, 2, '\x0303'))) ->> 'accepted', '1',
  'a user can message its own other device');

create temporary table refusals as
select t, tests.error_of(format($$ select pg_temp.send('alice', jsonb_build_array(pg_temp.env(%L, 1, 3, '\x01'))) $$, t)) as err
from unnest(array['agent-ghost', 'agent-stranger', 'agent-blocked']) t;
select is((select count(distinct err)::integer from refusals), 1, 'missing, ineligible and blocked recipients are refused alike');
select is((select min(err) from refusals), 'KS404 recipient_unavailable', '... as KS404 recipient_unavailable');
select is(tests.error_of($$ select pg_temp.send('blocked', jsonb_build_array(pg_temp.env('agent-alice', 1, 3, '\x01'))) $$),
  'KS404 recipient_unavailable', 'a blocked user cannot message the blocker');

select throws_ok($$ select pg_temp.send('bob', jsonb_build_array(pg_temp.env('agent-alice', 1, 3, '\x09'), pg_temp.env('agent-stranger', 1, 3, '\x09'))) $$,
  'KS404', 'recipient_unavailable', 'one bad recipient refuses the whole batch');
select throws_ok($$ select pg_temp.send('bob', jsonb_build_array(pg_temp.env('agent-alice', 1, 3, '\x09'), pg_temp.env('agent-alice', 7, 3, '\x09'))) $$,
  'KS409', 'stale_devices', 'an inactive recipient device is reported to an eligible sender');
select throws_ok($$ select pg_temp.send('bob', jsonb_build_array(pg_temp.env('agent-alice', 1, 1, '\x09'))) $$,
  'KS400', 'invalid_message_type', 'only the two Signal message types are accepted');
select throws_ok($$ select pg_temp.send('bob', '[{"to_agent_id": "agent-alice", "to_device_id": 1, "message_type": 3, "body": "not base64!"}]') $$,
  'KS400', 'invalid_argument', 'a body that is not base64 is refused');
select throws_ok($$ select pg_temp.send('bob', '[]') $$, 'KS400', 'batch_size', 'an empty batch is refused');
select throws_ok($$ select pg_temp.send('bob', (select jsonb_agg(pg_temp.env('agent-alice', 1, 3, '\x01')) from generate_series(1, 101))) $$,
  'KS400', 'batch_size', 'a batch over dm_batch_max is refused');
select throws_ok($$ select keyserver.send_dm_batch(tests.uid('bob'), 'agent-alice', 1, jsonb_build_array(pg_temp.env('agent-alice', 1, 3, '\x01'))) $$,
  'KS403', 'sender_device_not_owned', 'the sender must own the device it sends from');
select is((select count(*)::integer from public.dm_envelopes), 3, 'refused batches stored nothing');

/** Body size cap */
select tests.clear_authentication();
update keyserver.settings set value = '16' where key = 'dm_body_max_bytes';
select tests.authenticate_as_service_role();
select lives_ok($$ select pg_temp.send('bob', jsonb_build_array(pg_temp.env('agent-alice', 1, 3, decode(repeat('ab', 16), 'hex')))) $$,
  'a body at the size cap is accepted');
select throws_ok($$ select pg_temp.send('bob', jsonb_build_array(pg_temp.env('agent-alice', 1, 3, decode(repeat('ab', 17), 'hex')))) $$,
  'KS413', 'body_too_large', 'a body over the cap is refused with KS413');
select throws_ok($$ insert into public.dm_envelopes (to_user_id, to_agent_id, to_device_id, from_agent_id, from_device_id, message_type, body, expires_at)
                   values (tests.uid('alice'), 'agent-alice', 1, 'agent-bob', 1, 3, decode(repeat('ab', 65537), 'hex'), now() + interval '1 day') $$,
  '23514', null, 'the table itself refuses bodies over 64 KiB');

/** Pending cap per recipient device */
select tests.clear_authentication();
update keyserver.settings set value = '3' where key = 'dm_pending_cap';
select tests.authenticate_as_service_role();
select lives_ok($$ select pg_temp.send('bob', jsonb_build_array(pg_temp.env('agent-alice', 1, 3, '\x05'))) $$,
  'the third pending envelope for alice''s device 1 fits the cap of 3');
select throws_like($$ select pg_temp.send('bob', jsonb_build_array(pg_temp.env('agent-alice', 2, 3, '\x06'), pg_temp.env('agent-alice', 1, 3, '\x06'))) $$,
  'inbox_full', 'a fourth is refused with a clear error');
select is((select count(*)::integer from public.dm_envelopes where to_agent_id = 'agent-alice' and to_device_id = 2), 2,
  '... and the whole batch was refused (nothing stored for device 2 either): never silently dropped');
select is(tests.error_of($$ select pg_temp.send('bob', jsonb_build_array(pg_temp.env('agent-alice', 1, 3, '\x06'))) $$),
  'KS507 inbox_full', 'the cap error is KS507 inbox_full');

/** Inbox and acknowledgement */
select tests.authenticate_as('alice');
select results_eq($$ select from_agent_id, from_device_id, message_type, body from keyserver.dm_inbox('agent-alice', 1) $$,
  $$ values ('agent-bob', 1, 3::smallint, '\x0101'::bytea), ('agent-bob', 1, 3::smallint, decode(repeat('ab', 16), 'hex')),
            ('agent-bob', 1, 3::smallint, '\x05'::bytea) $$,
  'alice pages through her device''s inbox in order');
select is((select count(*)::integer from keyserver.dm_inbox('agent-alice', 1, (select min(id) from public.dm_envelopes), 1)), 1,
  'paging: after a cursor, with a limit');
select is((select count(*)::integer from keyserver.dm_inbox('agent-alice', 2)), 2, 'device 2 has its own inbox');
select tests.authenticate_as('bob');
select is_empty($$ select * from keyserver.dm_inbox('agent-alice', 1) $$, 'the sender cannot read the recipient''s inbox');
select is(keyserver.dm_ack('agent-alice', 1, (select array_agg(id) from keyserver.dm_inbox('agent-alice', 1))), 0,
  '... nor acknowledge (delete) its envelopes');
select tests.clear_authentication();
create temporary table alice_ids as select array_agg(id order by id) as ids from public.dm_envelopes where to_agent_id = 'agent-alice' and to_device_id = 1;
grant select on alice_ids to authenticated;
select tests.authenticate_as('alice');
select is(keyserver.dm_ack('agent-alice', 2, (select ids from alice_ids)), 0, 'acknowledging ids of another device deletes nothing');
select is(keyserver.dm_ack('agent-alice', 1, (select ids[1:2] from alice_ids)), 2, 'alice acknowledges (deletes) two envelopes');
select is((select count(*)::integer from keyserver.dm_inbox('agent-alice', 1)), 1, 'one remains');
select tests.authenticate_as_service_role();
select lives_ok($$ select pg_temp.send('bob', jsonb_build_array(pg_temp.env('agent-alice', 1, 3, '\x07'))) $$,
  'after acknowledgements the inbox accepts envelopes again');
select tests.authenticate_as_service_role();
select is(pg_temp.send('bob', jsonb_build_array(pg_temp.env('agent-alice', 2, 2, '\x08')), now() - interval '31 days') ->> 'accepted', '1',
  'an envelope sent 31 days ago (frozen time) ...');
select tests.authenticate_as('alice');
select is((select count(*)::integer from keyserver.dm_inbox('agent-alice', 2)), 2, '... has expired and is not in the inbox');

select * from finish();
rollback;
