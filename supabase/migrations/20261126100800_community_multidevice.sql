/**
 * Communities: multi-device shares, sender chains, and gateway-only share posting.
 *
 * Shares gain from/to device ids and a share_kind (epoch_key_v1, epoch_sender_chain_seed_v1,
 * re_share_v1). Existing shares have no devices: a NULL to_device_id means device 1 during the
 * migration window. New rows must name both devices (NOT VALID checks: enforced for new rows,
 * legacy rows untouched) and a device owned by the named user and agent (composite foreign keys,
 * also NOT VALID for the legacy rows).
 *
 * Blobs gain sender_device_id, sender_chain_id and sender_chain_iteration (required for new
 * rows; unique per sender chain, so a chain iteration cannot be stored twice) and the insert
 * policy now also checks that the sender agent and device belong to the caller.
 *
 * Posting shares moves to the gateway (keyserver.post_community_shares, service_role): each
 * share must validate as a Signal message there, and the database checks what production never
 * did: every recipient is a current member with an active device. Membership and grace-window
 * gating keep their meaning: a soft rotation keeps the previous epoch readable and writable until
 * grace_until; a hard rotation closes it at once and removed members get nothing of the new epoch.
 * Members now also see their co-members (needed to fan shares out to every member device).
 */

/** Section - settings */

insert into keyserver.settings (key, value, description, client_visible) values
  ('community_soft_grace', '"24 hours"', 'Default grace window of a soft epoch rotation.', true),
  ('community_share_batch_max', '1000', 'Most shares in one post call.', true)
on conflict (key) do nothing;

/** Section - shares: devices and kinds */

alter table public.community_sender_key_shares
  add column if not exists from_device_id integer check (from_device_id between 1 and 127),
  add column if not exists to_device_id integer check (to_device_id between 1 and 127),
  add column if not exists share_kind text not null default 'epoch_key_v1'
    constraint community_sender_key_shares_kind
    check (share_kind in ('epoch_key_v1', 'epoch_sender_chain_seed_v1', 're_share_v1'));

comment on column public.community_sender_key_shares.to_device_id is
  'Recipient device; NULL (legacy rows only) means device 1 during the migration window.';

alter table public.community_sender_key_shares
  add constraint community_sender_key_shares_devices_required
    check (from_device_id is not null and to_device_id is not null) not valid,
  add constraint community_sender_key_shares_from_device_fkey foreign key (from_user_id, from_agent_id, from_device_id)
    references public.agent_devices (user_id, agent_id, device_id) on delete cascade not valid,
  add constraint community_sender_key_shares_to_device_fkey foreign key (to_user_id, to_agent_id, to_device_id)
    references public.agent_devices (user_id, agent_id, device_id) on delete cascade not valid;

drop index if exists public.community_sender_key_shares_to_idx;
drop index if exists public.community_sender_key_shares_from_idx;
create index if not exists community_sender_key_shares_to_device_idx
  on public.community_sender_key_shares (to_user_id, to_agent_id, to_device_id, community_id, key_id);
create index if not exists community_sender_key_shares_from_device_idx
  on public.community_sender_key_shares (from_user_id, from_agent_id, from_device_id);

-- Shares are posted through the gateway only.
drop policy if exists community_sender_key_shares_insert_members on public.community_sender_key_shares;
revoke insert on table public.community_sender_key_shares from authenticated;

/** Section - blobs: sender device and chain */

alter table public.community_message_blobs
  add column if not exists sender_device_id integer check (sender_device_id between 1 and 127),
  add column if not exists sender_chain_id bigint check (sender_chain_id between 0 and 4294967295),
  add column if not exists sender_chain_iteration bigint check (sender_chain_iteration between 0 and 4294967295);

alter table public.community_message_blobs
  add constraint community_message_blobs_sender_chain_required
    check (sender_device_id is not null and sender_chain_id is not null and sender_chain_iteration is not null) not valid,
  add constraint community_message_blobs_sender_device_fkey foreign key (sender_user_id, sender_agent_id, sender_device_id)
    references public.agent_devices (user_id, agent_id, device_id) on delete cascade not valid;

drop index if exists public.community_message_blobs_sender_idx;
create index if not exists community_message_blobs_sender_device_idx
  on public.community_message_blobs (sender_user_id, sender_agent_id, sender_device_id);
create unique index if not exists community_message_blobs_chain_idx
  on public.community_message_blobs (community_id, key_id, sender_agent_id, sender_device_id, sender_chain_id, sender_chain_iteration);

revoke insert on table public.community_message_blobs from authenticated;
grant insert (community_id, key_id, sender_user_id, sender_agent_id, sender_device_id, sender_chain_id,
              sender_chain_iteration, ciphertext)
  on table public.community_message_blobs to authenticated;

-- Same membership and epoch rule as before, plus: the sender agent and device are the caller's.
drop policy if exists community_message_blobs_insert_members on public.community_message_blobs;
create policy community_message_blobs_insert_members on public.community_message_blobs
  for insert to authenticated
  with check (
    sender_user_id = (select auth.uid())
    and exists (
      select 1 from public.agent_devices d
      where d.user_id = (select auth.uid())
        and d.agent_id = community_message_blobs.sender_agent_id
        and d.device_id = community_message_blobs.sender_device_id
        and d.revoked_at is null)
    and exists (
      select 1 from public.community_members m
      where m.community_id = community_message_blobs.community_id
        and m.user_id = (select auth.uid())
        and m.removed_at is null)
    and exists (
      select 1 from public.community_sender_key_state s
      where s.community_id = community_message_blobs.community_id
        and (s.key_id = community_message_blobs.key_id
             or (s.previous_key_id = community_message_blobs.key_id
                 and s.rotation_kind = 'soft'
                 and now() < s.grace_until))));

/** Section - co-member visibility */

-- The communities the caller is a current member of (used by policies; bypasses RLS to avoid recursion).
create or replace function keyserver.my_current_community_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select m.community_id from public.community_members m
  where m.user_id = (select auth.uid()) and m.removed_at is null
$$;
comment on function keyserver.my_current_community_ids() is
  'Policy helper: ids of the communities the caller (auth.uid()) is a current member of.';
revoke all on function keyserver.my_current_community_ids() from public, anon;
grant execute on function keyserver.my_current_community_ids() to authenticated, service_role;

drop policy if exists community_members_select_own on public.community_members;
create policy community_members_select_own_or_co_member on public.community_members
  for select to authenticated
  using (
    user_id = (select auth.uid())
    or community_id in (select keyserver.my_current_community_ids()));

/** Section - gateway functions (service_role) */

-- The caller's membership and the community's epoch state; {is_member: false} for anyone else.
create or replace function keyserver.community_membership(
  p_user uuid,
  p_community uuid,
  p_now timestamptz default now()
)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce((
    select jsonb_build_object(
      'is_member', true,
      'role', m.role,
      'joined_at', m.joined_at,
      'key_id', s.key_id,
      'previous_key_id', s.previous_key_id,
      'rotation_kind', s.rotation_kind,
      'rotated_at', s.rotated_at,
      'grace_until', s.grace_until,
      'previous_open', s.rotation_kind = 'soft' and p_now < s.grace_until)
    from public.community_members m
    join public.community_sender_key_state s on s.community_id = m.community_id
    where m.community_id = p_community and m.user_id = p_user and m.removed_at is null),
    jsonb_build_object('is_member', false))
$$;
comment on function keyserver.community_membership(uuid, uuid, timestamptz) is
  'service_role: {is_member, role, joined_at, key_id, previous_key_id, rotation_kind, rotated_at, grace_until, previous_open} for a current member; {is_member: false} otherwise.';

-- Every active device of every current member (the fan-out list for shares), for a current member.
create or replace function keyserver.community_recipients(p_user uuid, p_community uuid)
returns table (user_id uuid, agent_id text, device_id integer, registration_id integer)
language sql
stable
security definer
set search_path = ''
as $$
  select d.user_id, d.agent_id, d.device_id, d.registration_id
  from public.community_members m
  join public.agent_devices d on d.user_id = m.user_id and d.revoked_at is null
  where m.community_id = p_community
    and m.removed_at is null
    and exists (select 1 from public.community_members me
                where me.community_id = p_community and me.user_id = p_user and me.removed_at is null)
  order by d.user_id, d.agent_id, d.device_id
$$;
comment on function keyserver.community_recipients(uuid, uuid) is
  'service_role: active devices of the current members of a community the caller is a current member of (empty otherwise).';

-- One parsed share of a post batch.
do $$
begin
  if to_regtype('keyserver.share_input') is null then
    create type keyserver.share_input as (
      ord integer, to_agent_id text, to_device_id integer, share_kind text, message_type smallint, encrypted_share bytea);
  end if;
end
$$;
comment on type keyserver.share_input is 'One parsed share of keyserver.post_community_shares.';

-- Posts epoch shares from a member's device to current member devices, all or nothing.
create or replace function keyserver.post_community_shares(
  p_sender_user uuid,
  p_from_agent text,
  p_from_device integer,
  p_community uuid,
  p_key_id integer,
  p_shares jsonb,
  p_now timestamptz default now()
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_state record;
  v_batch keyserver.share_input[];
  v_bad text;
  v_ids jsonb;
begin
  if p_sender_user is null or p_from_agent is null or p_from_device is null or p_community is null
     or p_key_id is null or jsonb_typeof(p_shares) is distinct from 'array' then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'shares must be a JSON array of {to_agent_id, to_device_id, share_kind?, message_type, encrypted_share (base64)}';
  end if;
  v_count := jsonb_array_length(p_shares);
  if v_count = 0 or v_count > keyserver.setting_int('community_share_batch_max') then
    raise exception using errcode = 'KS400', message = 'batch_size',
      detail = format('%s shares; between 1 and %s per call', v_count, keyserver.setting_int('community_share_batch_max'));
  end if;
  if not exists (select 1 from public.agent_devices d
                 where d.agent_id = p_from_agent and d.device_id = p_from_device
                   and d.user_id = p_sender_user and d.revoked_at is null) then
    raise exception using errcode = 'KS403', message = 'sender_device_not_owned';
  end if;
  if not exists (select 1 from public.community_members m
                 where m.community_id = p_community and m.user_id = p_sender_user and m.removed_at is null) then
    raise exception using errcode = 'KS403', message = 'not_a_member';
  end if;

  -- The epoch must be open now: the current one, or the previous one within a soft grace window.
  select s.* into v_state from public.community_sender_key_state s where s.community_id = p_community for share;
  if not found or not coalesce(
       p_key_id = v_state.key_id
       or (p_key_id = v_state.previous_key_id and v_state.rotation_kind = 'soft' and p_now < v_state.grace_until),
       false) then
    raise exception using errcode = 'KS409', message = 'epoch_closed',
      detail = format('key_id %s is not open; current key_id is %s', p_key_id, v_state.key_id);
  end if;

  begin
    select array_agg(row(e.ord::integer, e.v ->> 'to_agent_id', coalesce((e.v ->> 'to_device_id')::integer, 1),
                         coalesce(e.v ->> 'share_kind', 'epoch_key_v1'), (e.v ->> 'message_type')::smallint,
                         decode(e.v ->> 'encrypted_share', 'base64'))::keyserver.share_input
                     order by e.ord)
    into v_batch
    from jsonb_array_elements(p_shares) with ordinality as e(v, ord);
  exception when invalid_text_representation or numeric_value_out_of_range or invalid_parameter_value then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'to_device_id and message_type are integers, encrypted_share is base64';
  end;
  select format('share %s', b.ord) into v_bad from unnest(v_batch) b
  where b.to_agent_id is null or b.message_type is null or b.encrypted_share is null
     or b.message_type not in (2, 3)
     or b.share_kind not in ('epoch_key_v1', 'epoch_sender_chain_seed_v1', 're_share_v1')
  order by b.ord limit 1;
  if v_bad is not null then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = v_bad || ': needs to_agent_id, message_type 2|3, encrypted_share and a known share_kind';
  end if;

  -- Every recipient: an active device of an agent owned by a current member.
  select string_agg(format('%s/%s', b.to_agent_id, b.to_device_id), ', ' order by b.ord) into v_bad
  from unnest(v_batch) b
  where not exists (
    select 1 from public.agent_devices d
    join public.community_members m on m.user_id = d.user_id
    where d.agent_id = b.to_agent_id and d.device_id = b.to_device_id and d.revoked_at is null
      and m.community_id = p_community and m.removed_at is null);
  if v_bad is not null then
    raise exception using errcode = 'KS409', message = 'recipient_not_member',
      detail = 'not an active device of a current member: ' || v_bad;
  end if;

  with ins as (
    insert into public.community_sender_key_shares
      (community_id, key_id, from_user_id, from_agent_id, from_device_id, to_user_id, to_agent_id, to_device_id,
       share_kind, message_type, encrypted_share, encryption_type, created_at)
    select p_community, p_key_id, p_sender_user, p_from_agent, p_from_device, d.user_id, b.to_agent_id, b.to_device_id,
           b.share_kind, b.message_type, b.encrypted_share, 'signal_protocol', p_now
    from unnest(v_batch) b
    join public.agent_devices d on d.agent_id = b.to_agent_id and d.device_id = b.to_device_id
    order by b.ord
    returning id
  )
  select jsonb_agg(ins.id) into v_ids from ins;
  return jsonb_build_object('accepted', jsonb_array_length(v_ids), 'ids', v_ids);
end;
$$;
comment on function keyserver.post_community_shares(uuid, text, integer, uuid, integer, jsonb, timestamptz) is
  'service_role (gateway): stores shares [{to_agent_id, to_device_id (null = 1), share_kind?, message_type 2|3, encrypted_share base64}] for an open epoch from a member''s active device to active devices of current members, all or nothing. Errors: KS400, KS403 sender_device_not_owned | not_a_member, KS409 epoch_closed | recipient_not_member.';

-- Starts a new epoch (admins and owners only). Soft: the previous epoch stays open until grace_until.
create or replace function keyserver.rotate_community_epoch(
  p_user uuid,
  p_community uuid,
  p_kind text,
  p_grace interval default null,
  p_now timestamptz default now()
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_state public.community_sender_key_state;
  v_grace interval;
begin
  if p_kind is null or p_kind not in ('soft', 'hard') or (p_grace is not null and p_grace <= interval '0') then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'kind is soft or hard; grace, when given, is positive';
  end if;
  if not exists (select 1 from public.community_members m
                 where m.community_id = p_community and m.user_id = p_user
                   and m.removed_at is null and m.role in ('owner', 'admin')) then
    raise exception using errcode = 'KS403', message = 'not_permitted',
      detail = 'only current owners and admins rotate the epoch';
  end if;
  v_grace := coalesce(p_grace, keyserver.setting_interval('community_soft_grace'));
  update public.community_sender_key_state s
  set previous_key_id = s.key_id,
      key_id = s.key_id + 1,
      rotation_kind = p_kind,
      rotated_at = greatest(p_now, s.rotated_at),
      grace_until = case when p_kind = 'soft' then greatest(p_now, s.rotated_at) + v_grace end
  where s.community_id = p_community
  returning s.* into v_state;
  return jsonb_build_object(
    'community_id', v_state.community_id,
    'key_id', v_state.key_id,
    'previous_key_id', v_state.previous_key_id,
    'rotation_kind', v_state.rotation_kind,
    'rotated_at', v_state.rotated_at,
    'grace_until', v_state.grace_until);
end;
$$;
comment on function keyserver.rotate_community_epoch(uuid, uuid, text, interval, timestamptz) is
  'service_role (gateway): owners/admins start epoch key_id + 1. soft: the previous epoch stays open until grace_until (default community_soft_grace); hard: closed at once. KS403 not_permitted otherwise.';

revoke all on function
  keyserver.community_membership(uuid, uuid, timestamptz),
  keyserver.community_recipients(uuid, uuid),
  keyserver.post_community_shares(uuid, text, integer, uuid, integer, jsonb, timestamptz),
  keyserver.rotate_community_epoch(uuid, uuid, text, interval, timestamptz)
  from public, anon, authenticated;
grant execute on function
  keyserver.community_membership(uuid, uuid, timestamptz),
  keyserver.community_recipients(uuid, uuid),
  keyserver.post_community_shares(uuid, text, integer, uuid, integer, jsonb, timestamptz),
  keyserver.rotate_community_epoch(uuid, uuid, text, interval, timestamptz)
  to service_role;

/** Section - my shares (gateway, as authenticated; security invoker) */

-- The caller's shares for one of its devices in a community (legacy NULL device = device 1).
create or replace function keyserver.my_community_shares(
  p_community uuid,
  p_agent_id text,
  p_device_id integer,
  p_min_key_id integer default 1
)
returns table (
  id uuid,
  key_id integer,
  share_kind text,
  from_agent_id text,
  from_device_id integer,
  message_type smallint,
  encrypted_share bytea,
  created_at timestamptz
)
language sql
stable
set search_path = ''
as $$
  select s.id, s.key_id, s.share_kind, s.from_agent_id, s.from_device_id, s.message_type, s.encrypted_share, s.created_at
  from public.community_sender_key_shares s
  where s.to_user_id = (select auth.uid())
    and s.to_agent_id = p_agent_id
    and coalesce(s.to_device_id, 1) = p_device_id
    and s.community_id = p_community
    and s.key_id >= coalesce(p_min_key_id, 1)
  order by s.key_id, s.created_at, s.id
$$;
comment on function keyserver.my_community_shares(uuid, text, integer, integer) is
  'As authenticated: the caller''s shares addressed to one of its devices in a community (NULL to_device_id counts as device 1), from key_id p_min_key_id on.';

revoke all on function keyserver.my_community_shares(uuid, text, integer, integer) from public, anon, service_role;
grant execute on function keyserver.my_community_shares(uuid, text, integer, integer) to authenticated;
