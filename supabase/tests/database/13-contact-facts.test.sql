-- keyserver.contact_facts rewritten as one query (migration 20261127100200) returns exactly
-- what the original (20261126100600, copied here verbatim as pg_temp.contact_facts_v1) returned,
-- for every caller and target of a fixture covering each fact: same owner, blocks by agent and
-- by user in both directions (and on an agent id claimed after the block), current and removed
-- community members, connections above and below the thresholds, invites valid, expiring
-- (asked about before and after), used by the caller or by someone else, contacts via an
-- invite both ways, missing targets.
begin;
\ir ../helpers/tests_schema.sql
select plan(6);

create function pg_temp.contact_facts_v1(
  p_caller_user uuid,
  p_caller_agent text,
  p_target_agent text,
  p_invite_token text,
  p_now timestamptz
)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_target_user uuid;
  v_hash bytea := case when p_invite_token is null then null
                       else pg_catalog.sha256(convert_to(p_invite_token, 'UTF8')) end;
begin
  select a.user_id into v_target_user from public.agents a where a.agent_id = p_target_agent;
  return jsonb_build_object(
    'target_user_id', v_target_user,
    'same_owner', coalesce(v_target_user = p_caller_user, false),
    'blocked_by_caller', exists (
      select 1 from public.user_blocks b
      where b.blocker_user_id = p_caller_user
        and (b.blocked_agent_id = p_target_agent or b.blocked_user_id = v_target_user)),
    'blocked_by_target', exists (
      select 1 from public.user_blocks b
      where b.blocker_user_id = v_target_user
        and (b.blocked_agent_id = p_caller_agent or b.blocked_user_id = p_caller_user)),
    'shared_communities', coalesce((
      select jsonb_agg(mc.community_id order by mc.community_id)
      from public.community_members mc
      join public.community_members mt on mt.community_id = mc.community_id
      where mc.user_id = p_caller_user and mc.removed_at is null
        and mt.user_id = v_target_user and mt.removed_at is null), '[]'::jsonb),
    'connection', (
      select jsonb_build_object('entanglement_score', c.entanglement_score,
                                'compatibility_score', c.compatibility_score)
      from public.ai2ai_connections c
      where c.agent_a = least(p_caller_agent, p_target_agent)
        and c.agent_b = greatest(p_caller_agent, p_target_agent)),
    'invite', jsonb_build_object(
      'presented', p_invite_token is not null,
      'valid', v_hash is not null and exists (
        select 1 from public.contact_invites i
        where i.token_hash = v_hash
          and i.inviter_agent_id = p_target_agent
          and i.expires_at > p_now
          and (i.used_at is null or i.used_by_agent_id = p_caller_agent))),
    'contact_via_invite', exists (
      select 1 from public.contact_invites i
      where i.used_at is not null
        and ((i.inviter_agent_id = p_target_agent and i.used_by_agent_id = p_caller_agent)
          or (i.inviter_agent_id = p_caller_agent and i.used_by_agent_id = p_target_agent))),
    'thresholds', jsonb_build_object(
      'min_entanglement_score', keyserver.setting_numeric('min_entanglement_score'),
      'min_compatibility_score', keyserver.setting_numeric('min_compatibility_score')));
end;
$$;

do $$
declare
  v_cafe uuid := tests.community('cafe');
  v_club uuid := tests.community('club');
begin
  perform tests.create_agent(n) from unnest(array['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina']) n;
  insert into public.agents (agent_id, user_id) values ('agent-alice2', tests.uid('alice'));
  insert into public.communities (id, name, created_by) values (v_cafe, 'cafe', tests.uid('alice')),
    (v_club, 'club', tests.uid('bob'));
  insert into public.community_members (community_id, user_id, joined_at, removed_at) values
    (v_cafe, tests.uid('bob'), now() - interval '2 days', null),
    (v_cafe, tests.uid('carol'), now() - interval '2 days', now() - interval '1 day'),
    (v_club, tests.uid('dave'), now() - interval '2 days', null),
    (v_club, tests.uid('alice'), now() - interval '2 days', null);
  insert into public.user_blocks (blocker_user_id, blocked_agent_id) values
    (tests.uid('erin'), 'agent-alice'), (tests.uid('bob'), 'agent-dave'), (tests.uid('alice'), 'agent-later');
  insert into public.ai2ai_connections (agent_a, agent_b, entanglement_score, compatibility_score) values
    ('agent-alice', 'agent-frank', 0.9, 0.1), ('agent-bob', 'agent-gina', 0.1, 0.2), ('agent-carol', 'agent-gina', 0.5, 0.5);
  perform tests.create_agent('later');
  insert into public.contact_invites (inviter_user_id, inviter_agent_id, token_hash, expires_at) values
    (tests.uid('gina'), 'agent-gina', sha256('t-valid'::bytea), now() + interval '1 day'),
    (tests.uid('gina'), 'agent-gina', sha256('t-soon'::bytea), now() + interval '1 hour'),
    (tests.uid('frank'), 'agent-frank', sha256('t-used-carol'::bytea), now() + interval '1 day'),
    (tests.uid('dave'), 'agent-dave', sha256('t-used-erin'::bytea), now() + interval '1 day');
  -- Used invites (the insert trigger always stores them unused).
  update public.contact_invites set used_at = now(), used_by_agent_id = 'agent-carol', used_by_user_id = tests.uid('carol')
  where token_hash = sha256('t-used-carol'::bytea);
  update public.contact_invites set used_at = now(), used_by_agent_id = 'agent-erin', used_by_user_id = tests.uid('erin')
  where token_hash = sha256('t-used-erin'::bytea);
end
$$;

create temporary table pairs as
select c.agent_id as caller_agent, c.user_id as caller_user, t.target, k.token, w.at
from public.agents c
cross join (select agent_id as target from public.agents union all values ('agent-ghost'), ('agent-later2')) t
cross join (values (null::text), ('t-valid'), ('t-soon'), ('t-used-carol'), ('t-used-erin'), ('nonsense')) k(token)
cross join (values (now()), (now() + interval '2 hours'), (now() + interval '2 days')) w(at);

select cmp_ok((select count(*)::integer from pairs), '>', 1000, 'more than a thousand caller, target, token and time combinations');
select is_empty($$
  select caller_agent, target, token, at from pairs
  where keyserver.contact_facts(caller_user, caller_agent, target, token, at)
        is distinct from pg_temp.contact_facts_v1(caller_user, caller_agent, target, token, at) $$,
  'the one-query facts equal the original facts for every combination');
select ok((select count(distinct keyserver.contact_facts(caller_user, caller_agent, target, token, at)) from pairs) > 30,
  'and the combinations cover many different documents');
select ok(exists (select 1 from pairs where (keyserver.contact_facts(caller_user, caller_agent, target, token, at) ->> 'blocked_by_target')::boolean)
      and exists (select 1 from pairs where (keyserver.contact_facts(caller_user, caller_agent, target, token, at) ->> 'blocked_by_caller')::boolean)
      and exists (select 1 from pairs where (keyserver.contact_facts(caller_user, caller_agent, target, token, at) ->> 'contact_via_invite')::boolean)
      and exists (select 1 from pairs where (keyserver.contact_facts(caller_user, caller_agent, target, token, at) #>> '{invite,valid}')::boolean)
      and exists (select 1 from pairs where (keyserver.contact_facts(caller_user, caller_agent, target, token, at) ->> 'same_owner')::boolean)
      and exists (select 1 from pairs where keyserver.contact_facts(caller_user, caller_agent, target, token, at) -> 'connection' <> 'null'::jsonb)
      and exists (select 1 from pairs where jsonb_array_length(keyserver.contact_facts(caller_user, caller_agent, target, token, at) -> 'shared_communities') > 0),
  'every fact is true somewhere in the fixture');

update keyserver.settings set value = '0.3' where key = 'min_compatibility_score';
select is(keyserver.contact_facts(tests.uid('alice'), 'agent-alice', 'agent-frank', null, now()) -> 'thresholds',
  '{"min_entanglement_score": 0.5, "min_compatibility_score": 0.3}'::jsonb, 'thresholds come from the settings table');
delete from keyserver.settings where key = 'min_compatibility_score';
select throws_ok($$ select keyserver.contact_facts(tests.uid('alice'), 'agent-alice', 'agent-frank', null, now()) $$,
  'KS500', null, 'a missing threshold setting raises KS500, as keyserver.setting did');

select * from finish();
rollback;
