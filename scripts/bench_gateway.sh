# shellcheck shell=bash
# ./x bench gateway: load on the local stack's gateway (loopback, bounded: SPOTS_BENCH_SECONDS
# per phase, default 20, 16 connections; SPOTS_BENCH_PHASES=fetch or send for one phase) and the
# WASM validation cost inside Deno, with the CPU time of Postgres, the gateway and the load
# generator per request. Brings the stack up if needed; the run raises rate limits and caps in
# keyserver.settings and restores them.

bench_gateway() {
  stack_up
  local deno
  deno="$(deno_bin)"
  eval "$(stack_env)"
  log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
  stack_paths
  (
    cd "$ROOT/edge-functions"
    # The processes whose CPU time the load script reports per request.
    SPOTS_BENCH_PG_PID="$(head -1 "$PGDATA/postmaster.pid")" \
      SPOTS_BENCH_GATEWAY_PID="$(cat "$GATEWAY_PID_FILE")" \
      "$deno" run --frozen --allow-net=127.0.0.1 --allow-env --allow-read=.,.. \
      --allow-run="$ROOT/scripts/cpu_ticks.sh" --allow-sys=hostname bench/gateway_load.ts
  )
  log "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
}
