# shellcheck shell=bash
# Key server database checks for ./x test pgtap and ./x bench keyserver: scratch databases in the
# local stack's cluster (bootstrapped like the main one), the staged upgrade test (baseline ->
# production-like data -> every later migration, V1 retirement last) and the Supabase advisors.
# Needs scripts/stack.sh (load_secrets, psql_super) and a running stack.

KS_MIGRATIONS_DIR="$ROOT/supabase/migrations"
KS_UPGRADE_DIR="$ROOT/supabase/tests/upgrade"

ks_db_url() { printf 'postgresql://postgres:%s@127.0.0.1:%s/%s?sslmode=disable' "$PG_SUPERUSER_PASSWORD" "$PG_PORT" "$1"; }

# ks_psql db args...: psql as superuser on one database of the stack's cluster.
ks_psql() {
  local db="$1"; shift
  PGCONNECT_TIMEOUT=5 psql "$(ks_db_url "$db")" -X -q -v ON_ERROR_STOP=1 "$@"
}

# ks_scratch_db name: (re)creates a database prepared by the Supabase compatibility bootstrap.
ks_scratch_db() {
  local db="$1"
  load_secrets
  PGOPTIONS="-c client_min_messages=warning" psql_super -c "drop database if exists \"$db\" with (force)" \
    -c "create database \"$db\"" >/dev/null
  PGOPTIONS="-c client_min_messages=warning" ks_psql "$db" -v authenticator_password="$AUTHENTICATOR_PASSWORD" -f "$ROOT/tests/stack/supabase_compat.sql" >/dev/null
  psql_super -c "alter database \"$db\" set search_path = \"\$user\", public, extensions" >/dev/null
}

ks_drop_db() { PGOPTIONS="-c client_min_messages=warning" psql_super -c "drop database if exists \"$1\" with (force)" >/dev/null; }

# ks_apply_migration db file: one migration in one transaction with its bookkeeping row, as the
# stack (and the Supabase CLI) apply it. Prints psql's errors and fails when it fails.
ks_apply_migration() {
  local db="$1" file="$2" base
  base="$(basename "$file" .sql)"
  ks_psql "$db" -1 -f "$file" \
    -c "insert into supabase_migrations.schema_migrations(version, name) values ('${base%%_*}', '${base#*_}')" >/dev/null
}

ks_migrations() { find "$KS_MIGRATIONS_DIR" -maxdepth 1 -name '*.sql' | sort; }

# ks_prove db out files...: pg_prove on one database, appending the verbose TAP to out.
ks_prove() {
  local db="$1" out="$2"; shift 2
  PGHOST=127.0.0.1 PGPORT="$PG_PORT" PGUSER=postgres PGPASSWORD="$PG_SUPERUSER_PASSWORD" PGDATABASE="$db" \
    pg_prove --verbose "$@" >>"$out" 2>&1 || true
}

# ks_tap out ok|not description: appends one TAP result line (counted like pg_prove's).
ks_tap() {
  local out="$1" result="$2" what="$3"
  if [[ $result == ok ]]; then echo "ok 1 - $what" >>"$out"; else echo "not ok 1 - $what" >>"$out"; fi
}

# The upgrade path, on a scratch database: the baseline migrations, production-like data, every
# later migration up to the V1 retirement, the stage-1 tests; then the retirement must refuse to
# run while dual_read is on; after the cutover it applies; then the stage-2 tests.
keyserver_upgrade_test() {
  local out="$1" db="spots_upgrade" file err retire="" applied=0 migrations=()
  mapfile -t migrations < <(ks_migrations)
  ks_scratch_db "$db"
  for file in "${migrations[@]}"; do
    [[ $(basename "$file") == *_baseline_* ]] || continue
    ks_apply_migration "$db" "$file" || { ks_tap "$out" not "upgrade: baseline $(basename "$file") applies"; return 0; }
  done
  ks_psql "$db" -f "$KS_UPGRADE_DIR/fixture_production.sql" >/dev/null
  for file in "${migrations[@]}"; do
    [[ $(basename "$file") == *_baseline_* ]] && continue
    if [[ $(basename "$file") == *_retire_prekeys_v1.sql ]]; then retire="$file"; break; fi
    if ks_apply_migration "$db" "$file"; then applied=$((applied + 1)); else
      ks_tap "$out" not "upgrade: $(basename "$file") applies to production data"; return 0
    fi
  done
  ks_tap "$out" ok "upgrade: $applied migrations apply to the baseline with production data"
  [[ -n $retire ]] || { ks_tap "$out" not "upgrade: a *_retire_prekeys_v1.sql migration exists"; return 0; }
  ks_prove "$db" "$out" "$KS_UPGRADE_DIR"/10-*.test.sql

  if err="$(ks_apply_migration "$db" "$retire" 2>&1)"; then
    ks_tap "$out" not "upgrade: the V1 retirement refuses to run while legacy rows exist and prekey_read_mode is dual_read"
  elif grep -q 'refusing to retire' <<<"$err"; then
    ks_tap "$out" ok "upgrade: the V1 retirement refuses to run while legacy rows exist and prekey_read_mode is dual_read"
  else
    printf '%s\n' "$err" >>"$out"
    ks_tap "$out" not "upgrade: the V1 retirement fails only with its guard"
  fi
  ks_psql "$db" -c "update keyserver.settings set value = '\"v2_only\"' where key = 'prekey_read_mode'" >/dev/null
  local after=0 ok=1
  for file in "${migrations[@]}"; do
    [[ $file < $retire ]] && continue
    if ks_apply_migration "$db" "$file"; then after=$((after + 1)); else ok=0; break; fi
  done
  if ((ok)); then
    ks_tap "$out" ok "upgrade: after the cutover the retirement (and $((after - 1)) later migrations) apply with legacy rows present"
  else
    ks_tap "$out" not "upgrade: after the cutover $(basename "$file") applies"
  fi
  ks_prove "$db" "$out" "$KS_UPGRADE_DIR"/20-*.test.sql
  ks_drop_db "$db"
}

# The Supabase CLI's advisors (`supabase db advisors`, Docker-free with --db-url) on the main
# database: no security finding at any level, no performance finding at WARN or above
# (INFO-level performance notes such as "unused index" are expected on a fresh database).
keyserver_advisors() {
  local prefix json
  prefix="$(ensure_npm_tool supabase "$SUPABASE_CLI_VERSION")"
  load_secrets
  json="$("$prefix/node_modules/.bin/supabase" db advisors --db-url "$DATABASE_URL" --type all --level info \
          --output-format json 2>/dev/null)" || { echo "supabase db advisors failed" >&2; return 1; }
  python3 - "$json" <<'PY'
import json, sys
results = json.loads(sys.argv[1]).get("results") or []
bad = [r for r in results
       if "SECURITY" in r.get("categories", []) or r.get("level") in ("WARN", "ERROR")]
for r in bad:
    print(f"  {r['level']} {'/'.join(r.get('categories', []))} {r['name']}: {r['detail']}", file=sys.stderr)
info = len(results) - len(bad)
print(f"    advisors: {len(bad)} security or warning findings, {info} informational performance notes", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}
