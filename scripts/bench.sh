# shellcheck shell=bash
# ./x bench [name]: criterion benchmarks of the core (default) or a named load benchmark.
#   keyserver [scale...]  claim latency of the gated prekey function (scripts/bench_keyserver.sh)

bench_main() {
  local name="${1:-core}"
  case "$name" in
    core) step "cargo bench" cargo bench --workspace ;;
    keyserver)
      shift
      # shellcheck source=scripts/bench_keyserver.sh
      source "$ROOT/scripts/bench_keyserver.sh"
      bench_keyserver "$@"
      ;;
    *) die "unknown benchmark: $name" ;;
  esac
}
