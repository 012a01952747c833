-- Test helpers for the pgTAP suites, in the style of supabase-test-helpers.
--
-- Included at the top of each test file with `\ir ../helpers/tests_schema.sql`, inside that
-- file's transaction, so the `tests` schema exists only while the file runs and is rolled back
-- with everything else: nothing test-only persists in the database, and every file starts
-- from the migrations alone. Never part of a migration.

create schema tests;
grant usage on schema tests to anon, authenticated, service_role;

/** Section - identities */

-- A stable uuid for a test user name.
create function tests.uid(p_name text) returns uuid
language sql immutable
as $$ select ('00000000-0000-4000-8000-' || substr(md5(p_name), 1, 12))::uuid $$;

-- Creates an auth user (idempotent) and returns its id.
create function tests.create_user(p_name text) returns uuid
language plpgsql
as $$
begin
  insert into auth.users (id, aud, role, email)
  values (tests.uid(p_name), 'authenticated', 'authenticated', p_name || '@test.local')
  on conflict (id) do nothing;
  return tests.uid(p_name);
end;
$$;

-- A deterministic 33-byte Curve25519 identity key (0x05 prefix) for a name.
create function tests.identity_key(p_name text) returns bytea
language sql immutable
as $$ select '\x05'::bytea || sha256(convert_to(p_name, 'UTF8')) $$;

-- Creates a user, claims `agent-<name>` for it and registers the given devices.
create function tests.create_agent(p_name text, p_devices integer[] default array[1]) returns text
language plpgsql
as $$
declare
  d integer;
begin
  perform tests.create_user(p_name);
  insert into public.agents (agent_id, user_id) values ('agent-' || p_name, tests.uid(p_name))
  on conflict (agent_id) do nothing;
  foreach d in array p_devices loop
    insert into public.agent_devices (agent_id, device_id, user_id, registration_id, identity_key)
    values ('agent-' || p_name, d, tests.uid(p_name), 1000 + d, tests.identity_key(p_name))
    on conflict (agent_id, device_id) do nothing;
  end loop;
  return 'agent-' || p_name;
end;
$$;

-- Stores n one-time bundles (key ids from p_first) and optionally a last-resort bundle for a device.
create function tests.stock(p_agent text, p_device integer, p_n integer, p_first integer default 1,
                            p_last_resort boolean default true) returns void
language plpgsql
as $$
begin
  insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
  select a.user_id, p_agent, p_device, k, 'one_time', jsonb_build_object('prekey', k, 'device', p_device)
  from public.agents a, generate_series(p_first, p_first + p_n - 1) k
  where a.agent_id = p_agent;
  if p_last_resort then
    insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json)
    select a.user_id, p_agent, p_device, 1000000 + p_device, 'last_resort', jsonb_build_object('last_resort', p_device)
    from public.agents a where a.agent_id = p_agent
    on conflict do nothing;
  end if;
end;
$$;

/** Section - acting as a role */

-- Acts as a signed-in user for the rest of the transaction (or subtransaction).
create function tests.authenticate_as(p_name text) returns void
language plpgsql
as $$
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims',
    json_build_object('sub', tests.uid(p_name), 'role', 'authenticated', 'aud', 'authenticated')::text, true);
end;
$$;

-- Acts as the gateway's service role.
create function tests.authenticate_as_service_role() returns void
language plpgsql
as $$
begin
  perform set_config('role', 'service_role', true);
  perform set_config('request.jwt.claims', '{"role":"service_role"}', true);
end;
$$;

-- Acts as an anonymous API caller.
create function tests.authenticate_as_anon() returns void
language plpgsql
as $$
begin
  perform set_config('role', 'anon', true);
  perform set_config('request.jwt.claims', '{"role":"anon"}', true);
end;
$$;

-- Back to the test runner (superuser, no claims).
create function tests.clear_authentication() returns void
language plpgsql
as $$
begin
  perform set_config('role', 'none', true);
  perform set_config('request.jwt.claims', '', true);
end;
$$;

/** Section - probing */

-- Runs p_sql as p_persona in a subtransaction that is always rolled back and describes the
-- outcome: 'rows:N' (rows counted by a SELECT count(*) or affected by a write), 'denied'
-- (privilege), 'rls' (a row-level security check refused the row) or 'error:<SQLSTATE>'.
-- Personas: anon, service_role, or a user name.
create function tests.probe(p_persona text, p_sql text) returns text
language plpgsql
as $$
declare
  v_rows bigint;
  v_result text;
begin
  begin
    if p_persona = 'anon' then
      perform tests.authenticate_as_anon();
    elsif p_persona = 'service_role' then
      perform tests.authenticate_as_service_role();
    else
      perform tests.authenticate_as(p_persona);
    end if;
    if p_sql ~* '^\s*select' then
      execute p_sql into v_rows;
    else
      execute p_sql;
      get diagnostics v_rows = row_count;
    end if;
    v_result := 'rows:' || v_rows;
    raise exception using errcode = 'TSTRB', message = 'probe rollback';
  exception
    when sqlstate 'TSTRB' then
      null;
    when insufficient_privilege then
      v_result := case when sqlerrm like '%row-level security%' then 'rls' else 'denied' end;
    when others then
      v_result := 'error:' || sqlstate;
  end;
  return v_result;
end;
$$;

-- The SQLSTATE and message a statement raises ('ok' when it does not), run as the current role.
create function tests.error_of(p_sql text) returns text
language plpgsql
as $$
begin
  execute p_sql;
  return 'ok';
exception when others then
  return sqlstate || ' ' || sqlerrm;
end;
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;

/** Section - the shared world */

-- Community ids of the shared world.
create function tests.community(p_name text) returns uuid
language sql immutable
as $$ select ('00000000-0000-4000-9000-' || substr(md5('community:' || p_name), 1, 12))::uuid $$;

-- Personas of the RLS matrix and a row of every table:
--   alice (owner: owns the rows; owner of community cafe), bob (current member of cafe),
--   carol (non-member of cafe; owner of community dojo; AI2AI-connected to alice),
--   dave (another signed-in user with no relation), erin (removed member of cafe).
create function tests.seed_world() returns void
language plpgsql
as $$
declare
  v_cafe uuid := tests.community('cafe');
  v_dojo uuid := tests.community('dojo');
  v_spare uuid := tests.community('spare');
  v_blob uuid;
begin
  perform tests.create_agent('alice', array[1, 2]);
  perform tests.create_agent('bob');
  perform tests.create_agent('carol');
  perform tests.create_agent('dave');
  perform tests.create_agent('erin');

  insert into public.communities (id, name, created_by, created_at) values
    (v_cafe, 'cafe', tests.uid('alice'), now() - interval '2 days'),
    (v_dojo, 'dojo', tests.uid('carol'), now() - interval '2 days'),
    (v_spare, 'spare', null, now() - interval '2 days');
  delete from public.community_sender_key_state where community_id = v_spare;
  insert into public.community_members (community_id, user_id, role, joined_at, removed_at) values
    (v_cafe, tests.uid('bob'), 'member', now() - interval '1 day', null),
    (v_cafe, tests.uid('erin'), 'member', now() - interval '1 day', now() - interval '1 hour');

  insert into public.community_sender_key_shares
    (community_id, key_id, from_user_id, from_agent_id, from_device_id, to_user_id, to_agent_id, to_device_id,
     message_type, encrypted_share)
  values (v_cafe, 1, tests.uid('alice'), 'agent-alice', 1, tests.uid('bob'), 'agent-bob', 1, 3, '\x0102');

  insert into public.community_message_blobs
    (community_id, key_id, sender_user_id, sender_agent_id, sender_device_id, sender_chain_id, sender_chain_iteration, ciphertext)
  values (v_cafe, 1, tests.uid('alice'), 'agent-alice', 1, 7, 0, '\x0a0b')
  returning id into v_blob;

  perform tests.stock('agent-alice', 1, 3);

  insert into public.signal_prekey_bundles (agent_id, registration_id, identity_key, bundle_data)
  values ('agent-alice', 1001, 'BWxlZ2FjeQ==', '{"legacy": true}');

  insert into public.ai2ai_connections (agent_a, agent_b, entanglement_score, compatibility_score)
  values ('agent-alice', 'agent-carol', 0.9, 0.9);

  insert into public.contact_invites (inviter_user_id, inviter_agent_id, token_hash)
  values (tests.uid('alice'), 'agent-alice', sha256('alice-invite'::bytea));

  insert into public.user_blocks (blocker_user_id, blocked_agent_id) values (tests.uid('alice'), 'agent-dave');

  insert into public.dm_envelopes
    (to_user_id, to_agent_id, to_device_id, from_agent_id, from_device_id, message_type, body, expires_at)
  values (tests.uid('alice'), 'agent-alice', 1, 'agent-bob', 1, 3, '\x0c0d', now() + interval '1 day');

  insert into public.decrypt_failure_reports
    (user_id, agent_id, device_id, message_kind, failure_kind, failure_count, window_start, window_end)
  values (tests.uid('alice'), 'agent-alice', 1, 'dm', 'no_session', 2, now() - interval '1 hour', now());

  insert into keyserver.rate_limit_buckets (key, level, capacity, refill_interval, updated_at)
  values ('test:alice', 1, 10, '1 hour', now());
  insert into keyserver.last_resort_claims (agent_id, device_id, key_id, claimed_at)
  values ('agent-alice', 1, 1000001, now());
  insert into keyserver.retired_agents (agent_id) values ('agent-gone');
  insert into keyserver.legacy_agent_claims (agent_id, user_id) values ('agent-legacy', tests.uid('alice'));
end;
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;
