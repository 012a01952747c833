-- Monitoring: the views report stock, last-resort-only devices, last-resort claims, rate-limit
-- denials and decrypt failures, to service_role only (the V1-only view is tested with the upgrade); decrypt-failure reports
-- are written by clients for their own devices and rate-limited.
begin;
\ir ../helpers/tests_schema.sql
select plan(13);

do $$
begin
  perform tests.create_agent('alice', array[1, 2, 3]);
  perform tests.create_agent('bob');
  perform tests.stock('agent-alice', 1, 12);
  perform tests.stock('agent-alice', 2, 3);
  perform tests.stock('agent-alice', 3, 0, 1, false);
  perform tests.stock('agent-bob', 1, 0);
  insert into public.communities (id, name, created_by) values (tests.community('cafe'), 'cafe', tests.uid('alice'));
  insert into public.community_members (community_id, user_id) values (tests.community('cafe'), tests.uid('bob'));
  update keyserver.settings set value = '2' where key = 'decrypt_report_rate_capacity';
end
$$;

select tests.authenticate_as_service_role();
do $$ begin perform keyserver.get_prekey_bundle_for_contact_v1(tests.uid('alice'), 'agent-alice', 'agent-bob'); end $$;
do $$ begin perform keyserver.get_prekey_bundle_for_contact_v1(tests.uid('alice'), 'agent-alice', 'agent-alice', 3); end $$;
do $$
begin
  perform keyserver.consume_rate_limit('prekey_fetch:pair:x:y', 1, interval '1 hour');
  perform keyserver.consume_rate_limit('prekey_fetch:pair:x:y', 1, interval '1 hour');
end
$$;

select results_eq($$ select device_id, one_time_remaining, last_resort_present, low_stock from keyserver.monitor_prekey_stock
                     where agent_id = 'agent-alice' order by device_id $$,
  $$ values (1, 12, true, false), (2, 3, true, true), (3, 0, false, true) $$, 'prekey stock per device');
select results_eq($$ select agent_id, device_id, last_resort_present from keyserver.monitor_devices_last_resort_only order by 1, 2 $$,
  $$ values ('agent-alice', 3, false), ('agent-bob', 1, true) $$, 'devices down to last resort only (or nothing)');
select results_eq($$ select agent_id, device_id, claims_24h from keyserver.monitor_last_resort_claims $$,
  $$ values ('agent-bob', 1, 1) $$, 'last-resort claims per device');
select results_eq($$ select bucket_family, buckets, denied_total from keyserver.monitor_rate_limit_denials where bucket_family = 'prekey_fetch:pair' $$,
  $$ values ('prekey_fetch:pair', 3, 1::bigint) $$, 'rate-limit denials per bucket family');

/** Decrypt-failure reports */
select tests.authenticate_as('alice');
select throws_ok($$ insert into public.decrypt_failure_reports (user_id, agent_id, device_id, message_kind, failure_kind, failure_count, window_start, window_end)
                  values (auth.uid(), 'agent-alice', 1, 'dm', 'secret plaintext here', 1, now(), now()) $$,
  '23514', null, 'failure kinds are a closed list (no free text)');
select throws_ok($$ insert into public.decrypt_failure_reports (user_id, agent_id, device_id, message_kind, failure_kind, failure_count, window_start, window_end)
                  values (auth.uid(), 'agent-bob', 1, 'dm', 'no_session', 1, now(), now()) $$,
  '42501', null, 'a client cannot report for another user''s device');
select lives_ok($$ insert into public.decrypt_failure_reports (user_id, agent_id, device_id, message_kind, failure_kind, failure_count, window_start, window_end)
                  values (auth.uid(), 'agent-alice', 1, 'dm', 'invalid_message', 3, now() - interval '10 minutes', now()) $$,
  'a client reports failure counts for its own device');
select lives_ok($$ insert into public.decrypt_failure_reports (user_id, agent_id, device_id, message_kind, failure_kind, failure_count, window_start, window_end)
                  values (auth.uid(), 'agent-alice', 2, 'dm', 'invalid_message', 4, now() - interval '10 minutes', now()) $$,
  'and for its other device');
select throws_ok($$ insert into public.decrypt_failure_reports (user_id, agent_id, device_id, message_kind, failure_kind, failure_count, window_start, window_end)
                  values (auth.uid(), 'agent-alice', 1, 'dm', 'no_session', 1, now(), now()) $$,
  'KS429', 'rate_limited', 'reports are rate limited per user (refused reports above did not count)');
select throws_ok($$ select * from keyserver.monitor_decrypt_failures $$, '42501', null, 'clients cannot read the monitoring views');
select tests.authenticate_as_service_role();
select results_eq($$ select message_kind, failure_kind, reports, failures, reporting_devices from keyserver.monitor_decrypt_failures $$,
  $$ values ('dm', 'invalid_message', 2, 7::bigint, 2) $$, 'decrypt failures aggregated per hour and kind');
select tests.authenticate_as('alice');
select throws_ok($$ select * from keyserver.monitor_prekey_stock $$, '42501', null, 'nor the stock view');
select tests.authenticate_as_anon();
select throws_ok($$ select * from keyserver.monitor_prekey_stock $$, '42501', null, 'anon neither');

select * from finish();
rollback;
