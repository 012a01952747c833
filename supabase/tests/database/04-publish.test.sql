-- Publishing (as the owner, through keyserver.publish_prekey_bundles): batches of up to 100
-- one-time bundles, idempotent by key id, a last-resort bundle replacing the previous one, the
-- stock query with its low-stock flag, the per-device cap (a clear error, nothing stored),
-- bundles that stay consumed, and devices whose identity changes.
begin;
\ir ../helpers/tests_schema.sql
select plan(41);

do $$ begin perform tests.create_agent('alice', array[1, 2]); end $$;
select tests.authenticate_as('alice');

create temporary table batch as
select jsonb_agg(jsonb_build_object('key_id', k, 'bundle', jsonb_build_object('prekey', k))) as one_time
from generate_series(1, 100) k;
grant select on batch to authenticated;

select is((keyserver.publish_prekey_bundles('agent-alice', 1, (select one_time from batch), '{"key_id": 1, "bundle": {"lr": 1}}')
           - 'stock'),
  '{"one_time_inserted": 100, "one_time_duplicates": 0, "one_time_conflicts": 0, "last_resort": "inserted"}'::jsonb,
  'a batch of 100 one-time bundles and a last-resort bundle is stored');
select is((keyserver.publish_prekey_bundles('agent-alice', 1, (select one_time from batch), '{"key_id": 1, "bundle": {"lr": 1}}')
           - 'stock'),
  '{"one_time_inserted": 0, "one_time_duplicates": 100, "one_time_conflicts": 0, "last_resort": "unchanged"}'::jsonb,
  're-uploading the same key ids is a no-op (idempotent)');
select is((select count(*)::integer from public.signal_prekey_bundles_v2 where agent_id = 'agent-alice'), 101,
  'no duplicate rows after the retry');
select is(keyserver.publish_prekey_bundles('agent-alice', 1, '[{"key_id": 5, "bundle": {"different": true}}]') -> 'one_time_conflicts',
  '1'::jsonb, 'the same key id with a different bundle is reported as a conflict');
select is((select bundle_json from public.signal_prekey_bundles_v2 where agent_id = 'agent-alice' and key_id = 5 and kind = 'one_time'),
  '{"prekey": 5}'::jsonb, '... and never overwrites the stored bundle');

select throws_ok($$ select keyserver.publish_prekey_bundles('agent-alice', 1,
                     (select jsonb_agg(jsonb_build_object('key_id', k, 'bundle', '{}'::jsonb)) from generate_series(1000, 1100) k)) $$,
  'KS400', 'batch_too_large', 'a batch of 101 is refused');
select throws_ok($$ select keyserver.publish_prekey_bundles('agent-alice', 1, '[{"key_id": "x"}]') $$,
  'KS400', 'invalid_argument', 'a malformed bundle is refused');
select throws_ok($$ select keyserver.publish_prekey_bundles('agent-alice', 3, '[{"key_id": 1, "bundle": {}}]') $$,
  'KS403', 'device_not_owned', 'publishing for an unregistered device is refused');

/** Stock */
select results_eq($$ select device_id, one_time_remaining, last_resort_present, low_stock, low_stock_threshold
                     from keyserver.prekey_stock('agent-alice') $$,
  $$ values (1, 100, true, false, 10), (2, 0, false, true, 10) $$,
  'stock per device, with the low-stock flag from settings');
select tests.clear_authentication();
update public.signal_prekey_bundles_v2 set consumed = true
where agent_id = 'agent-alice' and device_id = 1 and kind = 'one_time' and key_id > 9;
select tests.authenticate_as('alice');
select results_eq($$ select one_time_remaining, low_stock from keyserver.prekey_stock('agent-alice') where device_id = 1 $$,
  $$ values (9, true) $$, 'below the threshold the device is low on stock');
select is(keyserver.publish_prekey_bundles('agent-alice', 1, '[]') -> 'stock',
  '{"one_time_remaining": 9, "last_resort_present": true, "low_stock": true, "low_stock_threshold": 10}'::jsonb,
  'publish returns the device''s stock');
select is(keyserver.publish_prekey_bundles('agent-alice', 1, '[{"key_id": 50, "bundle": {"prekey": 50}}]') -> 'one_time_inserted',
  '0'::jsonb, 'a consumed key id is never revived by re-uploading it');

/** Last resort */
select is(keyserver.publish_prekey_bundles('agent-alice', 1, '[]', '{"key_id": 2, "bundle": {"lr": 2}}') ->> 'last_resort',
  'replaced', 'a new last-resort key replaces the previous one');
select results_eq($$ select key_id, consumed from public.signal_prekey_bundles_v2
                     where agent_id = 'agent-alice' and device_id = 1 and kind = 'last_resort' order by key_id $$,
  $$ values (1, true), (2, false) $$, 'exactly one unconsumed last-resort bundle remains');
select is(keyserver.publish_prekey_bundles('agent-alice', 1, '[]', '{"key_id": 1, "bundle": {"lr": 1}}') ->> 'last_resort',
  'stale', 'an older replaced last-resort key is not brought back');
select throws_ok($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
                   values (tests.uid('alice'), 'agent-alice', 1, 3, 'last_resort', '{}') $$, '23505', null,
  'a second unconsumed last-resort bundle per device is impossible');

/** Consumed stays consumed */
select throws_ok($$ update public.signal_prekey_bundles_v2 set consumed = false, consumed_at = null
                   where agent_id = 'agent-alice' and key_id = 50 and kind = 'one_time' $$, 'KS409', 'bundle_already_consumed',
  'the owner cannot un-consume a bundle');
select throws_ok($$ update public.signal_prekey_bundles_v2 set bundle_json = '{}' where agent_id = 'agent-alice' $$, '42501', null,
  'the owner cannot rewrite a stored bundle');
select throws_ok($$ update public.signal_prekey_bundles_v2 set user_id = tests.uid('bob') where agent_id = 'agent-alice' $$, '42501', null,
  'the owner cannot give rows away');

/** Table rules, whoever writes (checked only by the writes that can break them) */
select tests.clear_authentication();
update public.signal_prekey_bundles_v2 set consumed = true
where agent_id = 'agent-alice' and device_id = 1 and key_id = 8 and kind = 'one_time';
select isnt((select consumed_at from public.signal_prekey_bundles_v2
             where agent_id = 'agent-alice' and device_id = 1 and key_id = 8 and kind = 'one_time'), null,
  'a bundle consumed without a time is stamped');
select throws_ok($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
                   values (tests.uid('alice'), 'agent-alice', 1, 900, 'one_time',
                           jsonb_build_object('k', repeat('x', 8200))) $$, '23514', null,
  'a bundle over 8 KiB as text is refused');
select throws_ok($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
                   values (tests.uid('alice'), 'agent-alice', 1, 901, 'one_time', '[1]') $$, '23514', null,
  'a bundle that is not a JSON object is refused');
select throws_ok($$ update public.signal_prekey_bundles_v2 set bundle_json = jsonb_build_object('k', repeat('x', 8200))
                   where agent_id = 'agent-alice' and device_id = 1 and key_id = 7 and kind = 'one_time' $$, '23514', null,
  'and so is rewriting a stored bundle past the limit');
select throws_ok($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
                   values (tests.uid('alice'), 'agent-alice', 1, 16777216, 'one_time', '{}') $$, '23514', null,
  'key ids stop at 2^24 - 1');
select throws_ok($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
                   values (tests.uid('alice'), 'agent-alice', 128, 902, 'one_time', '{}') $$, '23514', null,
  'device ids stop at 127');
select throws_ok($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
                   values (tests.uid('alice'), 'agent-alice', 1, 903, 'signed', '{}') $$, '23514', null,
  'kinds are one_time and last_resort');
select throws_ok($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json, expires_at)
                   values (tests.uid('alice'), 'agent-alice', 1, 904, 'one_time', '{}', now() + interval '401 days') $$, '23514', null,
  'a bundle lives at most 400 days');
select throws_ok($$ update public.signal_prekey_bundles_v2 set key_id = -1
                   where agent_id = 'agent-alice' and device_id = 1 and key_id = 7 and kind = 'one_time' $$, '23514', null,
  'the rules hold for updates of those columns too');
select throws_ok($$ update public.signal_prekey_bundles_v2 set consumed_at = now()
                   where agent_id = 'agent-alice' and device_id = 1 and key_id = 7 and kind = 'one_time' $$, '23514', null,
  'an unconsumed bundle has no consumed_at');
select tests.authenticate_as('alice');

/** Per-device cap */
select tests.clear_authentication();
update keyserver.settings set value = '120' where key = 'prekey_device_cap';
select tests.authenticate_as('alice');
select is(keyserver.publish_prekey_bundles('agent-alice', 2, (select one_time from batch)) -> 'one_time_inserted', '100'::jsonb,
  '100 bundles fit under a cap of 120');
select throws_like($$ select keyserver.publish_prekey_bundles('agent-alice', 2,
                     (select jsonb_agg(jsonb_build_object('key_id', k, 'bundle', '{}'::jsonb)) from generate_series(200, 230) k)) $$,
  'prekey_cap_exceeded', 'exceeding the per-device cap is refused');
select is(tests.error_of($$ select keyserver.publish_prekey_bundles('agent-alice', 2,
                     (select jsonb_agg(jsonb_build_object('key_id', k, 'bundle', '{}'::jsonb)) from generate_series(200, 230) k)) $$),
  'KS507 prekey_cap_exceeded', '... with SQLSTATE KS507');
select is((select one_time_remaining from keyserver.prekey_stock('agent-alice') where device_id = 2), 100,
  '... and nothing of the refused batch was stored (never silently dropped)');
select throws_like($$ insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
                     select tests.uid('alice'), 'agent-alice', 2, k, 'one_time', '{}' from generate_series(300, 330) k $$,
  'prekey_cap_exceeded', 'the cap applies to direct inserts as well');
select is(keyserver.publish_prekey_bundles('agent-alice', 2,
            (select jsonb_agg(jsonb_build_object('key_id', k, 'bundle', '{}'::jsonb)) from generate_series(200, 219) k)) -> 'one_time_inserted',
  '20'::jsonb, 'filling up to the cap exactly is fine');

/** Identity change and revocation */
select is(keyserver.register_device('agent-alice', 2, 1002, tests.identity_key('alice')) ->> 'identity_key_changed', 'false',
  're-registering with the same identity keeps the bundles');
select is((select one_time_remaining from keyserver.prekey_stock('agent-alice') where device_id = 2), 120, '... all 120 of them');
select is(keyserver.register_device('agent-alice', 2, 1002, tests.identity_key('alice-new')) ->> 'identity_key_changed', 'true',
  'a new identity key is reported');
select is((select one_time_remaining from keyserver.prekey_stock('agent-alice') where device_id = 2), 0,
  '... and drops the bundles signed by the old identity');
select is(keyserver.revoke_device('agent-alice', 2), true, 'a device can be revoked');
select throws_ok($$ select keyserver.publish_prekey_bundles('agent-alice', 2, '[{"key_id": 1, "bundle": {}}]') $$,
  'KS403', 'device_not_owned', 'a revoked device cannot publish');

select * from finish();
rollback;
