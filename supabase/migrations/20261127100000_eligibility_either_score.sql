/**
 * The database's recheck of an AI2AI connection now follows the policy: EITHER score at or
 * above its threshold.
 *
 * The core's policy module (src/policy.rs, run by the gateway as WASM `evaluateEligibility` and
 * by the apps) allows a connection when entanglement_score >= min_entanglement_score OR
 * compatibility_score >= min_compatibility_score (DESIGN.md: "AI2AI connection with
 * entanglement or compatibility above thresholds"). keyserver.facts_allow_contact
 * (20261126100600) required BOTH, so a connection with one high score was allowed by the gateway
 * and then got the uniform empty answer from SQL (and the same for DMs through send_dm_batch).
 *
 * Same signature, language, volatility, search_path and (invoker) security as before; internal
 * only, so execute stays revoked from everyone (create or replace keeps the privileges; they are
 * restated here). The whole result is coalesced to false: a missing fact never allows.
 */

/** Section - recheck */

create or replace function keyserver.facts_allow_contact(p_facts jsonb)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select coalesce(
    (p_facts ->> 'target_user_id') is not null
    and not (p_facts ->> 'blocked_by_caller')::boolean
    and not (p_facts ->> 'blocked_by_target')::boolean
    and ((p_facts ->> 'same_owner')::boolean
      or jsonb_array_length(p_facts -> 'shared_communities') > 0
      or (jsonb_typeof(p_facts -> 'connection') = 'object'
          and ((p_facts #>> '{connection,entanglement_score}')::numeric
                 >= (p_facts #>> '{thresholds,min_entanglement_score}')::numeric
            or (p_facts #>> '{connection,compatibility_score}')::numeric
                 >= (p_facts #>> '{thresholds,min_compatibility_score}')::numeric))
      or (p_facts #>> '{invite,valid}')::boolean
      or (p_facts ->> 'contact_via_invite')::boolean),
    false)
$$;
comment on function keyserver.facts_allow_contact(jsonb) is
  'Internal: true when the facts allow contact: target owned, no block either way, and same owner / shared community / an AI2AI connection with entanglement OR compatibility at or above its threshold / valid invite / contact via invite. Never null.';

revoke all on function keyserver.facts_allow_contact(jsonb) from public, anon, authenticated, service_role;
