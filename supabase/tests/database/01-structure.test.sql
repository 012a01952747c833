-- Structure and lint: the tables exist; every table in public (and keyserver) has RLS on; every
-- function has a fixed search_path ('' for security definer ones); policies call auth.uid() only
-- as (select auth.uid()), apply to authenticated or service_role only, and every column they use
-- is indexed; API roles can execute exactly the intended functions; monitoring views carry no
-- ciphertext and are service_role only. (The Supabase advisors run as a separate check in
-- ./x test pgtap.)
begin;
\ir ../helpers/tests_schema.sql
select plan(36);

select tables_are('public', array[
  'communities', 'community_members', 'community_sender_key_state', 'community_sender_key_shares',
  'community_message_blobs', 'community_message_events', 'signal_prekey_bundles', 'agents', 'agent_devices',
  'signal_prekey_bundles_v2', 'ai2ai_connections', 'contact_invites', 'user_blocks', 'dm_envelopes',
  'decrypt_failure_reports'], 'public has exactly the key server tables');
select tables_are('keyserver', array[
  'settings', 'retired_agents', 'legacy_agent_claims', 'rate_limit_buckets', 'last_resort_claims'],
  'keyserver has exactly its internal tables');

select is_empty($$
  select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname in ('public', 'keyserver') and c.relkind in ('r', 'p') and not c.relrowsecurity $$,
  'every table in public and keyserver has row level security enabled');

select is_empty($$
  select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'keyserver') and p.prosecdef
    and not ('search_path=""' = any (coalesce(p.proconfig, '{}'))) $$,
  'every security definer function sets search_path = ''''');

select is_empty($$
  select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'keyserver')
    and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%') $$,
  'every function in public and keyserver has a fixed search_path');

select is_empty($$
  select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname = 'public' and p.prosecdef and p.prorettype <> 'trigger'::regtype $$,
  'no security definer function (other than trigger functions) lives in the exposed public schema');

select is_empty($$
  select schemaname || '.' || tablename || ' ' || policyname from pg_policies
  where schemaname in ('public', 'keyserver')
    and (replace(coalesce(qual, '') || ' ' || coalesce(with_check, ''), '( SELECT auth.uid() AS uid)', '') like '%auth.uid()%') $$,
  'policies only call auth.uid() wrapped as (select auth.uid())');

select is_empty($$
  select schemaname || '.' || tablename || ' ' || policyname || ' ' || roles::text from pg_policies
  where schemaname in ('public', 'keyserver')
    and not (roles <@ array['authenticated', 'service_role']::name[]) $$,
  'policies apply to authenticated or service_role only (never public or anon)');

select is_empty($$
  select c.relname || '.' || a.attname
  from pg_policy p
  join pg_class c on c.oid = p.polrelid
  join pg_namespace n on n.oid = c.relnamespace
  join pg_depend d on d.classid = 'pg_policy'::regclass and d.objid = p.oid
                  and d.refclassid = 'pg_class'::regclass and d.refobjid = p.polrelid and d.refobjsubid > 0
  join pg_attribute a on a.attrelid = p.polrelid and a.attnum = d.refobjsubid
  where n.nspname in ('public', 'keyserver')
    and not exists (select 1 from pg_index i where i.indrelid = p.polrelid and d.refobjsubid = any (i.indkey::int2[])) $$,
  'every column a policy uses is covered by an index of its table');

select is_empty($$
  select c.relname || '.' || a.attname
  from pg_policy p
  join pg_class c on c.oid = p.polrelid
  join pg_namespace n on n.oid = c.relnamespace
  join pg_depend d on d.classid = 'pg_policy'::regclass and d.objid = p.oid
                  and d.refclassid = 'pg_class'::regclass and d.refobjid = p.polrelid and d.refobjsubid > 0
  join pg_attribute a on a.attrelid = p.polrelid and a.attnum = d.refobjsubid
  where n.nspname = 'public' and p.polcmd in ('r', 'w', 'd') and a.atttypid = 'uuid'::regtype
    and not exists (select 1 from pg_index i where i.indrelid = p.polrelid and i.indkey[0] = d.refobjsubid) $$,
  'every user-id column filtered by a select/update/delete policy leads an index');

-- Privileges of the API roles.
select is_empty($$
  select c.relname || ' ' || privilege_type from pg_class c join pg_namespace n on n.oid = c.relnamespace,
    lateral (select unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) as privilege_type) t
  where n.nspname in ('public', 'keyserver') and c.relkind in ('r', 'v', 'm')
    and has_table_privilege('anon', c.oid, t.privilege_type) $$,
  'anon holds no privilege on any table or view');
select is_empty($$
  select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname in ('public', 'keyserver') and c.relkind in ('r', 'v', 'm')
    and (has_table_privilege('authenticated', c.oid, 'TRUNCATE') or has_table_privilege('authenticated', c.oid, 'TRIGGER')
      or has_table_privilege('authenticated', c.oid, 'REFERENCES')) $$,
  'authenticated holds no TRUNCATE, TRIGGER or REFERENCES privilege');
select is_empty($$
  select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'keyserver') and has_function_privilege('anon', p.oid, 'EXECUTE') $$,
  'anon can execute no function of public or keyserver');
select set_eq($$
  select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'keyserver') and has_function_privilege('authenticated', p.oid, 'EXECUTE') $$,
  array[
    'keyserver.setting(text)', 'keyserver.setting_int(text)', 'keyserver.setting_numeric(text)',
    'keyserver.setting_interval(text)', 'keyserver.setting_text(text)',
    'keyserver.claim_agent(text)', 'keyserver.register_device(text,integer,integer,bytea)',
    'keyserver.revoke_device(text,integer)', 'keyserver.prekey_stock(text)',
    'keyserver.publish_prekey_bundles(text,integer,jsonb,jsonb)', 'keyserver.create_contact_invite(text,interval)',
    'keyserver.dm_inbox(text,integer,bigint,integer)', 'keyserver.dm_ack(text,integer,bigint[])',
    'keyserver.my_current_community_ids()', 'keyserver.my_community_shares(uuid,text,integer,integer)'],
  'authenticated executes exactly the owner-side functions and the policy helper');
select is_empty($$
  select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'keyserver') and has_function_privilege('authenticated', p.oid, 'EXECUTE')
    and p.prosecdef and p.proname <> 'my_current_community_ids' $$,
  'the only security definer function authenticated can execute is the membership policy helper');
select set_eq($$
  select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'keyserver') and p.prosecdef and p.prorettype <> 'trigger'::regtype
    and has_function_privilege('service_role', p.oid, 'EXECUTE') $$,
  array[
    'keyserver.get_prekey_bundle_for_contact_v1(uuid,text,text,integer,text,timestamp with time zone)',
    'keyserver.eligibility_facts(uuid,text,text,text,timestamp with time zone)',
    'keyserver.gateway_prekey_fetch(uuid,text,integer,text,integer,text,timestamp with time zone)',
    'keyserver.gateway_prekey_fetch_batch(jsonb,timestamp with time zone)',
    'keyserver.gateway_prekey_fetch_batch_held(jsonb,interval)',
    'keyserver.consume_rate_limit(text,integer,interval,integer,timestamp with time zone)',
    'keyserver.send_dm_batch(uuid,text,integer,jsonb,timestamp with time zone)',
    'keyserver.community_membership(uuid,uuid,timestamp with time zone)',
    'keyserver.community_recipients(uuid,uuid)',
    'keyserver.post_community_shares(uuid,text,integer,uuid,integer,jsonb,timestamp with time zone)',
    'keyserver.rotate_community_epoch(uuid,uuid,text,interval,timestamp with time zone)',
    'keyserver.legacy_agent_identity(text)', 'keyserver.claim_legacy_agent(uuid,text)',
    'keyserver.my_current_community_ids()',
    'keyserver.cleanup_expired_prekey_bundles(timestamp with time zone,integer)',
    'keyserver.cleanup_consumed_prekey_bundles(timestamp with time zone,integer)',
    'keyserver.cleanup_dm_envelopes(timestamp with time zone,integer)',
    'keyserver.cleanup_community_events(timestamp with time zone,integer)',
    'keyserver.cleanup_abuse_state(timestamp with time zone,integer)',
    'keyserver.run_cleanup(timestamp with time zone,integer)'],
  'service_role executes exactly the gateway''s security definer functions (internals stay private)');

select function_privs_are('keyserver', 'get_prekey_bundle_for_contact_v1',
  array['uuid', 'text', 'text', 'integer', 'text', 'timestamp with time zone'], 'authenticated', '{}'::text[],
  'authenticated cannot execute the gated function');
select function_privs_are('keyserver', 'get_prekey_bundle_for_contact_v1',
  array['uuid', 'text', 'text', 'integer', 'text', 'timestamp with time zone'], 'anon', '{}'::text[],
  'anon cannot execute the gated function');
select is_definer('keyserver', 'get_prekey_bundle_for_contact_v1',
  array['uuid', 'text', 'text', 'integer', 'text', 'timestamp with time zone'], 'the gated function is security definer');
select ok(not has_schema_privilege('anon', 'keyserver', 'USAGE'), 'anon cannot even see into keyserver');
select ok(not has_schema_privilege('public', 'keyserver', 'CREATE')
          and not has_schema_privilege('authenticated', 'keyserver', 'CREATE'), 'nobody but the owner creates in keyserver');

-- The V2 table's shape and keys.
select col_type_is('public', 'signal_prekey_bundles_v2', 'user_id', 'uuid', 'V2 user_id is a uuid');
select fk_ok('public', 'signal_prekey_bundles_v2', 'user_id', 'auth', 'users', 'id');
select fk_ok('public', 'signal_prekey_bundles_v2', array['user_id', 'agent_id', 'device_id'],
             'public', 'agent_devices', array['user_id', 'agent_id', 'device_id']);
select has_index('public', 'signal_prekey_bundles_v2', 'signal_prekey_bundles_v2_claim_idx',
                 array['agent_id', 'device_id', 'consumed', 'expires_at'], 'the claim index (agent_id, device_id, consumed, expires_at)');
select index_is_unique('public', 'signal_prekey_bundles_v2', 'signal_prekey_bundles_v2_last_resort_idx',
                       'one unconsumed last-resort bundle per device');
select col_is_pk('public', 'signal_prekey_bundles_v2', 'id', 'V2 has a surrogate id');
select has_trigger('public', 'signal_prekey_bundles_v2', 'prekey_bundles_v2_check_row', 'kind, ids, shape and expiry are checked on write (04-publish)');
select col_has_check('public', 'dm_envelopes', 'message_type', 'DM message_type is checked');
select col_has_check('public', 'community_sender_key_shares', 'encryption_type', 'share encryption_type is checked');

-- Monitoring views: service_role only, security invoker, no ciphertext.
select is_empty($$
  select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'keyserver' and c.relkind = 'v'
    and not (coalesce(c.reloptions, '{}') @> array['security_invoker=true']) $$,
  'monitoring views are security_invoker');
select is_empty($$
  select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'keyserver' and c.relkind = 'v'
    and (has_table_privilege('authenticated', c.oid, 'SELECT') or not has_table_privilege('service_role', c.oid, 'SELECT')) $$,
  'monitoring views are readable by service_role only');
select is_empty($$
  select c.relname || '.' || a.attname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  join pg_attribute a on a.attrelid = c.oid and a.attnum > 0
  where n.nspname = 'keyserver' and c.relkind = 'v'
    and (a.atttypid in ('bytea'::regtype, 'jsonb'::regtype, 'json'::regtype)
         or a.attname in ('body', 'ciphertext', 'encrypted_share', 'bundle_json', 'bundle_data', 'identity_key')) $$,
  'monitoring views expose no ciphertext, bundle or key columns');
select set_eq($$ select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = 'keyserver' and c.relkind = 'v' $$,
  array['monitor_prekey_stock', 'monitor_devices_last_resort_only', 'monitor_last_resort_claims',
        'monitor_rate_limit_denials', 'monitor_decrypt_failures'],
  'the monitoring views (monitor_legacy_v1_only went with the V1 retirement)');

-- Migrations are recorded as the Supabase CLI expects, baseline first.
select is((select min(version) from supabase_migrations.schema_migrations), '20261126090000', 'the baseline is the first migration');
select is((select value #>> '{}' from keyserver.settings where key = 'prekey_read_mode'), 'v2_only',
          'after every migration, prekey_read_mode is pinned to v2_only (V1 retired)');

select * from finish();
rollback;
