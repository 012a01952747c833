-- The RLS matrix: every table x {anon, owner, another user, community member, non-member,
-- removed member, service_role} x {select, insert, update, delete}, each expectation asserted.
--
-- The world (tests.seed_world): alice owns the rows and community cafe; bob is a current member
-- of cafe, erin a removed one; carol belongs to another community (and has an AI2AI connection
-- with alice); dave has no relation. Each probe runs in a rolled-back subtransaction and yields
-- 'rows:N' (visible or affected rows), 'denied' (no privilege), 'rls' (refused by a policy check)
-- or 'error:<SQLSTATE>'. %1$s / %2$s are the acting persona's user id and agent id (anon and
-- service_role act with alice's ids). Inserts try to write into the owner's space.
begin;
\ir ../helpers/tests_schema.sql
select plan(560);
do $$ begin perform tests.seed_world(); end $$;

create temporary table matrix (
  ord serial, tbl text, cmd text, sql text,
  anon text, owner text, other text, member text, non_member text, removed text, service text
);

insert into matrix (tbl, cmd, sql, anon, owner, other, member, non_member, removed, service) values
-- communities
('communities', 'select', $$select count(*) from public.communities where id = tests.community('cafe')$$,
  'denied', 'rows:1', 'rows:0', 'rows:1', 'rows:0', 'rows:0', 'rows:1'),
('communities', 'insert', $$insert into public.communities (name, created_by) values ('probe', tests.uid('alice'))$$,
  'denied', 'rows:1', 'rls', 'rls', 'rls', 'rls', 'rows:1'),
('communities', 'update', $$update public.communities set name = name where id = tests.community('cafe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('communities', 'delete', $$delete from public.communities where id = tests.community('cafe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
-- community_members
('community_members', 'select', $$select count(*) from public.community_members where community_id = tests.community('cafe')$$,
  'denied', 'rows:3', 'rows:0', 'rows:3', 'rows:0', 'rows:1', 'rows:3'),
('community_members', 'insert', $$insert into public.community_members (community_id, user_id) values (tests.community('dojo'), %1$s)$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('community_members', 'update', $$update public.community_members set role = role where community_id = tests.community('cafe') and user_id = tests.uid('bob')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('community_members', 'delete', $$delete from public.community_members where community_id = tests.community('cafe') and user_id = tests.uid('bob')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
-- community_sender_key_state
('community_sender_key_state', 'select', $$select count(*) from public.community_sender_key_state where community_id = tests.community('cafe')$$,
  'denied', 'rows:1', 'rows:0', 'rows:1', 'rows:0', 'rows:0', 'rows:1'),
('community_sender_key_state', 'insert', $$insert into public.community_sender_key_state (community_id, key_id, rotation_kind) values (tests.community('spare'), 1, 'initial')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('community_sender_key_state', 'update', $$update public.community_sender_key_state set key_id = key_id where community_id = tests.community('cafe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('community_sender_key_state', 'delete', $$delete from public.community_sender_key_state where community_id = tests.community('cafe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
-- community_sender_key_shares (alice -> bob)
('community_sender_key_shares', 'select', $$select count(*) from public.community_sender_key_shares where community_id = tests.community('cafe')$$,
  'denied', 'rows:1', 'rows:0', 'rows:1', 'rows:0', 'rows:0', 'rows:1'),
('community_sender_key_shares', 'insert', $$insert into public.community_sender_key_shares (community_id, key_id, from_user_id, from_agent_id, from_device_id, to_user_id, to_agent_id, to_device_id, message_type, encrypted_share) values (tests.community('cafe'), 1, %1$s, %2$s, 1, tests.uid('bob'), 'agent-bob', 1, 3, '\x01')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('community_sender_key_shares', 'update', $$update public.community_sender_key_shares set share_kind = share_kind where community_id = tests.community('cafe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('community_sender_key_shares', 'delete', $$delete from public.community_sender_key_shares where community_id = tests.community('cafe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
-- community_message_blobs
('community_message_blobs', 'select', $$select count(*) from public.community_message_blobs where community_id = tests.community('cafe')$$,
  'denied', 'rows:1', 'rows:0', 'rows:1', 'rows:0', 'rows:0', 'rows:1'),
('community_message_blobs', 'insert', $$insert into public.community_message_blobs (community_id, key_id, sender_user_id, sender_agent_id, sender_device_id, sender_chain_id, sender_chain_iteration, ciphertext) values (tests.community('cafe'), 1, %1$s, %2$s, 1, 7, 100, '\x01')$$,
  'denied', 'rows:1', 'rls', 'rows:1', 'rls', 'rls', 'rows:1'),
('community_message_blobs', 'update', $$update public.community_message_blobs set ciphertext = ciphertext where community_id = tests.community('cafe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('community_message_blobs', 'delete', $$delete from public.community_message_blobs where community_id = tests.community('cafe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
-- community_message_events
('community_message_events', 'select', $$select count(*) from public.community_message_events where community_id = tests.community('cafe')$$,
  'denied', 'rows:1', 'rows:0', 'rows:1', 'rows:0', 'rows:0', 'rows:1'),
('community_message_events', 'insert', $$insert into public.community_message_events (community_id, blob_id, key_id) select community_id, id, key_id from public.community_message_blobs where community_id = tests.community('cafe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('community_message_events', 'update', $$update public.community_message_events set key_id = key_id where community_id = tests.community('cafe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('community_message_events', 'delete', $$delete from public.community_message_events where community_id = tests.community('cafe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
-- signal_prekey_bundles (V1, retired)
('signal_prekey_bundles', 'select', $$select count(*) from public.signal_prekey_bundles where agent_id = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('signal_prekey_bundles', 'insert', $$insert into public.signal_prekey_bundles (agent_id, identity_key, bundle_data) values (%2$s || '-v1', 'x', '{}')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('signal_prekey_bundles', 'update', $$update public.signal_prekey_bundles set bundle_data = bundle_data where agent_id = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('signal_prekey_bundles', 'delete', $$delete from public.signal_prekey_bundles where agent_id = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
-- agents
('agents', 'select', $$select count(*) from public.agents where agent_id = 'agent-alice'$$,
  'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:1'),
('agents', 'insert', $$insert into public.agents (agent_id, user_id) values ('agent-probe', tests.uid('alice'))$$,
  'denied', 'rows:1', 'rls', 'rls', 'rls', 'rls', 'rows:1'),
('agents', 'update', $$update public.agents set user_id = %1$s where agent_id = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('agents', 'delete', $$delete from public.agents where agent_id = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
-- agent_devices
('agent_devices', 'select', $$select count(*) from public.agent_devices where agent_id = 'agent-alice'$$,
  'denied', 'rows:2', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:2'),
('agent_devices', 'insert', $$insert into public.agent_devices (agent_id, device_id, user_id, registration_id, identity_key) values ('agent-alice', 9, %1$s, 9, tests.identity_key('probe'))$$,
  'denied', 'rows:1', 'rls', 'rls', 'rls', 'rls', 'rows:1'),
('agent_devices', 'update', $$update public.agent_devices set registration_id = 77 where agent_id = 'agent-alice' and device_id = 1$$,
  'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:1'),
('agent_devices', 'delete', $$delete from public.agent_devices where agent_id = 'agent-alice' and device_id = 2$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
-- signal_prekey_bundles_v2 (alice device 1: 3 one-time + 1 last-resort)
('signal_prekey_bundles_v2', 'select', $$select count(*) from public.signal_prekey_bundles_v2 where agent_id = 'agent-alice'$$,
  'denied', 'rows:4', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:4'),
('signal_prekey_bundles_v2', 'insert', $$insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json) values (%1$s, 'agent-alice', 1, 900, 'one_time', '{}')$$,
  'denied', 'rows:1', 'rls', 'rls', 'rls', 'rls', 'rows:1'),
('signal_prekey_bundles_v2', 'update', $$update public.signal_prekey_bundles_v2 set expires_at = expires_at where agent_id = 'agent-alice'$$,
  'denied', 'rows:4', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:4'),
('signal_prekey_bundles_v2', 'delete', $$delete from public.signal_prekey_bundles_v2 where agent_id = 'agent-alice'$$,
  'denied', 'rows:4', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:4'),
-- ai2ai_connections (alice <-> carol)
('ai2ai_connections', 'select', $$select count(*) from public.ai2ai_connections where agent_a = 'agent-alice'$$,
  'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:1', 'rows:0', 'rows:1'),
('ai2ai_connections', 'insert', $$insert into public.ai2ai_connections (agent_a, agent_b, entanglement_score, compatibility_score) values ('agent-alice', 'agent-dave', 0.5, 0.5)$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('ai2ai_connections', 'update', $$update public.ai2ai_connections set entanglement_score = 1 where agent_a = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('ai2ai_connections', 'delete', $$delete from public.ai2ai_connections where agent_a = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
-- contact_invites
('contact_invites', 'select', $$select count(*) from public.contact_invites where inviter_agent_id = 'agent-alice'$$,
  'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:1'),
('contact_invites', 'insert', $$insert into public.contact_invites (inviter_user_id, inviter_agent_id, token_hash) values (%1$s, 'agent-alice', sha256('probe'::bytea))$$,
  'denied', 'rows:1', 'rls', 'rls', 'rls', 'rls', 'rows:1'),
('contact_invites', 'update', $$update public.contact_invites set expires_at = expires_at where inviter_agent_id = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('contact_invites', 'delete', $$delete from public.contact_invites where inviter_agent_id = 'agent-alice'$$,
  'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:1'),
-- user_blocks (alice blocks dave)
('user_blocks', 'select', $$select count(*) from public.user_blocks where blocker_user_id = tests.uid('alice')$$,
  'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:1'),
('user_blocks', 'insert', $$insert into public.user_blocks (blocker_user_id, blocked_agent_id) values (tests.uid('alice'), 'agent-erin')$$,
  'denied', 'rows:1', 'rls', 'rls', 'rls', 'rls', 'rows:1'),
('user_blocks', 'update', $$update public.user_blocks set blocked_agent_id = blocked_agent_id where blocker_user_id = tests.uid('alice')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('user_blocks', 'delete', $$delete from public.user_blocks where blocker_user_id = tests.uid('alice')$$,
  'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:1'),
-- dm_envelopes (bob -> alice)
('dm_envelopes', 'select', $$select count(*) from public.dm_envelopes where to_agent_id = 'agent-alice'$$,
  'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:1'),
('dm_envelopes', 'insert', $$insert into public.dm_envelopes (to_user_id, to_agent_id, to_device_id, from_agent_id, from_device_id, message_type, body, expires_at) values (tests.uid('alice'), 'agent-alice', 1, %2$s, 1, 3, '\x01', now() + interval '1 day')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('dm_envelopes', 'update', $$update public.dm_envelopes set body = body where to_agent_id = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('dm_envelopes', 'delete', $$delete from public.dm_envelopes where to_agent_id = 'agent-alice'$$,
  'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:1'),
-- decrypt_failure_reports
('decrypt_failure_reports', 'select', $$select count(*) from public.decrypt_failure_reports where agent_id = 'agent-alice'$$,
  'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0', 'rows:1'),
('decrypt_failure_reports', 'insert', $$insert into public.decrypt_failure_reports (user_id, agent_id, device_id, message_kind, failure_kind, failure_count, window_start, window_end) values (%1$s, 'agent-alice', 1, 'dm', 'no_session', 1, now(), now())$$,
  'denied', 'rows:1', 'rls', 'rls', 'rls', 'rls', 'rows:1'),
('decrypt_failure_reports', 'update', $$update public.decrypt_failure_reports set failure_count = 3 where agent_id = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('decrypt_failure_reports', 'delete', $$delete from public.decrypt_failure_reports where agent_id = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
-- keyserver.settings (one client-visible key, one not)
('keyserver.settings', 'select', $$select count(*) from keyserver.settings where key in ('prekey_device_cap', 'min_entanglement_score')$$,
  'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'rows:2'),
('keyserver.settings', 'insert', $$insert into keyserver.settings (key, value, description) values ('probe', '1', 'probe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('keyserver.settings', 'update', $$update keyserver.settings set value = value where key = 'prekey_device_cap'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('keyserver.settings', 'delete', $$delete from keyserver.settings where key = 'prekey_device_cap'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
-- keyserver.rate_limit_buckets
('keyserver.rate_limit_buckets', 'select', $$select count(*) from keyserver.rate_limit_buckets where key = 'test:alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('keyserver.rate_limit_buckets', 'insert', $$insert into keyserver.rate_limit_buckets (key, capacity, refill_interval, updated_at) values ('probe', 1, '1 hour', now())$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('keyserver.rate_limit_buckets', 'update', $$update keyserver.rate_limit_buckets set level = 0 where key = 'test:alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('keyserver.rate_limit_buckets', 'delete', $$delete from keyserver.rate_limit_buckets where key = 'test:alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
-- keyserver.last_resort_claims
('keyserver.last_resort_claims', 'select', $$select count(*) from keyserver.last_resort_claims where agent_id = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('keyserver.last_resort_claims', 'insert', $$insert into keyserver.last_resort_claims (agent_id, device_id, key_id, claimed_at) values ('agent-alice', 1, 1, now())$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('keyserver.last_resort_claims', 'update', $$update keyserver.last_resort_claims set key_id = 2 where agent_id = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('keyserver.last_resort_claims', 'delete', $$delete from keyserver.last_resort_claims where agent_id = 'agent-alice'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
-- keyserver.retired_agents
('keyserver.retired_agents', 'select', $$select count(*) from keyserver.retired_agents where agent_id = 'agent-gone'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('keyserver.retired_agents', 'insert', $$insert into keyserver.retired_agents (agent_id) values ('agent-probe')$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('keyserver.retired_agents', 'update', $$update keyserver.retired_agents set retired_at = now() where agent_id = 'agent-gone'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('keyserver.retired_agents', 'delete', $$delete from keyserver.retired_agents where agent_id = 'agent-gone'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
-- keyserver.legacy_agent_claims
('keyserver.legacy_agent_claims', 'select', $$select count(*) from keyserver.legacy_agent_claims where agent_id = 'agent-legacy'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'rows:1'),
('keyserver.legacy_agent_claims', 'insert', $$insert into keyserver.legacy_agent_claims (agent_id, user_id) values ('agent-probe', %1$s)$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('keyserver.legacy_agent_claims', 'update', $$update keyserver.legacy_agent_claims set claimed_at = now() where agent_id = 'agent-legacy'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('keyserver.legacy_agent_claims', 'delete', $$delete from keyserver.legacy_agent_claims where agent_id = 'agent-legacy'$$,
  'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied');

-- Every table of public and keyserver is in the matrix (guards against a table added without one).
create temporary table matrix_personas (pos int, persona text, acting text) on commit drop;
insert into matrix_personas values
  (1, 'anon', 'anon'), (2, 'owner', 'alice'), (3, 'other', 'dave'), (4, 'member', 'bob'),
  (5, 'non_member', 'carol'), (6, 'removed', 'erin'), (7, 'service_role', 'service_role');

select is(
  tests.probe(p.acting, format(m.sql,
    quote_literal(case when p.acting in ('anon', 'service_role') then tests.uid('alice') else tests.uid(p.acting) end),
    quote_literal(case when p.acting in ('anon', 'service_role') then 'agent-alice' else 'agent-' || p.acting end))),
  (array[m.anon, m.owner, m.other, m.member, m.non_member, m.removed, m.service])[p.pos],
  format('%s: %s %s', m.tbl, p.persona, m.cmd))
from matrix m cross join matrix_personas p
order by m.ord, p.pos;

select * from finish();
rollback;
