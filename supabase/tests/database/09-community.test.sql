-- Communities: shares only from members to current member devices (Signal only), epoch rotation
-- by admins, soft rotations keeping the previous epoch open until grace_until and hard ones
-- closing it at once, membership-gated blobs and events, legacy device-less shares read as
-- device 1, and sender chains. Blob writes are checked by RLS against now(), so grace windows
-- are moved in the data; the service functions take a frozen p_now.
begin;
\ir ../helpers/tests_schema.sql
select plan(50);

do $$
declare
  v_cafe uuid := tests.community('cafe');
begin
  perform tests.create_agent('alice', array[1, 2]);
  perform tests.create_agent('bob', array[1, 2]);
  perform tests.create_agent('erin');
  perform tests.create_agent('carol');
  perform tests.create_agent('newbie');
  insert into public.communities (id, name, created_by, created_at) values (v_cafe, 'cafe', tests.uid('alice'), now() - interval '2 days');
  insert into public.community_members (community_id, user_id, role, joined_at, removed_at) values
    (v_cafe, tests.uid('bob'), 'member', now() - interval '1 day', null),
    (v_cafe, tests.uid('erin'), 'member', now() - interval '1 day', now() - interval '1 hour');
end
$$;

create function pg_temp.share(p_agent text, p_device integer, p_kind text default null) returns jsonb language sql as $$
  select jsonb_strip_nulls(jsonb_build_object('to_agent_id', p_agent, 'to_device_id', p_device, 'share_kind', p_kind,
                                              'message_type', 3, 'encrypted_share', encode('\x5151'::bytea, 'base64')))
$$;
create function pg_temp.post(p_from text, p_key integer, p_shares jsonb, p_now timestamptz default now()) returns jsonb language sql as $$
  select keyserver.post_community_shares(tests.uid(p_from), 'agent-' || p_from, 1, tests.community('cafe'), p_key, p_shares, p_now)
$$;
create function pg_temp.blob(p_key integer, p_iteration integer) returns text language sql as $$
  select format($q$ insert into public.community_message_blobs (community_id, key_id, sender_user_id, sender_agent_id,
                      sender_device_id, sender_chain_id, sender_chain_iteration, ciphertext)
                    values (%L, %s, auth.uid(), (select agent_id from public.agents limit 1), 1, 1, %s, '\xc0ffee') $q$,
                tests.community('cafe'), p_key, p_iteration)
$$;

/** Membership facts for the gateway */
select tests.authenticate_as_service_role();
select is(keyserver.community_membership(tests.uid('alice'), tests.community('cafe')) - 'joined_at' - 'rotated_at',
  '{"is_member": true, "role": "owner", "key_id": 1, "previous_key_id": null, "rotation_kind": "initial",
    "grace_until": null, "previous_open": false}'::jsonb, 'the owner''s membership and the epoch state');
select is(keyserver.community_membership(tests.uid('erin'), tests.community('cafe')), '{"is_member": false}'::jsonb,
  'a removed member is not a member');
select is(keyserver.community_membership(tests.uid('carol'), tests.community('cafe')), '{"is_member": false}'::jsonb,
  'a non-member learns nothing about the community');
select results_eq($$ select agent_id, device_id from keyserver.community_recipients(tests.uid('bob'), tests.community('cafe')) order by 1, 2 $$,
  $$ values ('agent-alice', 1), ('agent-alice', 2), ('agent-bob', 1), ('agent-bob', 2) $$,
  'the fan-out list: every active device of every current member (not the removed member)');
select is_empty($$ select * from keyserver.community_recipients(tests.uid('carol'), tests.community('cafe')) $$,
  'a non-member gets no fan-out list');

/** Posting shares */
select is(pg_temp.post('alice', 1, jsonb_build_array(pg_temp.share('agent-bob', 1), pg_temp.share('agent-bob', 2, 'epoch_sender_chain_seed_v1'),
                                                     pg_temp.share('agent-alice', 2))) ->> 'accepted',
  '3', 'shares to current member devices (including the sender''s own other device) are stored');
select throws_ok($$ select pg_temp.post('alice', 1, jsonb_build_array(pg_temp.share('agent-bob', 1), pg_temp.share('agent-erin', 1))) $$,
  'KS409', 'recipient_not_member', 'a share to a removed member refuses the whole batch');
select throws_ok($$ select pg_temp.post('alice', 1, jsonb_build_array(pg_temp.share('agent-carol', 1))) $$,
  'KS409', 'recipient_not_member', 'a share to a non-member is refused');
select throws_ok($$ select pg_temp.post('alice', 1, jsonb_build_array(pg_temp.share('agent-nobody', 1))) $$,
  'KS409', 'recipient_not_member', '... exactly like one to an agent that does not exist');
select throws_ok($$ select pg_temp.post('alice', 1, jsonb_build_array(pg_temp.share('agent-bob', 3))) $$,
  'KS409', 'recipient_not_member', 'a share to an unregistered device is refused');
select throws_ok($$ select pg_temp.post('carol', 1, jsonb_build_array(pg_temp.share('agent-bob', 1))) $$,
  'KS403', 'not_a_member', 'a non-member cannot post shares');
select throws_ok($$ select pg_temp.post('erin', 1, jsonb_build_array(pg_temp.share('agent-bob', 1))) $$,
  'KS403', 'not_a_member', 'a removed member cannot post shares');
select throws_ok($$ select pg_temp.post('alice', 1, jsonb_build_array(pg_temp.share('agent-bob', 1, 'plaintext_v1'))) $$,
  'KS400', 'invalid_argument', 'unknown share kinds are refused');
select throws_ok($$ select pg_temp.post('alice', 2, jsonb_build_array(pg_temp.share('agent-bob', 1))) $$,
  'KS409', 'epoch_closed', 'a future epoch is not open');
select is(pg_temp.post('alice', 1, '[{"to_agent_id": "agent-bob", "message_type": 2, "encrypted_share": "UQ=="}]') ->> 'accepted', '1',
  'a share without to_device_id goes to device 1');
select tests.clear_authentication();
select is((select count(*)::integer from public.community_sender_key_shares where to_device_id is null), 0, '... and is stored as device 1');
select throws_ok($$ insert into public.community_sender_key_shares (community_id, key_id, from_user_id, from_agent_id, from_device_id,
                     to_user_id, to_agent_id, to_device_id, message_type, encrypted_share, encryption_type)
                   values (tests.community('cafe'), 1, tests.uid('alice'), 'agent-alice', 1, tests.uid('bob'), 'agent-bob', 1, 3, '\x01', 'plaintext') $$,
  '23514', null, 'encryption_type must be signal_protocol (CHECK), whoever writes');
select throws_ok($$ insert into public.community_sender_key_shares (community_id, key_id, from_user_id, from_agent_id,
                     to_user_id, to_agent_id, message_type, encrypted_share)
                   values (tests.community('cafe'), 1, tests.uid('alice'), 'agent-alice', tests.uid('bob'), 'agent-bob', 3, '\x01') $$,
  '23514', null, 'new shares must name both devices');

/** Legacy shares without devices read as device 1 (migration window) */
alter table public.community_sender_key_shares drop constraint community_sender_key_shares_devices_required;
insert into public.community_sender_key_shares (community_id, key_id, from_user_id, from_agent_id, to_user_id, to_agent_id, message_type, encrypted_share)
values (tests.community('cafe'), 1, tests.uid('alice'), 'agent-alice', tests.uid('bob'), 'agent-bob', 3, '\x0001');
select tests.authenticate_as('bob');
select bag_eq($$ select share_kind, from_device_id from keyserver.my_community_shares(tests.community('cafe'), 'agent-bob', 1) $$,
  $$ values ('epoch_key_v1', 1), ('epoch_key_v1', 1), ('epoch_key_v1', null) $$,
  'bob''s device 1 gets its shares and the legacy share with no device');
select results_eq($$ select share_kind from keyserver.my_community_shares(tests.community('cafe'), 'agent-bob', 2) $$,
  $$ values ('epoch_sender_chain_seed_v1') $$, 'device 2 gets only its own share');
select is_empty($$ select * from keyserver.my_community_shares(tests.community('cafe'), 'agent-alice', 1) $$,
  'nobody reads shares addressed to someone else');
select tests.authenticate_as('alice');
select throws_ok($$ insert into public.community_sender_key_shares (community_id, key_id, from_user_id, from_agent_id, from_device_id,
                     to_user_id, to_agent_id, to_device_id, message_type, encrypted_share)
                   values (tests.community('cafe'), 1, tests.uid('alice'), 'agent-alice', 1, tests.uid('bob'), 'agent-bob', 1, 3, '\x01') $$,
  '42501', null, 'members no longer insert shares directly (only through the gateway)');

/** Blobs and events under the current epoch */
select tests.authenticate_as('bob');
select lives_ok(pg_temp.blob(1, 0), 'a member posts a blob under the current epoch');
select throws_ok(pg_temp.blob(1, 0), '23505', null, 'the same sender chain iteration cannot be stored twice');
select throws_ok($$ insert into public.community_message_blobs (community_id, key_id, sender_user_id, sender_agent_id, sender_device_id,
                     sender_chain_id, sender_chain_iteration, ciphertext)
                   values (tests.community('cafe'), 1, auth.uid(), 'agent-alice', 1, 1, 5, '\x01') $$,
  '42501', null, 'a member cannot post as another member''s agent');
select throws_ok($$ insert into public.community_message_blobs (community_id, key_id, sender_user_id, sender_agent_id, ciphertext)
                   values (tests.community('cafe'), 1, auth.uid(), 'agent-bob', '\x01') $$,
  '42501', null, 'new blobs must name the sender device');
select lives_ok($$ insert into public.community_message_blobs (community_id, key_id, sender_user_id, sender_agent_id,
                     sender_device_id, ciphertext)
                   values (tests.community('cafe'), 1, auth.uid(), 'agent-bob', 1, '\x01') $$,
  'an epoch-scheme blob (no chain position) is stored');
select lives_ok($$ insert into public.community_message_blobs (community_id, key_id, sender_user_id, sender_agent_id,
                     sender_device_id, ciphertext)
                   values (tests.community('cafe'), 1, auth.uid(), 'agent-bob', 1, '\x02') $$,
  '... and so is a second one from the same device');
select throws_ok($$ insert into public.community_message_blobs (community_id, key_id, sender_user_id, sender_agent_id,
                     sender_device_id, sender_chain_id, ciphertext)
                   values (tests.community('cafe'), 1, auth.uid(), 'agent-bob', 1, 4, '\x01') $$,
  '23514', null, 'a chain id without its iteration is refused');
select tests.clear_authentication();
delete from public.community_message_blobs where sender_chain_id is null;
select tests.authenticate_as('erin');
select throws_ok(pg_temp.blob(1, 0), '42501', null, 'a removed member cannot post');
select is_empty($$ select * from public.community_message_blobs $$, 'a removed member reads no blobs');
select is_empty($$ select * from public.community_message_events $$, '... and no events');
select tests.authenticate_as('alice');
select is((select count(*)::integer from public.community_message_events), 1, 'each blob has a payloadless event members see');

/** Soft rotation: the previous epoch stays open until grace_until */
select tests.authenticate_as_service_role();
select throws_ok($$ select keyserver.rotate_community_epoch(tests.uid('bob'), tests.community('cafe'), 'soft') $$,
  'KS403', 'not_permitted', 'a plain member cannot rotate');
select throws_ok($$ select keyserver.rotate_community_epoch(tests.uid('carol'), tests.community('cafe'), 'soft') $$,
  'KS403', 'not_permitted', 'a non-member cannot rotate');
select is(keyserver.rotate_community_epoch(tests.uid('alice'), tests.community('cafe'), 'soft', interval '1 hour', now())
            - 'community_id' - 'rotated_at',
  jsonb_build_object('key_id', 2, 'previous_key_id', 1, 'rotation_kind', 'soft', 'grace_until', now() + interval '1 hour'),
  'the owner starts epoch 2 with a one-hour grace window');
select is(pg_temp.post('alice', 1, jsonb_build_array(pg_temp.share('agent-bob', 1, 're_share_v1')), now() + interval '30 minutes') ->> 'accepted', '1',
  'within the grace window the previous epoch still takes shares');
select throws_ok($$ select pg_temp.post('alice', 1, jsonb_build_array(pg_temp.share('agent-bob', 1)), now() + interval '61 minutes') $$,
  'KS409', 'epoch_closed', 'after grace_until it is closed (frozen time)');
select tests.authenticate_as('bob');
select lives_ok(pg_temp.blob(1, 1), 'within the grace window a member still writes under the previous epoch');
select lives_ok(pg_temp.blob(2, 0), '... and under the new one');
-- now() is fixed for the whole test transaction: move the rotation and the blobs into the past
-- (written 90 minutes ago, inside a window that opened 2 hours ago and closed a second ago).
select tests.clear_authentication();
update public.community_message_blobs set created_at = now() - interval '90 minutes';
update public.community_message_events set created_at = now() - interval '90 minutes';
update public.community_sender_key_state set rotated_at = now() - interval '2 hours', grace_until = now() - interval '1 second'
where community_id = tests.community('cafe');
select tests.authenticate_as('bob');
select throws_ok(pg_temp.blob(1, 2), '42501', null, 'once the grace window is over, the previous epoch takes no more blobs');
select is((select count(*)::integer from public.community_message_blobs where key_id = 1), 2,
  'blobs written while the previous epoch was open stay readable');
select tests.clear_authentication();
insert into public.community_message_blobs (community_id, key_id, sender_user_id, sender_agent_id, sender_device_id, sender_chain_id,
                                            sender_chain_iteration, ciphertext)
values (tests.community('cafe'), 1, tests.uid('alice'), 'agent-alice', 1, 9, 9, '\x01');
select tests.authenticate_as('bob');
select is((select count(*)::integer from public.community_message_blobs where key_id = 1), 2,
  'a blob stamped after the previous epoch closed (written around the policy) is not readable');
select is((select count(*)::integer from public.community_message_events where key_id = 1), 2, '... nor is its event');
select tests.clear_authentication();
delete from public.community_message_blobs where sender_chain_id = 9;

/** Hard rotation: closed at once; removed members get nothing of the new epoch */
select tests.authenticate_as_service_role();
select is(keyserver.rotate_community_epoch(tests.uid('alice'), tests.community('cafe'), 'hard') ->> 'grace_until', null,
  'a hard rotation has no grace window');
select throws_ok($$ select pg_temp.post('alice', 2, jsonb_build_array(pg_temp.share('agent-bob', 1))) $$,
  'KS409', 'epoch_closed', 'the previous epoch is closed at once');
select throws_ok($$ select pg_temp.post('alice', 3, jsonb_build_array(pg_temp.share('agent-erin', 1))) $$,
  'KS409', 'recipient_not_member', 'the removed member gets no share of the new epoch');
select tests.authenticate_as('bob');
select throws_ok(pg_temp.blob(2, 1), '42501', null, 'no blob under the closed epoch');

/** Members see co-members; joining later does not reveal history */
select results_eq($$ select count(*)::integer from public.community_members where community_id = tests.community('cafe') $$,
  $$ values (3) $$, 'members see the member list (including the removed member)');
select tests.clear_authentication();
insert into public.community_members (community_id, user_id) values (tests.community('cafe'), tests.uid('newbie'));
select tests.authenticate_as('newbie');
select is_empty($$ select * from public.community_message_blobs $$, 'a member who joined later does not see older blobs');

select * from finish();
rollback;
