/**
 * Monitoring: decrypt-failure reports written by clients, and views for operators.
 *
 * The views live in the private schema, are security_invoker and readable by service_role only
 * (the gateway's `ops` function exports them); none of them selects ciphertext, bundle contents
 * or message bodies.
 */

/** Section - settings */

insert into keyserver.settings (key, value, description, client_visible) values
  ('decrypt_report_rate_capacity', '60', 'Decrypt-failure reports one user may file per decrypt_report_rate_refill.', true),
  ('decrypt_report_rate_refill', '"1 hour"', 'Refill interval of the decrypt-failure report bucket.', true)
on conflict (key) do nothing;

/** Section - decrypt failure reports */

-- Counts of decryption failures one device saw in a time window (no message content).
create table if not exists public.decrypt_failure_reports (
  id bigint generated always as identity primary key,
  user_id uuid not null,
  agent_id text not null,
  device_id integer not null,
  message_kind text not null check (message_kind in ('dm', 'community')),
  failure_kind text not null check (failure_kind in (
    'no_session', 'invalid_message', 'invalid_key_id', 'duplicate_message', 'untrusted_identity',
    'invalid_signature', 'missing_sender_key', 'other')),
  failure_count integer not null check (failure_count between 1 and 100000),
  window_start timestamptz not null,
  window_end timestamptz not null,
  app_version text check (char_length(app_version) <= 64),
  reported_at timestamptz not null default now(),
  constraint decrypt_failure_reports_window
    check (window_end >= window_start and window_end - window_start <= interval '1 day'),
  constraint decrypt_failure_reports_device_fkey foreign key (user_id, agent_id, device_id)
    references public.agent_devices (user_id, agent_id, device_id) on delete cascade
);
comment on table public.decrypt_failure_reports is
  'Decryption failure counts per reporting device and time window (message kind, failure kind, count). Clients insert their own; read by their owner and by service_role.';
create index if not exists decrypt_failure_reports_device_idx
  on public.decrypt_failure_reports (user_id, agent_id, device_id);
create index if not exists decrypt_failure_reports_reported_idx on public.decrypt_failure_reports (reported_at);

-- Rate-limits reports per user (KS429) and stamps reported_at.
create or replace function keyserver.decrypt_failure_reports_before_insert()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_limit record;
begin
  new.reported_at := now();
  select * into v_limit from keyserver.consume_rate_limit(
    'decrypt_reports:' || new.user_id,
    keyserver.setting_int('decrypt_report_rate_capacity'),
    keyserver.setting_interval('decrypt_report_rate_refill'));
  if not v_limit.allowed then
    raise exception using errcode = 'KS429', message = 'rate_limited',
      detail = format('retry after %s seconds', v_limit.retry_after_seconds);
  end if;
  return new;
end;
$$;
comment on function keyserver.decrypt_failure_reports_before_insert() is
  'Before insert on decrypt_failure_reports: per-user leaky bucket (KS429 rate_limited), reported_at = now().';
revoke all on function keyserver.decrypt_failure_reports_before_insert() from public, anon, authenticated, service_role;

create trigger decrypt_failure_reports_before_insert
  before insert on public.decrypt_failure_reports
  for each row execute function keyserver.decrypt_failure_reports_before_insert();

alter table public.decrypt_failure_reports enable row level security;
revoke all on table public.decrypt_failure_reports from anon, authenticated;
grant select on table public.decrypt_failure_reports to authenticated;
grant insert (user_id, agent_id, device_id, message_kind, failure_kind, failure_count, window_start, window_end, app_version)
  on table public.decrypt_failure_reports to authenticated;

create policy decrypt_failure_reports_select_own on public.decrypt_failure_reports
  for select to authenticated
  using (user_id = (select auth.uid()));

create policy decrypt_failure_reports_insert_own on public.decrypt_failure_reports
  for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and exists (select 1 from public.agent_devices d
                where d.user_id = (select auth.uid())
                  and d.agent_id = decrypt_failure_reports.agent_id
                  and d.device_id = decrypt_failure_reports.device_id));

/** Section - views (service_role only, no ciphertext) */

-- Prekey stock per active agent device.
create or replace view keyserver.monitor_prekey_stock
with (security_invoker = true) as
select d.agent_id,
       d.device_id,
       count(*) filter (where b.kind = 'one_time' and not b.consumed and b.expires_at > now())::integer as one_time_remaining,
       bool_or(b.kind = 'last_resort' and not b.consumed and b.expires_at > now()) is true as last_resort_present,
       count(*) filter (where b.kind = 'one_time' and not b.consumed and b.expires_at > now())
         < keyserver.setting_int('prekey_low_stock_threshold') as low_stock,
       max(b.created_at) as last_published_at
from public.agent_devices d
left join public.signal_prekey_bundles_v2 b on b.agent_id = d.agent_id and b.device_id = d.device_id
where d.revoked_at is null
group by d.agent_id, d.device_id;
comment on view keyserver.monitor_prekey_stock is
  'Per active device: unconsumed unexpired one-time bundles, last-resort presence, low-stock flag, last publish time.';

-- Devices that can only hand out their last-resort bundle (or nothing at all).
create or replace view keyserver.monitor_devices_last_resort_only
with (security_invoker = true) as
select s.agent_id, s.device_id, s.last_resort_present, s.last_published_at
from keyserver.monitor_prekey_stock s
where s.one_time_remaining = 0;
comment on view keyserver.monitor_devices_last_resort_only is
  'Active devices with no one-time bundles left (last_resort_present false means nothing can be served).';

-- Last-resort hand-outs per device.
create or replace view keyserver.monitor_last_resort_claims
with (security_invoker = true) as
select c.agent_id,
       c.device_id,
       count(*) filter (where c.claimed_at > now() - interval '24 hours')::integer as claims_24h,
       count(*)::integer as claims_retained,
       max(c.claimed_at) as last_claimed_at
from keyserver.last_resort_claims c
group by c.agent_id, c.device_id;
comment on view keyserver.monitor_last_resort_claims is
  'Last-resort bundle hand-outs per device: in the last 24 hours, in the retained log, and the latest.';

-- Rate-limit denials per bucket family (the key up to its second colon).
create or replace view keyserver.monitor_rate_limit_denials
with (security_invoker = true) as
select split_part(b.key, ':', 1) || coalesce(nullif(':' || split_part(b.key, ':', 2), ':'), '') as bucket_family,
       count(*)::integer as buckets,
       coalesce(sum(b.denied_total), 0)::bigint as denied_total,
       count(*) filter (where b.last_denied_at > now() - interval '1 hour')::integer as buckets_denied_last_hour,
       max(b.last_denied_at) as last_denied_at
from keyserver.rate_limit_buckets b
group by 1;
comment on view keyserver.monitor_rate_limit_denials is
  'Rate-limit state per bucket family (e.g. prekey_fetch:pair): buckets, denials retained, buckets denied in the last hour, latest denial.';

-- Decrypt failures per hour, message kind and failure kind.
create or replace view keyserver.monitor_decrypt_failures
with (security_invoker = true) as
select date_trunc('hour', r.window_start) as hour,
       r.message_kind,
       r.failure_kind,
       count(*)::integer as reports,
       sum(r.failure_count)::bigint as failures,
       count(distinct (r.agent_id, r.device_id))::integer as reporting_devices
from public.decrypt_failure_reports r
group by 1, 2, 3;
comment on view keyserver.monitor_decrypt_failures is
  'Decrypt-failure reports aggregated per hour, message kind and failure kind.';

-- Legacy agents that V2 cannot serve yet (decides when to cut over to v2_only).
create or replace view keyserver.monitor_legacy_v1_only
with (security_invoker = true) as
select l.agent_id,
       exists (select 1 from public.agents a where a.agent_id = l.agent_id) as claimed,
       l.updated_at as v1_updated_at
from public.signal_prekey_bundles l
where not exists (select 1 from public.signal_prekey_bundles_v2 b
                  where b.agent_id = l.agent_id and not b.consumed and b.expires_at > now());
comment on view keyserver.monitor_legacy_v1_only is
  'Agents with a V1 bundle and no servable V2 bundle: those a v2_only cutover would leave unreachable.';

revoke all on table keyserver.monitor_prekey_stock, keyserver.monitor_devices_last_resort_only,
  keyserver.monitor_last_resort_claims, keyserver.monitor_rate_limit_denials, keyserver.monitor_decrypt_failures,
  keyserver.monitor_legacy_v1_only
  from public, anon, authenticated;
grant select on table keyserver.monitor_prekey_stock, keyserver.monitor_devices_last_resort_only,
  keyserver.monitor_last_resort_claims, keyserver.monitor_rate_limit_denials, keyserver.monitor_decrypt_failures,
  keyserver.monitor_legacy_v1_only
  to service_role;
