# shellcheck shell=bash
# ./x bench [name]: criterion benchmarks of the core (default) or a named load benchmark
# (gateway: scripts/bench_gateway.sh).

# shellcheck source=scripts/bench_gateway.sh
source "$ROOT/scripts/bench_gateway.sh"

bench_main() {
  local name="${1:-core}"
  case "$name" in
    core) step "cargo bench (core)" cargo bench -p spots-signal --bench core ;;
    gateway) bench_gateway ;;
    community) step "cargo bench (community)" cargo bench -p spots-signal --bench community ;;
    *) die "unknown benchmark: $name" ;;
  esac
}
