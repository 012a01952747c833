-- After every migration up to (not including) the V1 retirement, applied to production-like
-- data (fixture_production.sql): the data survived, legacy shares read as device 1, legacy
-- agent ids are protected, and the V1 -> V2 window works: dual read (V2 first, then V1 for the
-- same agent) and the cutover to v2_only.
begin;
\ir ../helpers/tests_schema.sql
select plan(26);

create function pg_temp.u(p_name text) returns uuid language sql as $$
  select case p_name when 'ann' then '00000000-0000-4000-b000-0000000000a1'::uuid
                     when 'ben' then '00000000-0000-4000-b000-0000000000b2'::uuid
                     when 'cat' then '00000000-0000-4000-b000-0000000000c3'::uuid end
$$;
create function pg_temp.as_user(p_name text) returns void language sql as $$
  select set_config('role', 'authenticated', true),
         set_config('request.jwt.claims', json_build_object('sub', pg_temp.u(p_name), 'role', 'authenticated')::text, true)
$$;
create function pg_temp.ben_fetches_ann(p_device integer default null) returns jsonb language sql as $$
  select keyserver.get_prekey_bundle_for_contact_v1(pg_temp.u('ben'), 'prod-agent-ben', 'prod-agent-ann', p_device)
$$;
grant execute on all functions in schema pg_temp to authenticated, service_role;

/** The data survived every upgrade */
select results_eq($$ select (select count(*) from public.communities), (select count(*) from public.community_members),
                            (select count(*) from public.community_sender_key_shares), (select count(*) from public.community_message_blobs),
                            (select count(*) from public.community_message_events), (select count(*) from public.signal_prekey_bundles) $$,
  $$ values (1::bigint, 3::bigint, 2::bigint, 2::bigint, 2::bigint, 4::bigint) $$, 'every production row is still there');
select results_eq($$ select key_id, previous_key_id, rotation_kind from public.community_sender_key_state $$,
  $$ values (2, 1, 'hard') $$, 'the epoch state is unchanged');
select results_eq($$ select share_kind, from_device_id, to_device_id from public.community_sender_key_shares order by message_type $$,
  $$ values ('epoch_key_v1', null::integer, null::integer), ('epoch_key_v1', null, null) $$,
  'legacy shares keep no devices and become epoch_key_v1');
select is((select value #>> '{}' from keyserver.settings where key = 'prekey_read_mode'), 'dual_read', 'the window starts in dual_read');
select throws_ok($$ insert into public.community_message_blobs (community_id, key_id, sender_user_id, sender_agent_id, ciphertext)
                   values ('00000000-0000-4000-b000-00000000cafe', 2, pg_temp.u('ann'), 'prod-agent-ann', '\x01') $$,
  '23514', null, 'new blobs must name a device and chain (the NOT VALID check applies to new rows only)');

/** Legacy agent ids during the window */
select pg_temp.as_user('ben');
select throws_ok($$ select keyserver.claim_agent('prod-agent-ann') $$, 'KS409', 'agent_unavailable',
  'nobody claims a legacy agent id directly, not even its rightful owner (no proof yet)');
select pg_temp.as_user('cat');
select is(keyserver.claim_agent(pg_temp.u('cat')::text), true, 'a legacy id equal to the user''s own id is claimable directly');
select tests.authenticate_as_service_role();
select is(keyserver.claim_legacy_agent(pg_temp.u('ann'), 'prod-agent-ann'), true, 'the gateway claims ann''s legacy id after verifying her proof');
select is(keyserver.claim_legacy_agent(pg_temp.u('ben'), 'prod-agent-ben'), true, '... and ben''s');

/** Legacy shares and blobs */
select pg_temp.as_user('ben');
select is(keyserver.register_device('prod-agent-ben', 1, 202, '\x05' || sha256('ben'::bytea)) ->> 'created', 'true',
  'ben registers device 1 of his legacy agent');
select results_eq($$ select encrypted_share from keyserver.my_community_shares('00000000-0000-4000-b000-00000000cafe', 'prod-agent-ben', 1) $$,
  $$ values ('\x0a0a'::bytea) $$, 'the legacy share (no device) reads as device 1');
select is_empty($$ select * from keyserver.my_community_shares('00000000-0000-4000-b000-00000000cafe', 'prod-agent-ben', 2) $$,
  '... and not as device 2');
select is((select count(*)::integer from public.community_message_blobs), 2, 'ben still reads the legacy blobs');
select is((select count(*)::integer from public.community_message_events), 2, '... and their events');
select pg_temp.as_user('cat');
select is((select count(*)::integer from public.community_message_blobs), 0, 'the removed member reads none');

/** V1 owner access through agents */
select pg_temp.as_user('ann');
select results_eq($$ select agent_id from public.signal_prekey_bundles $$, $$ values ('prod-agent-ann') $$,
  'ann reads her own V1 row now that her agent is claimed (the production policy never allowed it)');
select pg_temp.as_user('ben');
select results_eq($$ select agent_id from public.signal_prekey_bundles $$, $$ values ('prod-agent-ben') $$,
  'ben reads only his');

/** Dual read: V2 first, then V1 for the same agent */
select tests.authenticate_as_service_role();
select is(pg_temp.ben_fetches_ann() -> 'bundles',
  jsonb_build_array(jsonb_build_object('device_id', 1, 'registration_id', 101, 'identity_key', 'BWFubg==', 'kind', 'legacy_v1',
                                       'key_id', null, 'bundle', '{"legacy": "ann"}'::jsonb)),
  'with no V2 bundle, ann''s V1 bundle is served (as device 1)');
select pg_temp.as_user('ann');
select is(keyserver.register_device('prod-agent-ann', 1, 201, '\x05' || sha256('ann'::bytea)) ->> 'created', 'true', 'ann registers device 1');
select is(keyserver.publish_prekey_bundles('prod-agent-ann', 1, '[{"key_id": 1, "bundle": {"v2": 1}}]') ->> 'one_time_inserted', '1',
  'ann publishes one V2 bundle');
select tests.authenticate_as_service_role();
select is(pg_temp.ben_fetches_ann() #>> '{bundles,0,kind}', 'one_time', 'V2 comes first');
select is(pg_temp.ben_fetches_ann() #>> '{bundles,0,kind}', 'legacy_v1', 'when V2 has nothing left, V1 for the same agent');
select is(pg_temp.ben_fetches_ann(2) -> 'bundles', '[]'::jsonb, 'V1 only stands in for device 1');
select tests.clear_authentication();
select results_eq($$ select agent_id, claimed from keyserver.monitor_legacy_v1_only order by 1 $$,
  $$ values ('00000000-0000-4000-b000-0000000000c3', true), ('prod-agent-ann', true), ('prod-agent-ben', true), ('prod-agent-gone', false) $$,
  'the cutover view lists the agents only V1 can serve');

/** Cutover */
select throws_ok($$ update keyserver.settings set value = '"v3"' where key = 'prekey_read_mode' $$, '23514', null,
  'prekey_read_mode is dual_read or v2_only');
update keyserver.settings set value = '"v2_only"' where key = 'prekey_read_mode';
select tests.authenticate_as_service_role();
select is(pg_temp.ben_fetches_ann() -> 'bundles', '[]'::jsonb, 'after the cutover V1 is no longer read');

select * from finish();
rollback;
