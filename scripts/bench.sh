# shellcheck shell=bash
# ./x bench [name]: criterion benchmarks of the core (default) or a named load benchmark.

bench_main() {
  local name="${1:-core}"
  case "$name" in
    core) step "cargo bench (core)" cargo bench -p spots-signal --bench core ;;
    *) die "unknown benchmark: $name" ;;
  esac
}
