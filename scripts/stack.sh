# shellcheck shell=bash
# The local Supabase-compatible stack: a throwaway Postgres 15 cluster with the Supabase
# compatibility bootstrap, every migration, the seed, and the Deno gateway serving every
# edge function under /functions/v1/<name>. One stack per clone, on loopback.

PG_BIN=/usr/lib/postgresql/15/bin
PG_OS_USER=postgres
PG_PORT="${SPOTS_PG_PORT:-$((55000 + CLONE_NUM))}"
GATEWAY_PORT="${SPOTS_GATEWAY_PORT:-$((56000 + CLONE_NUM))}"
DB_NAME=postgres

stack_packages() {
  ensure_apt postgresql-15 postgresql-client-15 postgresql-15-pgtap \
    libtap-parser-sourcehandler-pgtap-perl postgresql-15-cron postgresql-15-plpgsql-check
}

# The cluster must live where the Postgres OS user can enter. A cache under a private home
# (root's is mode 700) is not reachable, so the cluster then lives under /var/tmp with a link
# from the cache.
stack_dir() {
  local in_cache="$SPOTS_CACHE/stack/$CLONE_ID"
  if [[ -L "$in_cache" || -d "$in_cache" ]]; then
    readlink -f "$in_cache"
    return
  fi
  mkdir -p "$SPOTS_CACHE/stack"
  if runuser -u "$PG_OS_USER" -- test -x "$SPOTS_CACHE/stack" 2>/dev/null; then
    mkdir -p "$in_cache"
  else
    local outside
    outside="/var/tmp/spots-signal-stack/$(printf '%s' "$SPOTS_CACHE" | sha256sum | cut -c1-8)-$CLONE_ID"
    mkdir -p "$outside"
    ln -sfn "$outside" "$in_cache"
  fi
  readlink -f "$in_cache"
}

STACK_DIR=""
stack_paths() {
  [[ -n "$STACK_DIR" ]] && return
  STACK_DIR="$(stack_dir)"
  PGDATA="$STACK_DIR/pgdata"
  PG_SOCKET_DIR="$STACK_DIR/run"
  PG_LOG_DIR="$STACK_DIR/log"
  SECRETS_FILE="$STACK_DIR/secrets.env"
  GATEWAY_PID_FILE="$STACK_DIR/gateway.pid"
  GATEWAY_LOG="$STACK_DIR/gateway.log"
}

ensure_pg_user() {
  id "$PG_OS_USER" >/dev/null 2>&1 && return
  as_root useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin "$PG_OS_USER"
}

random_token() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40; }

# Per-cluster secrets: superuser and authenticator passwords and the JWT secret.
load_secrets() {
  stack_paths
  if [[ ! -f "$SECRETS_FILE" ]]; then
    umask 077
    {
      echo "PG_SUPERUSER_PASSWORD=$(random_token)"
      echo "AUTHENTICATOR_PASSWORD=$(random_token)"
      echo "JWT_SECRET=$(random_token)$(random_token)"
    } >"$SECRETS_FILE"
    umask 022
  fi
  # shellcheck disable=SC1090
  source "$SECRETS_FILE"
  DATABASE_URL="postgresql://postgres:$PG_SUPERUSER_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME?sslmode=disable"
  AUTHENTICATOR_DATABASE_URL="postgresql://authenticator:$AUTHENTICATOR_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME?sslmode=disable"
  GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
}

pg_running() {
  stack_paths
  [[ -f "$PGDATA/postmaster.pid" ]] && runuser -u "$PG_OS_USER" -- "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

pg_init() {
  stack_paths
  load_secrets
  local pwfile
  install -d -o "$PG_OS_USER" -m 700 "$PGDATA" "$PG_SOCKET_DIR"
  pwfile="$(mktemp)"
  printf '%s\n' "$PG_SUPERUSER_PASSWORD" >"$pwfile"
  chown "$PG_OS_USER" "$pwfile"
  quiet runuser -u "$PG_OS_USER" -- "$PG_BIN/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" \
    --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
  rm -f "$pwfile"
  local cron_conf=""
  if [[ -f /usr/lib/postgresql/15/lib/pg_cron.so ]]; then
    cron_conf="shared_preload_libraries = 'pg_cron'
cron.database_name = '$DB_NAME'
cron.use_background_workers = on
max_worker_processes = 16"
  fi
  cat >>"$PGDATA/postgresql.conf" <<CONF
# spots-signal local stack (throwaway test cluster)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKET_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 256MB
log_min_messages = warning
$cron_conf
CONF
}

pg_start() {
  stack_paths
  install -d -o "$PG_OS_USER" -m 755 "$PG_LOG_DIR"
  quiet runuser -u "$PG_OS_USER" -- "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PG_LOG_DIR/postgres.log" -w -t 60 start
}

psql_super() { PGCONNECT_TIMEOUT=5 psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }

db_bootstrapped() {
  [[ "$(psql_super -tAc "select to_regnamespace('supabase_migrations') is not null")" == "t" ]]
}

bootstrap_db() {
  psql_super -v authenticator_password="$AUTHENTICATOR_PASSWORD" \
    -f "$ROOT/tests/stack/supabase_compat.sql" >/dev/null
}

# Applies every migration not yet recorded, each in one transaction with its bookkeeping row
# (the table the Supabase CLI uses, so `supabase migration list` agrees).
apply_migrations() {
  local file base version name applied count=0
  applied="$(psql_super -tAc "select version from supabase_migrations.schema_migrations")"
  for file in "$ROOT"/supabase/migrations/*.sql; do
    [[ -e "$file" ]] || continue
    base="$(basename "$file" .sql)"
    version="${base%%_*}"
    name="${base#*_}"
    [[ "$version" =~ ^[0-9]{14}$ ]] || die "migration $base is not named <YYYYMMDDHHMMSS>_<name>.sql"
    grep -qx "$version" <<<"$applied" && continue
    psql_super -1 -f "$file" \
      -c "insert into supabase_migrations.schema_migrations(version, name) values ('$version', '$name')" \
      >/dev/null || die "migration $base failed"
    count=$((count + 1))
  done
  log "migrations: $count applied"
}

apply_seed() {
  [[ -f "$ROOT/supabase/seed.sql" ]] && psql_super -f "$ROOT/supabase/seed.sql" >/dev/null
  return 0
}

gateway_running() {
  stack_paths
  [[ -f "$GATEWAY_PID_FILE" ]] && kill -0 "$(cat "$GATEWAY_PID_FILE")" 2>/dev/null
}

gateway_env() {
  load_secrets
  printf '%s\n' \
    "SUPABASE_DB_URL=$AUTHENTICATOR_DATABASE_URL" \
    "SPOTS_JWT_SECRET=$JWT_SECRET" \
    "SPOTS_GATEWAY_PORT=$GATEWAY_PORT"
}

gateway_start() {
  stack_paths
  local deno
  deno="$(deno_bin)"
  [[ -f "$ROOT/edge-functions/_shared/wasm/spots_crypto_wasm.js" ]] || wasm_build
  (
    cd "$ROOT/edge-functions"
    step "deno install (gateway dependencies)" quiet "$deno" install --frozen
  )
  local env_args=()
  mapfile -t env_args < <(gateway_env)
  # Semi-spaces of up to 32 MB per isolate: V8 scavenges a fetch's short-lived objects less
  # often, about 8% less gateway CPU per fetch in interleaved runs (BENCHMARKS.md, Gateway).
  (
    cd "$ROOT/edge-functions"
    exec env "${env_args[@]}" "$deno" run --frozen --allow-net=127.0.0.1 --allow-env \
      --allow-read=. --allow-sys=hostname --unstable-net --v8-flags=--max-semi-space-size=32 \
      _local/gateway.ts
  ) >"$GATEWAY_LOG" 2>&1 &
  echo $! >"$GATEWAY_PID_FILE"
  local i
  for i in $(seq 1 100); do
    # Up once every worker listens (one answering the probe is not enough).
    if grep -q '^gateway listening' "$GATEWAY_LOG" &&
      curl -fsS "$GATEWAY_URL/functions/v1/health" >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$(cat "$GATEWAY_PID_FILE")" 2>/dev/null || break
    sleep 0.2
  done
  cat "$GATEWAY_LOG" >&2
  die "gateway did not become healthy"
}

gateway_stop() {
  stack_paths
  if gateway_running; then
    kill "$(cat "$GATEWAY_PID_FILE")" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do gateway_running || break; sleep 0.1; done
    # Its workers listen with SO_REUSEPORT, so a gateway left running would share the port
    # with the next one instead of making it fail.
    if gateway_running; then
      kill -9 "$(cat "$GATEWAY_PID_FILE")" 2>/dev/null || true
      for i in $(seq 1 50); do gateway_running || break; sleep 0.1; done
    fi
  fi
  rm -f "$GATEWAY_PID_FILE"
}

stack_up() {
  stack_packages
  ensure_pg_user
  stack_paths
  load_secrets
  [[ -f "$PGDATA/PG_VERSION" ]] || step "initdb (port $PG_PORT)" pg_init
  pg_running || step "start postgres" pg_start
  db_bootstrapped || step "supabase compatibility bootstrap" bootstrap_db
  step "migrations" apply_migrations
  apply_seed
  gateway_running || step "start gateway on $GATEWAY_URL" gateway_start
  log "stack up: postgres 127.0.0.1:$PG_PORT, gateway $GATEWAY_URL"
}

stack_down() {
  stack_paths
  gateway_stop
  if pg_running; then
    quiet runuser -u "$PG_OS_USER" -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop
  fi
  log "stack down"
}

# Throws the cluster away and starts from nothing (tests always begin here).
stack_reset() {
  stack_down
  stack_paths
  rm -rf "$PGDATA" "$PG_SOCKET_DIR" "$SECRETS_FILE"
  stack_up
}

stack_status() {
  stack_paths
  load_secrets
  if pg_running; then echo "postgres: running on 127.0.0.1:$PG_PORT ($PGDATA)"; else echo "postgres: stopped"; fi
  if gateway_running; then echo "gateway: running at $GATEWAY_URL (pid $(cat "$GATEWAY_PID_FILE"))"; else echo "gateway: stopped"; fi
}

# HS256 JWT signed with the stack's secret, as local Supabase issues them.
make_jwt() {
  local claims="$1"
  python3 - "$JWT_SECRET" "$claims" <<'PY'
import base64, hashlib, hmac, json, sys
def b64(data): return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
secret, claims = sys.argv[1].encode(), json.loads(sys.argv[2])
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
payload = b64(json.dumps(claims, separators=(",", ":")).encode())
signature = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
print(f"{header}.{payload}.{signature}")
PY
}

DEMO_USER_ID="00000000-0000-4000-8000-00000000d3e0"

stack_env() {
  load_secrets
  local now exp
  now=$(date +%s)
  exp=$((now + 10 * 365 * 24 * 3600))
  cat <<ENV
export DATABASE_URL='$DATABASE_URL'
export AUTHENTICATOR_DATABASE_URL='$AUTHENTICATOR_DATABASE_URL'
export GATEWAY_URL='$GATEWAY_URL'
export JWT_SECRET='$JWT_SECRET'
export ANON_KEY='$(make_jwt "{\"iss\":\"supabase-demo\",\"role\":\"anon\",\"iat\":$now,\"exp\":$exp}")'
export SERVICE_ROLE_KEY='$(make_jwt "{\"iss\":\"supabase-demo\",\"role\":\"service_role\",\"iat\":$now,\"exp\":$exp}")'
export DEMO_USER_JWT='$(make_jwt "{\"iss\":\"supabase-demo\",\"aud\":\"authenticated\",\"role\":\"authenticated\",\"sub\":\"$DEMO_USER_ID\",\"iat\":$now,\"exp\":$((now + 24 * 3600))}")'
ENV
}

stack_psql() {
  load_secrets
  exec psql "$DATABASE_URL" "$@"
}
