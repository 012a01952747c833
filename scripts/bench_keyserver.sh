# shellcheck shell=bash
# ./x bench keyserver [scale...]: claim latency of keyserver.get_prekey_bundle_for_contact_v1.
#
# For each scale s (default: 1 then 10) a scratch database in the local stack's cluster gets every
# migration and s x 100k agents x 2 devices x 50 one-time bundles (+ a last-resort bundle per
# device), users grouped 100 per community so every caller is eligible for its target. Then
# pgbench runs 16 concurrent clients for KS_BENCH_SECONDS (default 30) seconds, each transaction
# exactly what the gateway does: connect as authenticator, set role service_role and claims,
# call the gated function for a random target device, commit. Prints latency percentiles from
# pgbench's per-transaction log, throughput, table sizes, and EXPLAIN (ANALYZE, BUFFERS) of the
# claim statement. Bundle payloads are tiny synthetic JSON ({"k": key id}) so that the 10x data
# set (100M rows) fits a small disk: the claim path's cost is index descent, row locking and the
# update of the row and its index entries, not payload bytes (a real ~2 KB PQXDH bundle would be
# TOASTed and add one more fetch per claim, the same at every scale). Loading skips triggers (session_replication_role = replica, superuser
# only; the rows are generated consistent) and rebuilds the bundle table's indexes and
# constraints after loading it (see ks_bench_load).
#
# Environment: KS_BENCH_SECONDS (30), KS_BENCH_CLIENTS (16), KS_BENCH_KEEP=1 keeps the database.

KS_BENCH_DB="spots_bench"

# ks_bench_load_bundles db from to: one loader's share of the bundle rows, in agent order.
ks_bench_load_bundles() {
  local db="$1" from="$2" to="$3" chunk=50000 upto
  while ((from < to)); do
    upto=$((from + chunk < to ? from + chunk : to))
    ks_psql "$db" <<SQL || return 1
set session_replication_role = replica;
insert into public.signal_prekey_bundles_v2 (user_id, agent_id, device_id, key_id, kind, bundle_json, created_at, expires_at)
with ag as materialized (
  select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid as u, 'agent-' || lpad(i::text, 8, '0') as a
  from generate_series($from, $upto - 1) i),
b as materialized (
  select k, case when k = 0 then 'last_resort' else 'one_time' end as kind,
         ('{"k": ' || k || '}')::jsonb as j,
         now() + case when k = 0 then interval '180 days' else interval '90 days' end as e
  from generate_series(0, 50) k)
select ag.u, ag.a, d, b.k, b.kind, b.j, now(), b.e from ag, generate_series(1, 2) d, b;
SQL
    from=$upto
  done
}

# ks_bench_load db agents: generates the data set. The bundle table is loaded without its
# indexes and constraints by two parallel loaders; then they are rebuilt exactly as the
# migrations define them (foreign keys validated): the same schema, built much faster.
ks_bench_load() {
  local db="$1" agents="$2"
  step "users, agents, devices, communities" ks_bench_load_base "$db" "$agents"
  step "bundle rows (two loaders, no indexes)" ks_bench_load_bundle_rows "$db" "$agents"
  step "rebuild indexes and constraints, analyze" ks_bench_rebuild "$db"
}

ks_bench_load_base() {
  local db="$1" agents="$2"
  ks_psql "$db" <<SQL
set session_replication_role = replica;
insert into auth.users (id, email, aud, role)
select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'bench' || i || '@bench.local', 'authenticated', 'authenticated'
from generate_series(0, $agents - 1) i;
insert into public.agents (agent_id, user_id)
select 'agent-' || lpad(i::text, 8, '0'), ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid
from generate_series(0, $agents - 1) i;
insert into public.agent_devices (agent_id, device_id, user_id, registration_id, identity_key)
select 'agent-' || lpad(i::text, 8, '0'), d, ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
       1 + (i * 2 + d) % 16380, '\\x05'::bytea || sha256(int8send(i))
from generate_series(0, $agents - 1) i, generate_series(1, 2) d;
insert into public.communities (id, name, created_by)
select ('00000000-0000-4000-9000-' || lpad(to_hex(g), 12, '0'))::uuid, 'bench ' || g, null
from generate_series(0, ($agents - 1) / 100) g;
insert into public.community_sender_key_state (community_id, key_id, rotation_kind)
select ('00000000-0000-4000-9000-' || lpad(to_hex(g), 12, '0'))::uuid, 1, 'initial'
from generate_series(0, ($agents - 1) / 100) g;
insert into public.community_members (community_id, user_id, joined_at)
select ('00000000-0000-4000-9000-' || lpad(to_hex(i / 100), 12, '0'))::uuid,
       ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, now() - interval '1 day'
from generate_series(0, $agents - 1) i;
SQL
}

ks_bench_load_bundle_rows() {
  local db="$1" agents="$2"
  local table="'public.signal_prekey_bundles_v2'::regclass" constraints indexes drops
  constraints="$(ks_psql "$db" -At -c "select format('alter table public.signal_prekey_bundles_v2 add constraint %I %s;', conname,
      pg_get_constraintdef(oid)) from pg_constraint where conrelid = $table and contype in ('p', 'u', 'f')
      order by case contype when 'p' then 1 when 'u' then 2 else 3 end")"
  indexes="$(ks_psql "$db" -At -c "select indexdef || ';' from pg_indexes where schemaname = 'public'
      and tablename = 'signal_prekey_bundles_v2'
      and not exists (select 1 from pg_constraint c where c.conindid = format('%I.%I', schemaname, indexname)::regclass)")"
  drops="$(ks_psql "$db" -At -c "(select format('alter table public.signal_prekey_bundles_v2 drop constraint %I;', conname)
      from pg_constraint where conrelid = $table and contype in ('p', 'u', 'f') order by case contype when 'f' then 1 when 'u' then 2 else 3 end)
      union all
      (select format('drop index public.%I;', indexname) from pg_indexes where schemaname = 'public' and tablename = 'signal_prekey_bundles_v2'
        and not exists (select 1 from pg_constraint c where c.conindid = format('%I.%I', schemaname, indexname)::regclass))")"
  ks_psql "$db" -c "$drops" >/dev/null

  local half=$((agents / 2)) pids=() pid ok=1
  ks_bench_load_bundles "$db" 0 "$half" & pids+=($!)
  ks_bench_load_bundles "$db" "$half" "$agents" & pids+=($!)
  for pid in "${pids[@]}"; do wait "$pid" || ok=0; done
  ((ok)) || die "loading bundles failed"
  KS_BENCH_REBUILD="$constraints
$indexes"
}

ks_bench_rebuild() {
  local db="$1"
  ks_psql "$db" <<SQL >/dev/null
set maintenance_work_mem = '4GB';
set max_parallel_maintenance_workers = 2;
$KS_BENCH_REBUILD
SQL
  ks_psql "$db" -c "analyze" >/dev/null
  ks_psql "$db" -c "checkpoint" >/dev/null
}

# ks_bench_percentiles log files...: p50 p90 p99 max (ms) and count from pgbench transaction logs.
ks_bench_percentiles() {
  python3 - "$@" <<'PY'
import sys
lat = []
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                lat.append(int(parts[2]) / 1000.0)
lat.sort()
def p(q):
    return lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"{p(0.50):.2f} {p(0.90):.2f} {p(0.99):.2f} {lat[-1]:.2f} {len(lat)}")
PY
}

# ks_bench_run dir clients seconds: pgbench with dir/script.sql as authenticator; prints
# "p50 p90 p99 max count tps failed" (latencies in ms).
ks_bench_run() {
  local dir="$1" clients="$2" seconds="$3" out pct tps failed
  out="$dir/pgbench-$clients.out"
  rm -f "$dir"/tx.*
  step "pgbench: $clients client(s) x ${seconds}s of gated claims" bash -c '
    cd "$1" && PGPASSWORD="$2" pgbench -h 127.0.0.1 -p "$3" -U authenticator -n -M prepared -c "$4" -j "$5" -T "$6" \
      --log --log-prefix=tx -f script.sql "$7" >"$8" 2>&1' _ \
    "$dir" "$AUTHENTICATOR_PASSWORD" "$PG_PORT" "$clients" "$((clients < 2 ? 1 : 2))" "$seconds" "$KS_BENCH_DB" "$out" \
    || { cat "$out" >&2; return 1; }
  pct="$(ks_bench_percentiles "$dir"/tx.*)" || { cat "$out" >&2; return 1; }
  tps="$(sed -n 's/^tps = \([0-9]*\).*/\1/p' "$out" | head -1)"
  failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")"
  printf '%s %s %s\n' "$pct" "$tps" "${failed:-0}"
}

ks_bench_scale() {
  local scale="$1" agents seconds="${KS_BENCH_SECONDS:-30}" clients="${KS_BENCH_CLIENTS:-16}"
  local dir start end script
  agents=$((scale * 100000))
  dir="$(mktemp -d)"
  log "key server benchmark: scale ${scale}x ($agents agents x 2 devices x 50 one-time bundles)"
  step "scratch database $KS_BENCH_DB with every migration" ks_bench_prepare_db
  start=$(date +%s)
  ks_bench_load "$KS_BENCH_DB" "$agents"
  end=$(date +%s)
  local load_seconds=$((end - start))
  local sizes rows
  rows="$(ks_psql "$KS_BENCH_DB" -At -c "select count(*) from public.signal_prekey_bundles_v2")"
  sizes="$(ks_psql "$KS_BENCH_DB" -At -F '|' -c "select pg_size_pretty(pg_table_size('public.signal_prekey_bundles_v2')),
    pg_size_pretty(pg_indexes_size('public.signal_prekey_bundles_v2')), pg_size_pretty(pg_database_size(current_database()))")"

  # The claim statement exactly as keyserver.claim_prekey_bundles runs it, for one device.
  local explain
  explain="$(ks_psql "$KS_BENCH_DB" -At <<'SQL'
begin;
explain (analyze, buffers, costs off, timing on, summary off)
update public.signal_prekey_bundles_v2 b
set consumed = true, consumed_at = now()
where b.id = (
  select c.id from public.signal_prekey_bundles_v2 c
  where c.agent_id = 'agent-00004242' and c.device_id = 1 and c.consumed = false
    and c.expires_at > now() and c.kind = 'one_time'
  order by c.expires_at
  limit 1
  for update skip locked);
rollback;
SQL
)"

  cat >"$dir/script.sql" <<SQL
\\set t random(0, $((agents - 1)))
\\set c (:t / 100) * 100 + ((:t + 1) % 100)
\\set d random(1, 2)
begin;
select set_config('role', 'service_role', true), set_config('request.jwt.claims', '{"role": "service_role"}', true);
select keyserver.get_prekey_bundle_for_contact_v1(('00000000-0000-4000-8000-' || lpad(to_hex((:c)::bigint), 12, '0'))::uuid, 'agent-' || lpad((:c)::bigint::text, 8, '0'), 'agent-' || lpad((:t)::bigint::text, 8, '0'), (:d)::integer);
commit;
SQL
  local busy single consumed last_resort
  busy="$(ks_bench_run "$dir" "$clients" "$seconds")" || return 1
  single="$(ks_bench_run "$dir" 1 10)" || return 1
  consumed="$(ks_psql "$KS_BENCH_DB" -At -c "select count(*) from public.signal_prekey_bundles_v2 where consumed")"
  last_resort="$(ks_psql "$KS_BENCH_DB" -At -c "select count(*) from keyserver.last_resort_claims")"
  local p50 p90 p99 pmax count tps failed s50 s90 s99 smax scount stps sfailed
  read -r p50 p90 p99 pmax count tps failed <<<"$busy"
  read -r s50 s90 s99 smax scount stps sfailed <<<"$single"
  cat <<REPORT

### Scale ${scale}x: $agents agents, $rows bundle rows
- load ${load_seconds}s; bundle table heap $(cut -d'|' -f1 <<<"$sizes"), its indexes $(cut -d'|' -f2 <<<"$sizes"), database $(cut -d'|' -f3 <<<"$sizes")
- $clients clients, ${seconds}s: $count claims, $tps tps, $failed failed; latency per gateway transaction (ms): **p50 $p50, p90 $p90, p99 $p99**, max $pmax
- 1 client, 10s (service time without queueing): $scount claims, $stps tps, $sfailed failed; p50 $s50, p90 $s90, p99 $s99, max $smax
- afterwards: $consumed one-time bundles consumed, $last_resort last-resort hand-outs
- EXPLAIN (ANALYZE, BUFFERS) of the claim statement (the UPDATE in keyserver.claim_prekey_bundles):

\`\`\`
$explain
\`\`\`
REPORT
  rm -rf "$dir"
  [[ ${KS_BENCH_KEEP:-0} == 1 ]] || ks_drop_db "$KS_BENCH_DB"
}

ks_bench_prepare_db() {
  local file
  ks_scratch_db "$KS_BENCH_DB"
  while read -r file; do ks_apply_migration "$KS_BENCH_DB" "$file"; done < <(ks_migrations)
}

bench_keyserver() {
  # shellcheck source=scripts/keyserver_db.sh
  source "$ROOT/scripts/keyserver_db.sh"
  stack_packages
  pg_running || stack_up
  load_secrets
  local scales=("$@")
  ((${#scales[@]})) || scales=(1 10)
  printf '## Key server: claim latency (%s)\n' "$(date -u +%Y-%m-%d)"
  printf -- '- machine: %s, %s vCPU, %s RAM; PostgreSQL %s (local stack: shared_buffers %s, fsync off)\n' \
    "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)" "$(free -h | awk '/^Mem:/ {print $2}')" \
    "$(ks_psql postgres -At -c 'show server_version')" "$(ks_psql postgres -At -c 'show shared_buffers')"
  printf -- '- command: ./x bench keyserver %s\n' "${scales[*]}"
  local s
  for s in "${scales[@]}"; do
    [[ $s =~ ^[0-9]+$ ]] || die "scale must be a whole number (1 = 100k agents)"
    ks_bench_scale "$s"
  done
}
