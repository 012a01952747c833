/**
 * Baseline 2/2: the legacy prekey table (V1) exactly as broken as it is in production.
 *
 * Its policies compare auth.uid()::text with agent_id. Agent ids come from the app's
 * AgentIdService and are not auth user ids, so the comparison never holds for a real client:
 * nobody can publish or read through the API, and session establishment is blocked. The fix is
 * V2 (signal_prekey_bundles_v2) behind the gated function; this table is kept for a dual-read
 * window (20261126100500) and then retired (20261126120000).
 */

/** Section - legacy prekey bundles (V1) */

-- One prekey bundle per agent, as the old app published it.
create table if not exists public.signal_prekey_bundles (
  id uuid primary key default gen_random_uuid(),
  agent_id text not null unique,
  registration_id integer,
  identity_key text not null,
  bundle_data jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.signal_prekey_bundles is
  'LEGACY (V1) prekey bundles, one per agent. Production RLS compares auth.uid()::text = agent_id, which never holds.';

alter table public.signal_prekey_bundles enable row level security;

-- Production policies, verbatim in meaning (including the un-wrapped auth.uid()).
create policy "Users can read own prekey bundles" on public.signal_prekey_bundles
  for select to authenticated
  using (auth.uid()::text = agent_id);

create policy "Users can insert own prekey bundles" on public.signal_prekey_bundles
  for insert to authenticated
  with check (auth.uid()::text = agent_id);

create policy "Users can update own prekey bundles" on public.signal_prekey_bundles
  for update to authenticated
  using (auth.uid()::text = agent_id)
  with check (auth.uid()::text = agent_id);

create policy "Users can delete own prekey bundles" on public.signal_prekey_bundles
  for delete to authenticated
  using (auth.uid()::text = agent_id);
