-- After the V1 retirement migration, applied with legacy rows present (and after the cutover):
-- the rows are kept but no API role can reach them, the read mode is pinned to v2_only, the
-- gated function never serves V1, and legacy agent ids stay protected.
begin;
\ir ../helpers/tests_schema.sql
select plan(14);

select is((select count(*)::integer from public.signal_prekey_bundles), 4, 'the legacy rows are kept');
select is((select value #>> '{}' from keyserver.settings where key = 'prekey_read_mode'), 'v2_only', 'the read mode is v2_only');
select throws_ok($$ update keyserver.settings set value = '"dual_read"' where key = 'prekey_read_mode' $$, '23514', null,
  '... and pinned there');
select ok(not has_table_privilege(r, 'public.signal_prekey_bundles', p), format('%s has no %s on V1', r, p))
from unnest(array['anon', 'authenticated', 'service_role']) r, unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p
where p = 'SELECT' or r = 'authenticated';
select hasnt_view('keyserver', 'monitor_legacy_v1_only', 'the cutover view is gone');

select set_config('role', 'service_role', true);
select is(keyserver.claim_legacy_agent('00000000-0000-4000-b000-0000000000a1', 'prod-agent-ann'), true,
  'ann''s legacy id can still be claimed through the verified path');
select set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-b000-0000000000b2", "role": "authenticated"}', true);
select throws_ok($$ select keyserver.claim_agent('prod-agent-gone') $$, 'KS409', 'agent_unavailable',
  'unclaimed legacy ids stay protected after the retirement');
select set_config('role', 'service_role', true);
select is(keyserver.claim_legacy_agent('00000000-0000-4000-b000-0000000000b2', 'prod-agent-ben'), true, 'ben claims his');
select is(keyserver.get_prekey_bundle_for_contact_v1('00000000-0000-4000-b000-0000000000b2', 'prod-agent-ben', 'prod-agent-ann') -> 'bundles',
  '[]'::jsonb, 'the gated function never serves V1 again (ann has no V2 bundle)');

select * from finish();
rollback;
