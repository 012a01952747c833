-- The one-time claim never walks the expiry index. Bundles uploaded together share an expiry,
-- so the expiry index (expires_at where not consumed) holds every device's bundles in upload
-- order; a claim that scanned it went through all bundles uploaded before the target's. With
-- the generic plan PL/pgSQL uses after five calls of a session, "consumed = false ... order by
-- expires_at limit 1" took that index (20261129090100). Counted with the transaction's index
-- scan statistics, under forced generic plans.
begin;
\ir ../helpers/tests_schema.sql
select plan(5);

do $$
declare
  i integer;
begin
  for i in 1..40 loop
    perform tests.create_agent('d' || i);
    perform tests.stock('agent-d' || i, 1, 60);
  end loop;
  insert into public.communities (id, name, created_by) values (tests.community('plan'), 'plan', tests.uid('d1'));
  insert into public.community_members (community_id, user_id) values (tests.community('plan'), tests.uid('d40'));
end
$$;
analyze public.signal_prekey_bundles_v2;
set plan_cache_mode = force_generic_plan;
-- Without the claim index (dropped in this transaction only) the planner's choice does not
-- hang on cost estimates: a query the expiry index can serve is served by it, and the claims
-- below show that theirs cannot be.
drop index public.signal_prekey_bundles_v2_claim_idx;

create temporary table scans as
select pg_stat_get_xact_numscans('public.signal_prekey_bundles_v2_expires_idx'::regclass) as expiry;
create function pg_temp.expiry_scans_since() returns bigint language sql as $$
  select pg_stat_get_xact_numscans('public.signal_prekey_bundles_v2_expires_idx'::regclass) - (select expiry from scans)
$$;

prepare old_claim(text, integer, timestamptz) as
  select c.id from public.signal_prekey_bundles_v2 c
  where c.agent_id = $1 and c.device_id = $2 and c.consumed = false and c.expires_at > $3 and c.kind = 'one_time'
  order by c.expires_at limit 1 for update skip locked;
create function pg_temp.old_claim_plan() returns text language plpgsql as $$
declare
  v_line text;
  v_plan text := '';
begin
  for v_line in execute 'explain execute old_claim(''agent-d40'', 1, now())' loop
    v_plan := v_plan || v_line || E'\n';
  end loop;
  return v_plan;
end
$$;
select matches(pg_temp.old_claim_plan(), 'signal_prekey_bundles_v2_expires_idx',
  'the old form of the claim ("consumed = false ... order by expires_at") is served by the expiry index');

select is((select count(*)::integer from jsonb_array_elements(keyserver.claim_prekey_bundles('agent-d40', 1, now())) b
           where b ->> 'kind' = 'one_time'), 1, 'claim_prekey_bundles claims a one-time bundle');
select is(pg_temp.expiry_scans_since(), 0::bigint, '... without scanning the expiry index');

update scans set expiry = pg_stat_get_xact_numscans('public.signal_prekey_bundles_v2_expires_idx'::regclass);
select tests.authenticate_as_service_role();
select is((select f.bundles::jsonb -> 0 ->> 'kind'
           from keyserver.gateway_prekey_fetch_batch(jsonb_build_array(jsonb_build_object(
             'caller_user', tests.uid('d1'), 'caller_agent', 'agent-d1', 'caller_device', 1,
             'target_agent', 'agent-d40', 'target_device', 1))) f),
  'one_time', 'the batch fetch claims a one-time bundle');
select tests.clear_authentication();
select is(pg_temp.expiry_scans_since(), 0::bigint, '... without scanning the expiry index either');

select * from finish();
rollback;
