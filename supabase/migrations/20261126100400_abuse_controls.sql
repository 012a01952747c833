/**
 * Eligibility facts and abuse controls: AI2AI connections, contact invites, blocks, thresholds,
 * and leaky-bucket rate limits.
 *
 * These are the hard facts the gated prekey function and the DM send recheck (20261126100600,
 * 20261126100700) and that the gateway's policy module evaluates (keyserver.eligibility_facts).
 */

/** Section - settings */

insert into keyserver.settings (key, value, description, client_visible) values
  ('min_entanglement_score', '0.5', 'An AI2AI connection makes two agents eligible only at or above this entanglement score.', false),
  ('min_compatibility_score', '0.5', 'An AI2AI connection makes two agents eligible only at or above this compatibility score.', false),
  ('invite_default_ttl', '"7 days"', 'Default lifetime of a contact invite.', true)
on conflict (key) do nothing;

/** Section - AI2AI connections */

-- Scores of an AI2AI connection between two agents, written by the service (service_role).
create table if not exists public.ai2ai_connections (
  agent_a text not null references public.agents (agent_id) on delete cascade,
  agent_b text not null references public.agents (agent_id) on delete cascade,
  entanglement_score double precision not null check (entanglement_score between 0 and 1),
  compatibility_score double precision not null check (compatibility_score between 0 and 1),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (agent_a, agent_b),
  constraint ai2ai_connections_canonical_order check (agent_a < agent_b)
);
comment on table public.ai2ai_connections is
  'AI2AI connection between two agents (stored once, agent_a < agent_b) with entanglement and compatibility scores in [0, 1]. Written by service_role; each side''s owner can read it.';
create index if not exists ai2ai_connections_agent_b_idx on public.ai2ai_connections (agent_b, agent_a);

/** Section - contact invites */

-- A single-use, expiring invite from an agent; only the SHA-256 of the token is stored.
create table if not exists public.contact_invites (
  id uuid primary key default gen_random_uuid(),
  inviter_user_id uuid not null,
  inviter_agent_id text not null,
  token_hash bytea not null unique check (octet_length(token_hash) = 32),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  used_at timestamptz,
  used_by_agent_id text,
  used_by_user_id uuid references auth.users (id) on delete set null,
  constraint contact_invites_inviter_fkey foreign key (inviter_user_id, inviter_agent_id)
    references public.agents (user_id, agent_id) on delete cascade,
  constraint contact_invites_lifetime check (expires_at > created_at and expires_at <= created_at + interval '30 days'),
  constraint contact_invites_used check ((used_at is null) = (used_by_agent_id is null))
);
comment on table public.contact_invites is
  'Contact invites: sha256(raw token), single use, expiring. Presenting a valid token makes the holder eligible for the inviter''s bundles once; a used invite links the two agents as contacts.';
create index if not exists contact_invites_inviter_idx on public.contact_invites (inviter_user_id, inviter_agent_id);
create index if not exists contact_invites_used_pair_idx
  on public.contact_invites (inviter_agent_id, used_by_agent_id) where used_at is not null;
create index if not exists contact_invites_used_by_idx
  on public.contact_invites (used_by_agent_id, inviter_agent_id) where used_at is not null;
create index if not exists contact_invites_used_by_user_idx on public.contact_invites (used_by_user_id);
create index if not exists contact_invites_expires_idx on public.contact_invites (expires_at) where used_at is null;

-- Invites start now, unused, with the default lifetime unless a shorter one is given.
create or replace function keyserver.contact_invites_before_insert()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  new.created_at := now();
  new.used_at := null;
  new.used_by_agent_id := null;
  new.used_by_user_id := null;
  if new.expires_at is null then
    new.expires_at := new.created_at + keyserver.setting_interval('invite_default_ttl');
  end if;
  return new;
end;
$$;
comment on function keyserver.contact_invites_before_insert() is
  'Before insert on contact_invites: created now, unused, default lifetime.';

create trigger contact_invites_before_insert
  before insert on public.contact_invites
  for each row execute function keyserver.contact_invites_before_insert();

/** Section - blocks */

-- A user blocks an agent id; the agent's owner is resolved server-side (never shown to the blocker).
create table if not exists public.user_blocks (
  blocker_user_id uuid not null references auth.users (id) on delete cascade,
  blocked_agent_id text not null check (blocked_agent_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  blocked_user_id uuid references auth.users (id) on delete cascade,
  created_at timestamptz not null default now(),
  primary key (blocker_user_id, blocked_agent_id)
);
comment on table public.user_blocks is
  'Blocks by agent id. blocked_user_id (the agent''s owner, resolved by trigger) extends the block to all of that user''s agents and is not readable by clients. Blocks apply in both directions.';
create index if not exists user_blocks_blocked_user_idx on public.user_blocks (blocked_user_id, blocker_user_id);

-- Resolves the blocked agent's owner; an unknown agent id is stored as is (no existence oracle).
create or replace function keyserver.user_blocks_before_insert()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  new.created_at := now();
  select a.user_id into new.blocked_user_id from public.agents a where a.agent_id = new.blocked_agent_id;
  return new;
end;
$$;
comment on function keyserver.user_blocks_before_insert() is
  'Before insert on user_blocks: fills blocked_user_id from public.agents (null when the agent id is unknown).';

create trigger user_blocks_before_insert
  before insert on public.user_blocks
  for each row execute function keyserver.user_blocks_before_insert();

revoke all on function keyserver.contact_invites_before_insert(), keyserver.user_blocks_before_insert()
  from public, anon, authenticated, service_role;

/** Section - rate limit buckets */

-- Leaky buckets: level drains at capacity per refill_interval; a request adds its cost.
create table if not exists keyserver.rate_limit_buckets (
  key text primary key check (char_length(key) between 1 and 512),
  level numeric not null default 0 check (level >= 0),
  capacity integer not null check (capacity >= 1),
  refill_interval interval not null,
  updated_at timestamptz not null,
  denied_total bigint not null default 0,
  last_denied_at timestamptz
);
comment on table keyserver.rate_limit_buckets is
  'Leaky-bucket state per rate-limit key (e.g. prekey_fetch:<caller user>:<target agent>). Only keyserver.consume_rate_limit writes it.';
create index if not exists rate_limit_buckets_updated_idx on keyserver.rate_limit_buckets (updated_at);
create index if not exists rate_limit_buckets_denied_idx
  on keyserver.rate_limit_buckets (last_denied_at) where last_denied_at is not null;

-- Consumes p_cost from the bucket p_key; returns whether allowed and what RateLimit headers need.
create or replace function keyserver.consume_rate_limit(
  p_key text,
  p_capacity integer,
  p_refill_interval interval,
  p_cost integer default 1,
  p_now timestamptz default now()
)
returns table (
  allowed boolean,
  capacity integer,
  remaining integer,
  reset_seconds integer,
  retry_after_seconds integer
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_seconds numeric := extract(epoch from p_refill_interval);
  v_level numeric;
  v_updated timestamptz;
  v_elapsed numeric;
  v_allowed boolean;
begin
  if p_key is null or p_capacity is null or p_capacity < 1 or p_cost is null or p_cost < 1
     or v_seconds is null or v_seconds <= 0 or p_now is null then
    raise exception using errcode = 'KS400', message = 'invalid_argument',
      detail = 'consume_rate_limit(key, capacity >= 1, refill_interval > 0, cost >= 1)';
  end if;
  insert into keyserver.rate_limit_buckets as b (key, level, capacity, refill_interval, updated_at)
  values (p_key, 0, p_capacity, p_refill_interval, p_now)
  on conflict (key) do nothing;
  select b.level, b.updated_at into v_level, v_updated
  from keyserver.rate_limit_buckets b where b.key = p_key for update;

  v_elapsed := greatest(0, extract(epoch from (p_now - v_updated)));
  v_level := greatest(0, v_level - v_elapsed * p_capacity / v_seconds);
  v_allowed := v_level + p_cost <= p_capacity;
  if v_allowed then
    v_level := v_level + p_cost;
  end if;

  update keyserver.rate_limit_buckets b
  set level = v_level,
      capacity = p_capacity,
      refill_interval = p_refill_interval,
      updated_at = greatest(v_updated, p_now),
      denied_total = b.denied_total + case when v_allowed then 0 else 1 end,
      last_denied_at = case when v_allowed then b.last_denied_at else p_now end
  where b.key = p_key;

  allowed := v_allowed;
  capacity := p_capacity;
  remaining := floor(p_capacity - v_level)::integer;
  reset_seconds := ceil(v_level * v_seconds / p_capacity)::integer;
  retry_after_seconds := case when v_allowed then 0
                              else ceil((v_level + p_cost - p_capacity) * v_seconds / p_capacity)::integer end;
  return next;
end;
$$;
comment on function keyserver.consume_rate_limit(text, integer, interval, integer, timestamptz) is
  'service_role: leaky bucket. Drains at capacity per refill_interval; allows when level + cost <= capacity. Returns allowed, capacity, remaining, reset_seconds (until the bucket is empty again) and retry_after_seconds (0 when allowed), for RateLimit headers.';

revoke all on function keyserver.consume_rate_limit(text, integer, interval, integer, timestamptz)
  from public, anon, authenticated;
grant execute on function keyserver.consume_rate_limit(text, integer, interval, integer, timestamptz) to service_role;

/** Section - row level security */

alter table public.ai2ai_connections enable row level security;
alter table public.contact_invites enable row level security;
alter table public.user_blocks enable row level security;
alter table keyserver.rate_limit_buckets enable row level security;

revoke all on table public.ai2ai_connections, public.contact_invites, public.user_blocks from anon, authenticated;
grant select on table public.ai2ai_connections to authenticated;
grant select (id, inviter_user_id, inviter_agent_id, created_at, expires_at, used_at, used_by_agent_id)
  on table public.contact_invites to authenticated;
grant insert (inviter_user_id, inviter_agent_id, token_hash, expires_at) on table public.contact_invites to authenticated;
grant delete on table public.contact_invites to authenticated;
grant select (blocker_user_id, blocked_agent_id, created_at) on table public.user_blocks to authenticated;
grant insert (blocker_user_id, blocked_agent_id) on table public.user_blocks to authenticated;
grant delete on table public.user_blocks to authenticated;

revoke all on table keyserver.rate_limit_buckets from public, anon, authenticated, service_role;
grant select, delete on table keyserver.rate_limit_buckets to service_role;

create policy ai2ai_connections_select_parties on public.ai2ai_connections
  for select to authenticated
  using (
    agent_a in (select a.agent_id from public.agents a where a.user_id = (select auth.uid()))
    or agent_b in (select a.agent_id from public.agents a where a.user_id = (select auth.uid())));

create policy contact_invites_select_inviter on public.contact_invites
  for select to authenticated
  using (inviter_user_id = (select auth.uid()));

create policy contact_invites_insert_inviter on public.contact_invites
  for insert to authenticated
  with check (
    inviter_user_id = (select auth.uid())
    and exists (select 1 from public.agents a
                where a.user_id = (select auth.uid()) and a.agent_id = contact_invites.inviter_agent_id));

create policy contact_invites_delete_inviter on public.contact_invites
  for delete to authenticated
  using (inviter_user_id = (select auth.uid()));

create policy user_blocks_select_blocker on public.user_blocks
  for select to authenticated
  using (blocker_user_id = (select auth.uid()));

create policy user_blocks_insert_blocker on public.user_blocks
  for insert to authenticated
  with check (blocker_user_id = (select auth.uid()));

create policy user_blocks_delete_blocker on public.user_blocks
  for delete to authenticated
  using (blocker_user_id = (select auth.uid()));

create policy rate_limit_buckets_service_role on keyserver.rate_limit_buckets
  for all to service_role
  using (true)
  with check (true);

/** Section - invites (gateway, as authenticated; security invoker) */

-- Creates an invite from one of the caller's agents and returns the raw token (shown once).
create or replace function keyserver.create_contact_invite(p_agent_id text, p_ttl interval default null)
returns table (invite_id uuid, token text, expires_at timestamptz)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_token text := encode(extensions.gen_random_bytes(32), 'hex');
begin
  if not exists (select 1 from public.agents a where a.agent_id = p_agent_id) then
    raise exception using errcode = 'KS403', message = 'agent_not_owned';
  end if;
  insert into public.contact_invites as i (inviter_user_id, inviter_agent_id, token_hash, expires_at)
  values ((select auth.uid()), p_agent_id, pg_catalog.sha256(convert_to(v_token, 'UTF8')),
          case when p_ttl is null then null else now() + p_ttl end)
  returning i.id, i.expires_at into invite_id, expires_at;
  token := v_token;
  return next;
end;
$$;
comment on function keyserver.create_contact_invite(text, interval) is
  'As authenticated: creates a single-use invite from one of the caller''s agents; returns its id, the raw token (only its SHA-256 is stored) and expiry.';

revoke all on function keyserver.create_contact_invite(text, interval) from public, anon, service_role;
grant execute on function keyserver.create_contact_invite(text, interval) to authenticated;
