-- The prekey fetches look rows up by index while the tables are a few rows, where the planner
-- would otherwise read them whole for every lookup (20261201090000). Counted with the
-- transaction's scan statistics.
begin;
\ir ../helpers/tests_schema.sql
select plan(6);

do $$
begin
  perform tests.create_agent('alice');
  perform tests.create_agent('friend');
  perform tests.stock('agent-friend', 1, 5);
  insert into public.communities (id, name, created_by) values (tests.community('probe'), 'probe', tests.uid('alice'));
  insert into public.community_members (community_id, user_id) values (tests.community('probe'), tests.uid('friend'));
end
$$;
analyze public.agents, public.agent_devices, public.community_members, public.user_blocks,
  public.ai2ai_connections, public.contact_invites, public.signal_prekey_bundles_v2;

create temporary table looked_up as
select relid, seq_scan from pg_stat_xact_user_tables
where schemaname = 'public' and relname in ('agents', 'agent_devices', 'community_members', 'user_blocks',
                                             'ai2ai_connections', 'contact_invites', 'signal_prekey_bundles_v2');
create function pg_temp.tables_read_whole() returns text language sql as $$
  select coalesce(string_agg(t.relname, ', ' order by t.relname), '')
  from pg_stat_xact_user_tables t join looked_up l using (relid)
  where t.seq_scan > l.seq_scan
$$;

select ok((select proconfig @> array['enable_seqscan=off'] from pg_proc
           where oid = 'keyserver.gateway_prekey_fetch_batch(jsonb,timestamptz)'::regprocedure),
  'the batch runs without sequential scans');
select ok((select proconfig @> array['enable_seqscan=off'] from pg_proc
           where oid = 'keyserver.gateway_prekey_fetch(uuid,text,integer,text,integer,text,timestamptz)'::regprocedure),
  'the fetch with an invite too');

select tests.authenticate_as_service_role();
select is((select f.bundles::jsonb -> 0 ->> 'kind'
           from keyserver.gateway_prekey_fetch_batch(jsonb_build_array(jsonb_build_object(
             'caller_user', tests.uid('alice'), 'caller_agent', 'agent-alice', 'caller_device', 1,
             'target_agent', 'agent-friend', 'target_device', 1))) f),
  'one_time', 'the batch hands out a one-time bundle');
select tests.clear_authentication();
select is(pg_temp.tables_read_whole(), '', '... reading no table whole');

update looked_up l set seq_scan = t.seq_scan from pg_stat_xact_user_tables t where t.relid = l.relid;
select tests.authenticate_as_service_role();
select is((select f.bundles::jsonb -> 0 ->> 'kind'
           from keyserver.gateway_prekey_fetch(tests.uid('alice'), 'agent-alice', 1, 'agent-friend', 1, null) f),
  'one_time', 'the single fetch hands out a one-time bundle');
select tests.clear_authentication();
select is(pg_temp.tables_read_whole(), '', '... reading no table whole either');

select * from finish();
rollback;
