/**
 * Baseline 1/2: the community tables as they run in production today.
 *
 * Every later migration is an upgrade of this state and is tested against it (see
 * supabase/tests/upgrade). Nothing here is new design: it records what exists, including its
 * weaknesses (shares are inserted directly by members and the recipient's membership is not
 * checked; devices do not exist yet), which later migrations fix.
 *
 * Model: a community has members (role owner|admin|member, joined_at, removed_at). Its sender-key
 * state names the current epoch (key_id) and, after a rotation, the previous one: a soft rotation
 * keeps the previous epoch readable and writable until grace_until, a hard rotation closes it at
 * once. Members distribute epoch keys to each other as Signal-encrypted shares, post ciphertext
 * blobs under an epoch, and follow a payloadless event stream.
 */

/** Section - communities */

-- A community (group conversation). The creator becomes its owner (trigger below).
create table if not exists public.communities (
  id uuid primary key default gen_random_uuid(),
  name text not null check (char_length(name) between 1 and 200),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now()
);
comment on table public.communities is
  'A community (group conversation). Visible to its current members; created by any signed-in user, who becomes its owner.';
create index if not exists communities_created_by_idx on public.communities (created_by);

-- Membership: one row per (community, user); removal keeps the row with removed_at set.
create table if not exists public.community_members (
  community_id uuid not null references public.communities (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null default 'member' check (role in ('owner', 'admin', 'member')),
  joined_at timestamptz not null default now(),
  removed_at timestamptz,
  primary key (community_id, user_id),
  constraint community_members_removed_after_joined check (removed_at is null or removed_at >= joined_at)
);
comment on table public.community_members is
  'Community membership with role and joined/removed times. A member is current while removed_at is null.';
-- Membership checks in policies look up (user, community) and read joined_at/removed_at: cover them.
create index if not exists community_members_user_idx
  on public.community_members (user_id, community_id) include (removed_at, joined_at);

/** Section - sender key state (epochs) */

-- The current epoch of a community's sender keys and how it was entered.
create table if not exists public.community_sender_key_state (
  community_id uuid primary key references public.communities (id) on delete cascade,
  key_id integer not null check (key_id >= 1),
  previous_key_id integer,
  rotation_kind text not null check (rotation_kind in ('initial', 'soft', 'hard')),
  rotated_at timestamptz not null default now(),
  grace_until timestamptz,
  constraint community_sender_key_state_previous check (
    (rotation_kind = 'initial' and previous_key_id is null)
    or (rotation_kind <> 'initial' and previous_key_id is not null and previous_key_id < key_id)),
  constraint community_sender_key_state_grace check (
    (rotation_kind = 'soft' and grace_until is not null and grace_until >= rotated_at)
    or (rotation_kind <> 'soft' and grace_until is null))
);
comment on table public.community_sender_key_state is
  'Current sender-key epoch (key_id) per community. After a soft rotation the previous epoch stays open until grace_until; after a hard rotation it is closed at once.';
create index if not exists community_sender_key_state_epochs_idx
  on public.community_sender_key_state (community_id, key_id, previous_key_id)
  include (rotation_kind, rotated_at, grace_until);

/** Section - sender key shares */

-- An epoch key sent from one member to another, encrypted with the Signal protocol.
create table if not exists public.community_sender_key_shares (
  id uuid primary key default gen_random_uuid(),
  community_id uuid not null references public.communities (id) on delete cascade,
  key_id integer not null check (key_id >= 1),
  from_user_id uuid not null references auth.users (id) on delete cascade,
  from_agent_id text not null,
  to_user_id uuid not null references auth.users (id) on delete cascade,
  to_agent_id text not null,
  message_type smallint not null check (message_type in (2, 3)),
  encrypted_share bytea not null check (octet_length(encrypted_share) between 1 and 16384),
  encryption_type text not null default 'signal_protocol'
    constraint community_sender_key_shares_signal_only check (encryption_type = 'signal_protocol'),
  created_at timestamptz not null default now()
);
comment on table public.community_sender_key_shares is
  'Sender-key epoch shares, each a Signal message (type 2 SignalMessage or 3 PreKeySignalMessage) from one member to another. Readable by sender and recipient.';
create index if not exists community_sender_key_shares_to_idx
  on public.community_sender_key_shares (to_user_id, community_id, key_id);
create index if not exists community_sender_key_shares_from_idx
  on public.community_sender_key_shares (from_user_id, community_id, key_id);
create index if not exists community_sender_key_shares_community_idx
  on public.community_sender_key_shares (community_id, key_id);

/** Section - message blobs and events */

-- A community message: ciphertext under an epoch's sender key.
create table if not exists public.community_message_blobs (
  id uuid primary key default gen_random_uuid(),
  community_id uuid not null references public.communities (id) on delete cascade,
  key_id integer not null check (key_id >= 1),
  sender_user_id uuid not null references auth.users (id) on delete cascade,
  sender_agent_id text not null,
  ciphertext bytea not null check (octet_length(ciphertext) between 1 and 262144),
  created_at timestamptz not null default now()
);
comment on table public.community_message_blobs is
  'Community message ciphertext under sender-key epoch key_id. Current members read blobs written since they joined while the epoch was open.';
create index if not exists community_message_blobs_community_idx
  on public.community_message_blobs (community_id, created_at) include (key_id);
create index if not exists community_message_blobs_sender_idx
  on public.community_message_blobs (sender_user_id);

-- A payloadless notification that a blob arrived (the stream clients subscribe to).
create table if not exists public.community_message_events (
  id bigint generated always as identity primary key,
  community_id uuid not null references public.communities (id) on delete cascade,
  blob_id uuid not null references public.community_message_blobs (id) on delete cascade,
  key_id integer not null,
  created_at timestamptz not null default now()
);
comment on table public.community_message_events is
  'Payloadless "a blob arrived" notifications, visible under the same membership and grace-window rules as the blobs.';
create index if not exists community_message_events_community_idx
  on public.community_message_events (community_id, created_at) include (key_id);
create index if not exists community_message_events_blob_idx on public.community_message_events (blob_id);

/** Section - triggers */

-- A new community gets its creator as owner and epoch 1.
create or replace function public.handle_new_community()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.created_by is not null then
    insert into public.community_members (community_id, user_id, role, joined_at)
    values (new.id, new.created_by, 'owner', new.created_at);
  end if;
  insert into public.community_sender_key_state (community_id, key_id, rotation_kind, rotated_at)
  values (new.id, 1, 'initial', new.created_at);
  return new;
end;
$$;
comment on function public.handle_new_community() is
  'After insert on communities: the creator becomes the owner member and epoch 1 starts.';
revoke all on function public.handle_new_community() from public, anon, authenticated, service_role;

create trigger on_community_created
  after insert on public.communities
  for each row execute function public.handle_new_community();

-- Each stored blob emits one payloadless event.
create or replace function public.handle_new_community_message()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.community_message_events (community_id, blob_id, key_id, created_at)
  values (new.community_id, new.id, new.key_id, new.created_at);
  return new;
end;
$$;
comment on function public.handle_new_community_message() is
  'After insert on community_message_blobs: appends the payloadless event.';
revoke all on function public.handle_new_community_message() from public, anon, authenticated, service_role;

create trigger on_community_message_created
  after insert on public.community_message_blobs
  for each row execute function public.handle_new_community_message();

/** Section - row level security */

alter table public.communities enable row level security;
alter table public.community_members enable row level security;
alter table public.community_sender_key_state enable row level security;
alter table public.community_sender_key_shares enable row level security;
alter table public.community_message_blobs enable row level security;
alter table public.community_message_events enable row level security;

-- Grants as production has them: nothing for anon; members act through RLS.
revoke all on table public.communities, public.community_members, public.community_sender_key_state,
  public.community_sender_key_shares, public.community_message_blobs, public.community_message_events
  from anon, authenticated;
grant select on table public.communities to authenticated;
grant insert (id, name, created_by) on table public.communities to authenticated;
grant select on table public.community_members, public.community_sender_key_state,
  public.community_message_events to authenticated;
grant select, insert on table public.community_sender_key_shares, public.community_message_blobs to authenticated;

create policy communities_select_members on public.communities
  for select to authenticated
  using (exists (
    select 1 from public.community_members m
    where m.community_id = communities.id
      and m.user_id = (select auth.uid())
      and m.removed_at is null));

create policy communities_insert_creator on public.communities
  for insert to authenticated
  with check (created_by = (select auth.uid()));

create policy community_members_select_own on public.community_members
  for select to authenticated
  using (user_id = (select auth.uid()));

create policy community_sender_key_state_select_members on public.community_sender_key_state
  for select to authenticated
  using (exists (
    select 1 from public.community_members m
    where m.community_id = community_sender_key_state.community_id
      and m.user_id = (select auth.uid())
      and m.removed_at is null));

create policy community_sender_key_shares_select_parties on public.community_sender_key_shares
  for select to authenticated
  using (to_user_id = (select auth.uid()) or from_user_id = (select auth.uid()));

-- Production weakness kept on purpose: the recipient's membership is not checked.
create policy community_sender_key_shares_insert_members on public.community_sender_key_shares
  for insert to authenticated
  with check (
    from_user_id = (select auth.uid())
    and exists (
      select 1 from public.community_members m
      where m.community_id = community_sender_key_shares.community_id
        and m.user_id = (select auth.uid())
        and m.removed_at is null));

-- Readable by current members, for blobs written since they joined while the epoch was open:
-- the current epoch, the previous one before it closed (grace_until after a soft rotation,
-- rotated_at after a hard one), and older history.
create policy community_message_blobs_select_members on public.community_message_blobs
  for select to authenticated
  using (
    exists (
      select 1 from public.community_members m
      where m.community_id = community_message_blobs.community_id
        and m.user_id = (select auth.uid())
        and m.removed_at is null
        and m.joined_at <= community_message_blobs.created_at)
    and exists (
      select 1 from public.community_sender_key_state s
      where s.community_id = community_message_blobs.community_id
        and community_message_blobs.key_id <= s.key_id
        and not coalesce(community_message_blobs.key_id = s.previous_key_id
                 and community_message_blobs.created_at
                     >= case when s.rotation_kind = 'soft' then s.grace_until else s.rotated_at end, false)));

-- Writable by current members under the current epoch, or the previous one during a soft
-- rotation's grace window.
create policy community_message_blobs_insert_members on public.community_message_blobs
  for insert to authenticated
  with check (
    sender_user_id = (select auth.uid())
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

create policy community_message_events_select_members on public.community_message_events
  for select to authenticated
  using (
    exists (
      select 1 from public.community_members m
      where m.community_id = community_message_events.community_id
        and m.user_id = (select auth.uid())
        and m.removed_at is null
        and m.joined_at <= community_message_events.created_at)
    and exists (
      select 1 from public.community_sender_key_state s
      where s.community_id = community_message_events.community_id
        and community_message_events.key_id <= s.key_id
        and not coalesce(community_message_events.key_id = s.previous_key_id
                 and community_message_events.created_at
                     >= case when s.rotation_kind = 'soft' then s.grace_until else s.rotated_at end, false)));

/** Section - realtime */

-- Clients subscribe to the event stream through Supabase Realtime (hosted projects have the
-- publication; the local stack does not).
do $$
begin
  if exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    alter publication supabase_realtime add table public.community_message_events;
  end if;
end
$$;
