# shellcheck shell=bash
# ./x bench [name]: criterion benchmarks of the core (default) or a named benchmark.
#   community             criterion benchmarks of the community crypto
#   gateway               load on the gateway + WASM validation cost (scripts/bench_gateway.sh)
#   keyserver [scale...]  claim latency of the gated prekey function (scripts/bench_keyserver.sh)
#   native                one encrypt + decrypt through the C ABI with the encrypted SQLite
#                         store, against the in-memory core

# shellcheck source=scripts/bench_gateway.sh
source "$ROOT/scripts/bench_gateway.sh"

bench_main() {
  local name="${1:-core}"
  case "$name" in
    core) step "cargo bench (core)" cargo bench -p spots-signal --bench core ;;
    community) step "cargo bench (community)" cargo bench -p spots-signal --bench community ;;
    gateway) bench_gateway ;;
    keyserver)
      shift
      # shellcheck source=scripts/bench_keyserver.sh
      source "$ROOT/scripts/bench_keyserver.sh"
      bench_keyserver "$@"
      ;;
    native)
      step "native: C ABI + SQLite store vs in-memory core" env SPOTS_BENCH=1 cargo test --release \
        -p spots-signal-ffi --lib encrypt_decrypt_through_the_store_and_in_memory -- --nocapture
      ;;
    *) die "unknown benchmark: $name (core community gateway keyserver native)" ;;
  esac
}
