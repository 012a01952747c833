/**
 * The only read path for other users' prekeys: keyserver.get_prekey_bundle_for_contact_v1.
 *
 * Called by the gateway as service_role after its own policy check (the first wall). It
 * rechecks the hard facts (caller owns its agent; no block either way; the target agent is
 * owned; same owner, a shared current community, an AI2AI connection at or above the
 * thresholds, a valid invite from the target, or a contact made through an invite), applies the
 * per caller->target and per caller rate limits, then claims one unconsumed unexpired one-time
 * bundle per requested active device (FOR UPDATE SKIP LOCKED: concurrent claimers never get the
 * same bundle), falling back to the device's last-resort bundle, then (dual read) to V1.
 *
 * "No such agent", "not eligible" and "blocked" all give the same answer: no bundles, with the
 * rate-limit state (which depends only on the caller and the requested id string, consumed
 * before anything about the target is looked at).
 */

/** Section - settings */

insert into keyserver.settings (key, value, description, client_visible) values
  ('prekey_fetch_pair_capacity', '10', 'Bundle fetches one caller may make for one target agent per prekey_fetch_pair_refill.', false),
  ('prekey_fetch_pair_refill', '"1 hour"', 'Refill interval of the per caller->target fetch bucket.', false),
  ('prekey_fetch_caller_capacity', '300', 'Bundle fetches one caller may make in total per prekey_fetch_caller_refill.', false),
  ('prekey_fetch_caller_refill', '"1 hour"', 'Refill interval of the per caller fetch bucket.', false)
on conflict (key) do nothing;

/** Section - last-resort claim log */

-- Each time a device's last-resort bundle was handed out (its one-time stock was empty).
create table if not exists keyserver.last_resort_claims (
  id bigint generated always as identity primary key,
  agent_id text not null,
  device_id integer not null,
  key_id integer not null,
  claimed_at timestamptz not null
);
comment on table keyserver.last_resort_claims is
  'Log of last-resort bundle hand-outs (a device ran out of one-time bundles). For monitoring; cleaned after retention.';
create index if not exists last_resort_claims_device_idx on keyserver.last_resort_claims (agent_id, device_id, claimed_at);
create index if not exists last_resort_claims_claimed_idx on keyserver.last_resort_claims (claimed_at);

alter table keyserver.last_resort_claims enable row level security;
revoke all on table keyserver.last_resort_claims from public, anon, authenticated, service_role;
grant select on table keyserver.last_resort_claims to service_role;
create policy last_resort_claims_service_role on keyserver.last_resort_claims
  for select to service_role
  using (true);

/** Section - facts */

-- Validates a contact request's caller side and arguments; nothing here depends on the target.
create or replace function keyserver.assert_contact_request(
  p_caller_user uuid,
  p_caller_agent text,
  p_target_agent text,
  p_target_device integer
)
returns void
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if p_caller_user is null or p_caller_agent is null or p_target_agent is null
     or p_target_agent !~ '^[A-Za-z0-9._:-]{1,128}$'
     or (p_target_device is not null and p_target_device not between 1 and 127) then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'caller user and agent, a valid target agent id, target device 1..127 or null';
  end if;
  if not exists (select 1 from public.agents a where a.agent_id = p_caller_agent and a.user_id = p_caller_user) then
    raise exception using errcode = 'KS403', message = 'caller_agent_not_owned';
  end if;
end;
$$;
comment on function keyserver.assert_contact_request(uuid, text, text, integer) is
  'Internal: KS400 for malformed arguments, KS403 when the caller does not own p_caller_agent. Independent of the target.';

-- Every fact about (caller, target) the policy needs; includes the internal target_user_id.
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
comment on function keyserver.contact_facts(uuid, text, text, text, timestamptz) is
  'Internal: facts about caller -> target (blocks both ways, same owner, shared current communities, AI2AI scores, invite validity, contact via a used invite, thresholds) plus target_user_id.';

-- The database's own recheck of the hard facts (the gateway's policy module is the first wall).
create or replace function keyserver.facts_allow_contact(p_facts jsonb)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select (p_facts ->> 'target_user_id') is not null
    and not (p_facts ->> 'blocked_by_caller')::boolean
    and not (p_facts ->> 'blocked_by_target')::boolean
    and ((p_facts ->> 'same_owner')::boolean
      or jsonb_array_length(p_facts -> 'shared_communities') > 0
      or (jsonb_typeof(p_facts -> 'connection') = 'object'
          and (p_facts #>> '{connection,entanglement_score}')::numeric
              >= (p_facts #>> '{thresholds,min_entanglement_score}')::numeric
          and (p_facts #>> '{connection,compatibility_score}')::numeric
              >= (p_facts #>> '{thresholds,min_compatibility_score}')::numeric)
      or (p_facts #>> '{invite,valid}')::boolean
      or (p_facts ->> 'contact_via_invite')::boolean)
$$;
comment on function keyserver.facts_allow_contact(jsonb) is
  'Internal: true when the facts allow contact: target owned, no block either way, and same owner / shared community / connection at thresholds / valid invite / contact via invite.';

-- The eligibility facts for the gateway's policy module (target existence is not among them).
create or replace function keyserver.eligibility_facts(
  p_caller_user uuid,
  p_caller_agent text,
  p_target_agent text,
  p_invite_token text default null,
  p_now timestamptz default now()
)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform keyserver.assert_contact_request(p_caller_user, p_caller_agent, p_target_agent, null);
  return keyserver.contact_facts(p_caller_user, p_caller_agent, p_target_agent, p_invite_token, p_now)
         - 'target_user_id';
end;
$$;
comment on function keyserver.eligibility_facts(uuid, text, text, text, timestamptz) is
  'service_role: {same_owner, blocked_by_caller, blocked_by_target, shared_communities[], connection{entanglement_score, compatibility_score}|null, invite{presented, valid}, contact_via_invite, thresholds{min_entanglement_score, min_compatibility_score}}. A missing target looks exactly like an unrelated one.';

/** Section - claim */

-- Claims one one-time bundle per active device of the target (or the one device asked for),
-- falling back to each device's last-resort bundle. Never hands out the same one-time bundle twice.
create or replace function keyserver.claim_prekey_bundles(
  p_target_agent text,
  p_target_device integer,
  p_now timestamptz
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  d record;
  v_id bigint;
  v_key integer;
  v_kind text;
  v_bundle jsonb;
  v_out jsonb := '[]'::jsonb;
begin
  for d in
    select ad.device_id, ad.registration_id, ad.identity_key
    from public.agent_devices ad
    where ad.agent_id = p_target_agent
      and ad.revoked_at is null
      and (p_target_device is null or ad.device_id = p_target_device)
    order by ad.device_id
  loop
    update public.signal_prekey_bundles_v2 b
    set consumed = true, consumed_at = p_now
    where b.id = (
      select c.id from public.signal_prekey_bundles_v2 c
      where c.agent_id = p_target_agent
        and c.device_id = d.device_id
        and c.consumed = false
        and c.expires_at > p_now
        and c.kind = 'one_time'
      order by c.expires_at
      limit 1
      for update skip locked)
    returning b.id, b.key_id, b.kind, b.bundle_json into v_id, v_key, v_kind, v_bundle;

    if v_id is null then
      select b.id, b.key_id, b.kind, b.bundle_json into v_id, v_key, v_kind, v_bundle
      from public.signal_prekey_bundles_v2 b
      where b.agent_id = p_target_agent
        and b.device_id = d.device_id
        and b.kind = 'last_resort'
        and b.consumed = false
        and b.expires_at > p_now
      limit 1;
      if v_id is not null then
        insert into keyserver.last_resort_claims (agent_id, device_id, key_id, claimed_at)
        values (p_target_agent, d.device_id, v_key, p_now);
      end if;
    end if;

    if v_id is not null then
      v_out := v_out || jsonb_build_array(jsonb_build_object(
        'device_id', d.device_id,
        'registration_id', d.registration_id,
        'identity_key', encode(d.identity_key, 'base64'),
        'kind', v_kind,
        'key_id', v_key,
        'bundle', v_bundle));
    end if;
    v_id := null;
  end loop;
  return v_out;
end;
$$;
comment on function keyserver.claim_prekey_bundles(text, integer, timestamptz) is
  'Internal: claims one one-time bundle per active target device (FOR UPDATE SKIP LOCKED, marked consumed), else the last-resort bundle (logged). Returns [{device_id, registration_id, identity_key, kind, key_id, bundle}].';

/** Section - the gated function */

-- The gateway's read path for a contact's prekeys.
create or replace function keyserver.get_prekey_bundle_for_contact_v1(
  p_caller_user uuid,
  p_caller_agent text,
  p_target_agent text,
  p_target_device integer default null,
  p_invite_token text default null,
  p_now timestamptz default now()
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_pair record;
  v_all record;
  v_rate jsonb;
  v_facts jsonb;
  v_hash bytea;
  v_bundles jsonb;
begin
  perform keyserver.assert_contact_request(p_caller_user, p_caller_agent, p_target_agent, p_target_device);

  -- Rate limits first: they depend on the caller and the requested id only.
  select * into v_pair from keyserver.consume_rate_limit(
    'prekey_fetch:pair:' || p_caller_user || ':' || p_target_agent,
    keyserver.setting_int('prekey_fetch_pair_capacity'),
    keyserver.setting_interval('prekey_fetch_pair_refill'), 1, p_now);
  v_rate := to_jsonb(v_pair);
  if v_pair.allowed then
    select * into v_all from keyserver.consume_rate_limit(
      'prekey_fetch:caller:' || p_caller_user,
      keyserver.setting_int('prekey_fetch_caller_capacity'),
      keyserver.setting_interval('prekey_fetch_caller_refill'), 1, p_now);
    if not v_all.allowed or v_all.remaining < v_pair.remaining then
      v_rate := to_jsonb(v_all);
    end if;
  end if;
  if not (v_rate ->> 'allowed')::boolean then
    return jsonb_build_object('bundles', '[]'::jsonb, 'rate_limit', v_rate);
  end if;

  -- A presented invite is locked first so two holders cannot both use it.
  if p_invite_token is not null then
    v_hash := pg_catalog.sha256(convert_to(p_invite_token, 'UTF8'));
    perform 1 from public.contact_invites i
    where i.token_hash = v_hash and i.inviter_agent_id = p_target_agent
    for update;
  end if;

  v_facts := keyserver.contact_facts(p_caller_user, p_caller_agent, p_target_agent, p_invite_token, p_now);
  if not keyserver.facts_allow_contact(v_facts) then
    return jsonb_build_object('bundles', '[]'::jsonb, 'rate_limit', v_rate);
  end if;

  if (v_facts #>> '{invite,valid}')::boolean then
    update public.contact_invites i
    set used_at = p_now, used_by_agent_id = p_caller_agent, used_by_user_id = p_caller_user
    where i.token_hash = v_hash and i.inviter_agent_id = p_target_agent and i.used_at is null;
  end if;

  v_bundles := keyserver.claim_prekey_bundles(p_target_agent, p_target_device, p_now);
  if jsonb_array_length(v_bundles) = 0 then
    v_bundles := keyserver.read_legacy_v1_bundle(p_target_agent, p_target_device);
  end if;
  return jsonb_build_object('bundles', v_bundles, 'rate_limit', v_rate);
end;
$$;
comment on function keyserver.get_prekey_bundle_for_contact_v1(uuid, text, text, integer, text, timestamptz) is
  'service_role (gateway): {bundles: [{device_id, registration_id, identity_key, kind: one_time|last_resort|legacy_v1, key_id, bundle}], rate_limit: {allowed, capacity, remaining, reset_seconds, retry_after_seconds}}. bundles is [] alike for a missing, ineligible or blocked target.';

revoke all on function
  keyserver.assert_contact_request(uuid, text, text, integer),
  keyserver.contact_facts(uuid, text, text, text, timestamptz),
  keyserver.facts_allow_contact(jsonb),
  keyserver.claim_prekey_bundles(text, integer, timestamptz),
  keyserver.eligibility_facts(uuid, text, text, text, timestamptz),
  keyserver.get_prekey_bundle_for_contact_v1(uuid, text, text, integer, text, timestamptz)
  from public, anon, authenticated, service_role;
grant execute on function
  keyserver.eligibility_facts(uuid, text, text, text, timestamptz),
  keyserver.get_prekey_bundle_for_contact_v1(uuid, text, text, integer, text, timestamptz)
  to service_role;
