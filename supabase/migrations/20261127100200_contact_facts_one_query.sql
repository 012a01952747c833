/**
 * keyserver.contact_facts in one query: the same facts, cheaper.
 *
 * The facts are derived twice per prekey fetch (for the gateway's policy, then by the
 * database's recheck in keyserver.gateway_prekey_claim) and twice per DM recipient. Profiled
 * under load, their cost was mostly per-statement overhead: a separate lookup of the target's
 * owner, two thresholds read through keyserver.setting_numeric (a nested function call and a
 * query each), and bitmap-OR plans (set up per call) for the two "either way" conditions.
 *
 * Now one statement: the target's owner joined in, the thresholds read from the settings table
 * in the same statement (still KS500 when one is missing, as keyserver.setting raised), and each
 * "either way" condition written as two EXISTS over plain index lookups (short-circuiting). The
 * result is the same document for every input: same keys, same values, a missing target still
 * indistinguishable from an unrelated one. Same signature, security definer, search_path ''
 * and privileges (internal: executable by nobody but its owner).
 */

/** Section - facts */

create or replace function keyserver.contact_facts(
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
  v_hash bytea := case when p_invite_token is null then null
                       else pg_catalog.sha256(convert_to(p_invite_token, 'UTF8')) end;
  v_facts jsonb;
begin
  select jsonb_build_object(
    'target_user_id', t.user_id,
    'same_owner', coalesce(t.user_id = p_caller_user, false),
    'blocked_by_caller',
      exists (select 1 from public.user_blocks b
              where b.blocker_user_id = p_caller_user and b.blocked_agent_id = p_target_agent)
      or exists (select 1 from public.user_blocks b
                 where b.blocker_user_id = p_caller_user and b.blocked_user_id = t.user_id),
    'blocked_by_target',
      exists (select 1 from public.user_blocks b
              where b.blocker_user_id = t.user_id and b.blocked_agent_id = p_caller_agent)
      or exists (select 1 from public.user_blocks b
                 where b.blocker_user_id = t.user_id and b.blocked_user_id = p_caller_user),
    'shared_communities', coalesce((
      select jsonb_agg(mc.community_id order by mc.community_id)
      from public.community_members mc
      join public.community_members mt on mt.community_id = mc.community_id
      where mc.user_id = p_caller_user and mc.removed_at is null
        and mt.user_id = t.user_id and mt.removed_at is null), '[]'::jsonb),
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
    'contact_via_invite',
      exists (select 1 from public.contact_invites i
              where i.used_at is not null
                and i.inviter_agent_id = p_target_agent and i.used_by_agent_id = p_caller_agent)
      or exists (select 1 from public.contact_invites i
                 where i.used_at is not null
                   and i.inviter_agent_id = p_caller_agent and i.used_by_agent_id = p_target_agent),
    'thresholds', jsonb_build_object(
      'min_entanglement_score', s.min_entanglement_score,
      'min_compatibility_score', s.min_compatibility_score))
  into v_facts
  from (select
          max((st.value #>> '{}')::numeric) filter (where st.key = 'min_entanglement_score') as min_entanglement_score,
          max((st.value #>> '{}')::numeric) filter (where st.key = 'min_compatibility_score') as min_compatibility_score
        from keyserver.settings st
        where st.key in ('min_entanglement_score', 'min_compatibility_score')) s
  left join public.agents t on t.agent_id = p_target_agent;
  if v_facts #>> '{thresholds,min_entanglement_score}' is null
     or v_facts #>> '{thresholds,min_compatibility_score}' is null then
    raise exception using errcode = 'KS500', message = 'unknown setting min_*_score';
  end if;
  return v_facts;
end;
$$;
comment on function keyserver.contact_facts(uuid, text, text, text, timestamptz) is
  'Internal: facts about caller -> target (blocks both ways, same owner, shared current communities, AI2AI scores, invite validity, contact via a used invite, thresholds) plus target_user_id. One query.';

-- create or replace keeps the privileges; restated for the reader.
revoke all on function keyserver.contact_facts(uuid, text, text, text, timestamptz)
  from public, anon, authenticated, service_role;
