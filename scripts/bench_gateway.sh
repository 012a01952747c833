# shellcheck shell=bash
# ./x bench gateway: load on the local stack's gateway (loopback, bounded: SPOTS_BENCH_SECONDS
# per phase, default 20, 16 connections) and the WASM validation cost inside Deno. Brings the
# stack up if needed; the run raises rate limits and caps in keyserver.settings and restores
# them.

bench_gateway() {
  stack_up
  local deno
  deno="$(deno_bin)"
  eval "$(stack_env)"
  log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
  (
    cd "$ROOT/edge-functions"
    "$deno" run --frozen --allow-net=127.0.0.1 --allow-env --allow-read=.,.. \
      --allow-sys=hostname bench/gateway_load.ts
  )
}
