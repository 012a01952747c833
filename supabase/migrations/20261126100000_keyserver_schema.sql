/**
 * The private schema `keyserver` and its settings table.
 *
 * `keyserver` is not exposed by the Data API (config.toml [api] schemas = ["public"]); the
 * gateway reaches it over its direct database connection. It holds every security-definer
 * function (each with search_path = '' and fully qualified names), the functions the gateway
 * calls as `authenticated` (security invoker, so RLS still applies), and internal tables.
 * Functions created here are not executable by PUBLIC unless granted one by one.
 */

/** Section - schema */

create schema if not exists keyserver;
comment on schema keyserver is
  'Key server internals: gated and gateway functions, settings, abuse state. Not exposed by the Data API.';
revoke all on schema keyserver from public;
grant usage on schema keyserver to authenticated, service_role;
alter default privileges in schema keyserver revoke execute on functions from public;
alter default privileges in schema keyserver revoke all on tables from public;

/** Section - settings */

-- Thresholds, caps, retention windows and modes, one jsonb value per key.
create table if not exists keyserver.settings (
  key text primary key check (key ~ '^[a-z][a-z0-9_]*$'),
  value jsonb not null,
  description text not null,
  client_visible boolean not null default false,
  updated_at timestamptz not null default now()
);
comment on table keyserver.settings is
  'Key server settings (thresholds, caps, retention, modes). Rows are defined by migrations; service_role may change values. client_visible rows are readable by signed-in users (caps they must respect).';
create index if not exists settings_client_visible_idx on keyserver.settings (client_visible);

alter table keyserver.settings enable row level security;
revoke all on table keyserver.settings from public, anon, authenticated, service_role;
grant select on table keyserver.settings to authenticated;
grant select, update (value, updated_at) on table keyserver.settings to service_role;

create policy settings_service_role on keyserver.settings
  for all to service_role
  using (true)
  with check (true);

create policy settings_select_client_visible on keyserver.settings
  for select to authenticated
  using (client_visible);

/** Section - settings accessors */

-- The value of a setting; raises when the key is unknown (or not visible to the caller).
create or replace function keyserver.setting(p_key text)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v jsonb;
begin
  select s.value into v from keyserver.settings s where s.key = p_key;
  if not found then
    raise exception using errcode = 'KS500', message = format('unknown setting %s', p_key);
  end if;
  return v;
end;
$$;
comment on function keyserver.setting(text) is
  'Value of a keyserver setting (security invoker: signed-in users see client_visible keys only). Raises KS500 for an unknown key.';

-- Typed views of a setting.
create or replace function keyserver.setting_int(p_key text)
returns integer
language sql
stable
set search_path = ''
as $$ select (keyserver.setting(p_key) #>> '{}')::integer $$;
comment on function keyserver.setting_int(text) is 'A setting as integer.';

create or replace function keyserver.setting_numeric(p_key text)
returns numeric
language sql
stable
set search_path = ''
as $$ select (keyserver.setting(p_key) #>> '{}')::numeric $$;
comment on function keyserver.setting_numeric(text) is 'A setting as numeric.';

create or replace function keyserver.setting_interval(p_key text)
returns interval
language sql
stable
set search_path = ''
as $$ select (keyserver.setting(p_key) #>> '{}')::interval $$;
comment on function keyserver.setting_interval(text) is 'A setting as interval (stored as a string such as "30 days").';

create or replace function keyserver.setting_text(p_key text)
returns text
language sql
stable
set search_path = ''
as $$ select keyserver.setting(p_key) #>> '{}' $$;
comment on function keyserver.setting_text(text) is 'A setting as text.';

revoke all on function keyserver.setting(text), keyserver.setting_int(text), keyserver.setting_numeric(text),
  keyserver.setting_interval(text), keyserver.setting_text(text) from public, anon;
grant execute on function keyserver.setting(text), keyserver.setting_int(text), keyserver.setting_numeric(text),
  keyserver.setting_interval(text), keyserver.setting_text(text) to authenticated, service_role;
