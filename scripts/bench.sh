# shellcheck shell=bash
# ./x bench [name]: criterion benchmarks of the core (default) or a named benchmark.
#   native: one encrypt + decrypt through the C ABI with the encrypted SQLite store, against
#           the in-memory core (release build; criterion, run as an ignored test).

bench_main() {
  local name="${1:-core}"
  case "$name" in
    core) step "cargo bench (core)" cargo bench -p spots-signal --bench core ;;
    community) step "cargo bench (community)" cargo bench -p spots-signal --bench community ;;
    native)
      step "native: C ABI + SQLite store vs in-memory core" cargo test --release \
        -p spots-signal-ffi --lib bench_encrypt_decrypt -- --ignored --nocapture
      ;;
    *) die "unknown benchmark: $name (core community native)" ;;
  esac
}
