/**
 * Cleanup: delete expired bundles, consumed bundles past retention, expired envelopes
 * (acknowledged ones are deleted by the acknowledgement itself), old community events and stale
 * abuse state, in bounded batches; scheduled with pg_cron where the extension is installed.
 *
 * Every function takes p_now (default now()) so tests run them with frozen time; they are
 * executable by service_role only. Envelopes are deleted only after their expiry and are never
 * dropped earlier; caps (20261126100900) reject instead.
 */

/** Section - settings */

insert into keyserver.settings (key, value, description, client_visible) values
  ('prekey_consumed_retention', '"7 days"', 'Consumed (and replaced last-resort) bundles are deleted this long after consumption.', false),
  ('community_event_retention', '"30 days"', 'Community message events older than this are deleted.', false),
  ('rate_limit_idle_retention', '"1 day"', 'Drained rate-limit buckets idle this long are deleted (their denial counts with them).', false),
  ('last_resort_claim_retention', '"30 days"', 'Last-resort claim log entries older than this are deleted.', false),
  ('decrypt_report_retention', '"90 days"', 'Decrypt-failure reports older than this are deleted.', false),
  ('cleanup_batch_size', '10000', 'Most rows one cleanup function deletes per call.', false)
on conflict (key) do nothing;

/** Section - cleanup functions */

-- Unconsumed bundles past their expiry.
create or replace function keyserver.cleanup_expired_prekey_bundles(p_now timestamptz default now(), p_limit integer default null)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_deleted bigint;
begin
  delete from public.signal_prekey_bundles_v2 b
  where b.id in (select x.id from public.signal_prekey_bundles_v2 x
                 where not x.consumed and x.expires_at <= p_now
                 limit coalesce(p_limit, keyserver.setting_int('cleanup_batch_size')));
  get diagnostics v_deleted = row_count;
  return v_deleted;
end;
$$;
comment on function keyserver.cleanup_expired_prekey_bundles(timestamptz, integer) is
  'service_role: deletes up to p_limit unconsumed bundles with expires_at <= p_now; returns the count.';

-- Consumed bundles (and replaced last-resort bundles) past the retention window.
create or replace function keyserver.cleanup_consumed_prekey_bundles(p_now timestamptz default now(), p_limit integer default null)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_deleted bigint;
begin
  delete from public.signal_prekey_bundles_v2 b
  where b.id in (select x.id from public.signal_prekey_bundles_v2 x
                 where x.consumed and x.consumed_at < p_now - keyserver.setting_interval('prekey_consumed_retention')
                 limit coalesce(p_limit, keyserver.setting_int('cleanup_batch_size')));
  get diagnostics v_deleted = row_count;
  return v_deleted;
end;
$$;
comment on function keyserver.cleanup_consumed_prekey_bundles(timestamptz, integer) is
  'service_role: deletes up to p_limit bundles consumed before p_now - prekey_consumed_retention; returns the count.';

-- Envelopes past their expiry (acknowledged envelopes are already gone: ack deletes).
create or replace function keyserver.cleanup_dm_envelopes(p_now timestamptz default now(), p_limit integer default null)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_deleted bigint;
begin
  delete from public.dm_envelopes e
  where e.id in (select x.id from public.dm_envelopes x
                 where x.expires_at <= p_now
                 limit coalesce(p_limit, keyserver.setting_int('cleanup_batch_size')));
  get diagnostics v_deleted = row_count;
  return v_deleted;
end;
$$;
comment on function keyserver.cleanup_dm_envelopes(timestamptz, integer) is
  'service_role: deletes up to p_limit envelopes with expires_at <= p_now; returns the count.';

-- Community events past retention.
create or replace function keyserver.cleanup_community_events(p_now timestamptz default now(), p_limit integer default null)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_deleted bigint;
begin
  delete from public.community_message_events e
  where e.id in (select x.id from public.community_message_events x
                 where x.created_at < p_now - keyserver.setting_interval('community_event_retention')
                 limit coalesce(p_limit, keyserver.setting_int('cleanup_batch_size')));
  get diagnostics v_deleted = row_count;
  return v_deleted;
end;
$$;
comment on function keyserver.cleanup_community_events(timestamptz, integer) is
  'service_role: deletes up to p_limit community events created before p_now - community_event_retention; returns the count.';

-- Drained idle rate-limit buckets, expired unused invites, old claim logs and reports.
create or replace function keyserver.cleanup_abuse_state(p_now timestamptz default now(), p_limit integer default null)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_limit integer := coalesce(p_limit, keyserver.setting_int('cleanup_batch_size'));
  v_buckets bigint;
  v_invites bigint;
  v_claims bigint;
  v_reports bigint;
begin
  delete from keyserver.rate_limit_buckets b
  where b.key in (select x.key from keyserver.rate_limit_buckets x
                  where x.updated_at < p_now - keyserver.setting_interval('rate_limit_idle_retention')
                    and x.updated_at + x.refill_interval <= p_now
                  limit v_limit);
  get diagnostics v_buckets = row_count;
  delete from public.contact_invites i
  where i.id in (select x.id from public.contact_invites x
                 where x.used_at is null and x.expires_at <= p_now
                 limit v_limit);
  get diagnostics v_invites = row_count;
  delete from keyserver.last_resort_claims c
  where c.id in (select x.id from keyserver.last_resort_claims x
                 where x.claimed_at < p_now - keyserver.setting_interval('last_resort_claim_retention')
                 limit v_limit);
  get diagnostics v_claims = row_count;
  delete from public.decrypt_failure_reports r
  where r.id in (select x.id from public.decrypt_failure_reports x
                 where x.reported_at < p_now - keyserver.setting_interval('decrypt_report_retention')
                 limit v_limit);
  get diagnostics v_reports = row_count;
  return jsonb_build_object('rate_limit_buckets', v_buckets, 'contact_invites', v_invites,
                            'last_resort_claims', v_claims, 'decrypt_failure_reports', v_reports);
end;
$$;
comment on function keyserver.cleanup_abuse_state(timestamptz, integer) is
  'service_role: deletes drained rate-limit buckets idle past rate_limit_idle_retention, expired unused invites (used ones are contact facts and stay), and claim logs and decrypt reports past retention.';

-- Every cleanup, one batch each; what the pg_cron job runs.
create or replace function keyserver.run_cleanup(p_now timestamptz default now(), p_limit integer default null)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  return jsonb_build_object(
    'expired_prekey_bundles', keyserver.cleanup_expired_prekey_bundles(p_now, p_limit),
    'consumed_prekey_bundles', keyserver.cleanup_consumed_prekey_bundles(p_now, p_limit),
    'dm_envelopes', keyserver.cleanup_dm_envelopes(p_now, p_limit),
    'community_events', keyserver.cleanup_community_events(p_now, p_limit))
    || keyserver.cleanup_abuse_state(p_now, p_limit);
end;
$$;
comment on function keyserver.run_cleanup(timestamptz, integer) is
  'service_role and pg_cron: runs every cleanup once and returns the deleted counts.';

revoke all on function
  keyserver.cleanup_expired_prekey_bundles(timestamptz, integer),
  keyserver.cleanup_consumed_prekey_bundles(timestamptz, integer),
  keyserver.cleanup_dm_envelopes(timestamptz, integer),
  keyserver.cleanup_community_events(timestamptz, integer),
  keyserver.cleanup_abuse_state(timestamptz, integer),
  keyserver.run_cleanup(timestamptz, integer)
  from public, anon, authenticated;
grant execute on function
  keyserver.cleanup_expired_prekey_bundles(timestamptz, integer),
  keyserver.cleanup_consumed_prekey_bundles(timestamptz, integer),
  keyserver.cleanup_dm_envelopes(timestamptz, integer),
  keyserver.cleanup_community_events(timestamptz, integer),
  keyserver.cleanup_abuse_state(timestamptz, integer),
  keyserver.run_cleanup(timestamptz, integer)
  to service_role;

/** Section - schedule */

-- Every 10 minutes where pg_cron is installed (hosted: enable the extension in the dashboard).
do $$
begin
  if exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
    perform cron.schedule('keyserver-cleanup', '*/10 * * * *', 'select keyserver.run_cleanup()');
  end if;
end
$$;
