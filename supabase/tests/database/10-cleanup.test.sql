-- Cleanup with frozen time (p_now): expired bundles, consumed bundles after retention, expired
-- envelopes, old events, drained rate-limit buckets, expired unused invites, old claim logs and
-- reports; bounded batches; only service_role runs it; pg_cron schedules it when installed.
begin;
\ir ../helpers/tests_schema.sql
select plan(25);

do $$
begin
  perform tests.create_agent('alice');
  perform tests.create_agent('bob');
  perform tests.stock('agent-alice', 1, 10);
  insert into public.communities (id, name, created_by) values (tests.community('cafe'), 'cafe', tests.uid('alice'));
  insert into public.community_members (community_id, user_id) values (tests.community('cafe'), tests.uid('bob'));
  insert into public.community_message_blobs (community_id, key_id, sender_user_id, sender_agent_id, sender_device_id,
                                              sender_chain_id, sender_chain_iteration, ciphertext)
  select tests.community('cafe'), 1, tests.uid('bob'), 'agent-bob', 1, 1, i, '\x01' from generate_series(1, 3) i;
  insert into public.contact_invites (inviter_user_id, inviter_agent_id, token_hash) values
    (tests.uid('alice'), 'agent-alice', sha256('unused'::bytea)),
    (tests.uid('alice'), 'agent-alice', sha256('used'::bytea));
  update public.contact_invites set used_at = now(), used_by_agent_id = 'agent-bob' where token_hash = sha256('used'::bytea);
  insert into public.decrypt_failure_reports (user_id, agent_id, device_id, message_kind, failure_kind, failure_count, window_start, window_end)
  values (tests.uid('alice'), 'agent-alice', 1, 'dm', 'no_session', 1, now(), now());
end
$$;

select tests.authenticate_as('alice');
select throws_ok($$ select keyserver.run_cleanup() $$, '42501', null, 'signed-in users cannot run cleanup');
select tests.authenticate_as_service_role();

/** Prekey bundles */
select throws_ok($$ select keyserver.claim_prekey_bundles('agent-alice', 1, now()) $$, '42501', null,
  'the internal claim function is not executable even by service_role (run as the test runner below)');
select tests.clear_authentication();
select is(keyserver.claim_prekey_bundles('agent-alice', 1, now()) #>> '{0,kind}', 'one_time', 'consume one bundle now');
select is(keyserver.claim_prekey_bundles('agent-alice', 1, now()) #>> '{0,kind}', 'one_time', 'and another');
select tests.authenticate_as_service_role();
select is(keyserver.cleanup_expired_prekey_bundles(now() + interval '89 days'), 0::bigint, 'nothing has expired after 89 days');
select is(keyserver.cleanup_consumed_prekey_bundles(now() + interval '6 days'), 0::bigint, 'consumed bundles are kept 7 days');
select is(keyserver.cleanup_consumed_prekey_bundles(now() + interval '8 days'), 2::bigint, '... and deleted after');
select is(keyserver.cleanup_expired_prekey_bundles(now() + interval '91 days', 3), 3::bigint, 'expired one-time bundles go, in bounded batches');
select is(keyserver.cleanup_expired_prekey_bundles(now() + interval '91 days'), 5::bigint, '... the rest in the next batch');
select is((select count(*)::integer from public.signal_prekey_bundles_v2 where agent_id = 'agent-alice'), 1,
  'the last-resort bundle (180-day lifetime) remains');

/** Envelopes */
select is(keyserver.send_dm_batch(tests.uid('bob'), 'agent-bob', 1,
  '[{"to_agent_id": "agent-alice", "to_device_id": 1, "message_type": 3, "body": "AQ=="}]') ->> 'accepted', '1', 'an envelope is pending');
select is(keyserver.cleanup_dm_envelopes(now() + interval '29 days'), 0::bigint, 'pending envelopes are never deleted before they expire');
select is(keyserver.cleanup_dm_envelopes(now() + interval '31 days'), 1::bigint, 'expired envelopes are deleted');

/** Events */
select is(keyserver.cleanup_community_events(now() + interval '29 days'), 0::bigint, 'recent events are kept');
select is(keyserver.cleanup_community_events(now() + interval '31 days'), 3::bigint, 'events older than the retention are deleted');
select tests.clear_authentication();
select is((select count(*)::integer from public.community_message_blobs), 3, '... their blobs stay');
select tests.authenticate_as_service_role();

/** Abuse state */
do $$
begin
  perform keyserver.consume_rate_limit('test:short', 10, interval '1 minute', 1, now());
  perform keyserver.consume_rate_limit('test:long', 10, interval '7 days', 1, now());
end
$$;
select is(keyserver.cleanup_abuse_state(now() + interval '2 days'),
  '{"rate_limit_buckets": 2, "contact_invites": 0, "last_resort_claims": 0, "decrypt_failure_reports": 0}'::jsonb,
  'drained idle buckets go (test:short and the decrypt-report bucket); unexpired invites stay');
select is((select array_agg(key) from keyserver.rate_limit_buckets), array['test:long'], 'a bucket still draining stays');
select is(keyserver.cleanup_abuse_state(now() + interval '8 days') -> 'contact_invites', '1'::jsonb,
  'an expired unused invite goes');
select tests.clear_authentication();
select is((select count(*)::integer from public.contact_invites), 1, 'the used invite stays (it is a contact fact)');
select tests.authenticate_as_service_role();
select is(keyserver.cleanup_abuse_state(now() + interval '91 days') -> 'decrypt_failure_reports', '1'::jsonb,
  'decrypt reports go after 90 days');

/** Everything at once, and the schedule */
select is((select array_agg(k order by k) from jsonb_object_keys(keyserver.run_cleanup(now() + interval '365 days')) k),
  array['community_events', 'consumed_prekey_bundles', 'contact_invites', 'decrypt_failure_reports', 'dm_envelopes',
        'expired_prekey_bundles', 'last_resort_claims', 'rate_limit_buckets'],
  'run_cleanup runs every cleanup and reports each count');
select tests.clear_authentication();
select is((select count(*)::integer from public.signal_prekey_bundles_v2), 0, 'a year on, even the last-resort bundle has expired');

create function pg_temp.cron_job() returns text language plpgsql as $$
declare
  v text;
begin
  if not exists (select 1 from pg_extension where extname = 'pg_cron') then
    return 'no pg_cron';
  end if;
  execute $q$ select schedule || ' ' || command from cron.job where jobname = 'keyserver-cleanup' $q$ into v;
  return v;
end;
$$;
select ok(pg_temp.cron_job() in ('*/10 * * * * select keyserver.run_cleanup()', 'no pg_cron'),
  'pg_cron runs keyserver.run_cleanup() every 10 minutes (when pg_cron is installed)');
select ok(exists (select 1 from pg_extension where extname = 'pg_cron'), 'pg_cron is installed in the local stack');

select * from finish();
rollback;
