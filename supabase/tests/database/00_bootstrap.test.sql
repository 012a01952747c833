-- The Supabase compatibility bootstrap behaves like hosted Supabase: auth.uid()/role()/jwt()
-- follow the request claims, and RLS denies another user's rows to `authenticated`.
begin;
select plan(12);

select has_schema('auth');
select has_table('auth', 'users', 'auth.users exists');
select has_role('anon');
select has_role('authenticated');
select has_role('service_role');

insert into auth.users (id, email) values
  ('11111111-1111-4111-8111-111111111111', 'alice@bootstrap.test'),
  ('22222222-2222-4222-8222-222222222222', 'bob@bootstrap.test');

create table public.bootstrap_probe (owner uuid not null, note text);
alter table public.bootstrap_probe enable row level security;
create policy bootstrap_probe_owner on public.bootstrap_probe for select to authenticated
  using (owner = (select auth.uid()));
insert into public.bootstrap_probe values
  ('11111111-1111-4111-8111-111111111111', 'alice row'),
  ('22222222-2222-4222-8222-222222222222', 'bob row');

select is(auth.uid(), null, 'no claims: auth.uid() is null');

set local role authenticated;
set local request.jwt.claims = '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
select is(auth.uid(), '11111111-1111-4111-8111-111111111111'::uuid, 'auth.uid() follows request.jwt.claims');
select is(auth.role(), 'authenticated', 'auth.role() follows the role claim');
select is(auth.jwt() ->> 'sub', '11111111-1111-4111-8111-111111111111', 'auth.jwt() returns the claims');
select results_eq(
  'select note from public.bootstrap_probe',
  $$ values ('alice row') $$,
  'RLS shows alice only her own row'
);

set local request.jwt.claims = '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}';
select results_eq(
  'select note from public.bootstrap_probe',
  $$ values ('bob row') $$,
  'switching the claims switches the visible rows'
);

reset role;
set local role anon;
set local request.jwt.claims = '{"role":"anon"}';
select is_empty('select * from public.bootstrap_probe', 'anon sees nothing (no policy for anon)');

select * from finish();
rollback;
