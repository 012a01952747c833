# shellcheck shell=bash
# ./x test: every suite in order (cargo, native, WASM build, Deno against the stack, pgTAP), counting
# results from each runner and ending with one summary line.

TOTAL_PASSED=0
TOTAL_FAILED=0
FAILED_SUITES=()

record() {
  local suite="$1" passed="$2" failed="$3"
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  if ((failed > 0)); then FAILED_SUITES+=("$suite"); fi
  printf '    %s: %s passed, %s failed\n' "$suite" "$passed" "$failed" >&2
}

# run_check name command...: a check that passes or fails as a whole (lint, build, header).
run_check() {
  local name="$1"; shift
  if step "$name" "$@"; then record "$name" 1 0; else record "$name" 0 1; fi
}

test_rust() {
  local out status=0
  out="$(mktemp)"
  step "cargo test --workspace" bash -c 'cargo test --workspace --all-targets 2>&1 | tee "$1" | grep -E "^(test result|error|failures:|---- )" >&2; exit "${PIPESTATUS[0]}"' _ "$out" || status=$?
  local passed failed
  passed=$(grep -oE '[0-9]+ passed' "$out" | awk '{s+=$1} END {print s+0}')
  failed=$(grep -oE '[0-9]+ failed' "$out" | awk '{s+=$1} END {print s+0}')
  if ((status != 0 && failed == 0)); then failed=1; fi
  rm -f "$out"
  record "cargo test" "$passed" "$failed"
  run_check "cargo fmt --check" quiet cargo fmt --all --check
  run_check "cargo clippy -D warnings" quiet cargo clippy --workspace --all-targets -- -D warnings
}

# Fuzz smoke run: every cargo-fuzz target in fuzz/ for a few seconds with rustup's nightly,
# starting from the committed seeds (copied into a scratch corpus, so new inputs never land in
# the repository). Each target counts as one check; a crash leaves its input in fuzz/artifacts/.
CARGO_FUZZ_VERSION="0.13.2"
FUZZ_SECONDS="${SPOTS_FUZZ_SECONDS:-2}"

test_fuzz() {
  ensure_cargo_tool cargo-fuzz "$CARGO_FUZZ_VERSION" cargo-fuzz
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    warn "rustup's nightly toolchain is missing: rustup toolchain install nightly"
    record "fuzz" 0 1
    return
  fi
  local target_dir="$FUZZ_TARGET_DIR"
  if ! (cd "$ROOT" && step "cargo +nightly fuzz build" quiet env CARGO_TARGET_DIR="$target_dir" \
    cargo +nightly fuzz build -O); then
    record "fuzz build" 0 1
    return
  fi
  local scratch target passed=0 failed=0 targets
  scratch="$(mktemp -d)"
  targets="$(cd "$ROOT" && cargo +nightly fuzz list)"
  for target in $targets; do
    mkdir -p "$scratch/$target"
    if (cd "$ROOT" && step "fuzz $target (${FUZZ_SECONDS}s)" quiet env CARGO_TARGET_DIR="$target_dir" \
      cargo +nightly fuzz run -O "$target" "$scratch/$target" "$ROOT/fuzz/seeds/$target" -- \
      -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=4096); then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
    fi
  done
  rm -rf "$scratch"
  record "fuzz smoke" "$passed" "$failed"
}

test_wasm() {
  run_check "wasm build" wasm_build
}

test_deno() {
  local deno out status=0
  deno="$(deno_bin)"
  out="$(mktemp)"
  # Not in a subshell: run_check must count into this run's totals.
  pushd "$ROOT/edge-functions" >/dev/null
  run_check "deno fmt --check" quiet "$deno" fmt --check
  run_check "deno lint" quiet "$deno" lint
  # The functions are type-checked only here: deno run (the gateway) does not check types.
  run_check "deno check (every function)" quiet "$deno" check --frozen _local/gateway.ts \
    _local/gateway_worker.ts bench/gateway_load.ts demo/main.ts
  popd >/dev/null
  eval "$(stack_env)"
  # The end-to-end test drives native devices too (demo.sh's native_library).
  local lib
  lib="$(native_library)" || { record "native library for the end-to-end test" 0 1; return; }
  (
    cd "$ROOT/edge-functions"
    SPOTS_NATIVE_LIB="$lib" NO_COLOR=1 "$deno" test --frozen --allow-net=127.0.0.1 --allow-env \
      --allow-read --allow-write="${TMPDIR:-/tmp}" --allow-ffi --allow-sys=hostname \
      tests/ bench/http1_client_test.ts 2>&1
  ) | tee "$out" | grep -E '^(ok \||FAILED \||error:|.* => )' >&2 || status=$?
  local passed failed
  passed=$(grep -oE '([0-9]+) passed' "$out" | tail -1 | awk '{print $1+0}')
  failed=$(grep -oE '([0-9]+) failed' "$out" | tail -1 | awk '{print $1+0}')
  passed=${passed:-0}
  failed=${failed:-0}
  if grep -q '^FAILED' "$out" && ((failed == 0)); then failed=1; fi
  if ((passed == 0 && failed == 0)); then failed=1; cat "$out" >&2; fi
  rm -f "$out"
  record "deno test" "$passed" "$failed"
}

test_pgtap() {
  local out
  out="$(mktemp)"
  load_secrets
  # shellcheck source=scripts/keyserver_db.sh
  source "$ROOT/scripts/keyserver_db.sh"
  step "pg_prove supabase/tests/database" ks_prove "$DB_NAME" "$out" "$ROOT"/supabase/tests/database/*.sql
  step "upgrade: baseline + production data -> every migration (supabase/tests/upgrade)" keyserver_upgrade_test "$out"
  local passed failed
  passed=$(grep -cE '^\s*ok [0-9]+' "$out" || true)
  failed=$(grep -cE '^\s*not ok [0-9]+' "$out" || true)
  if grep -qE '^Result: (FAIL|NOTESTS)' "$out" || ! grep -q '^Result: PASS' "$out"; then
    grep -vE '^\s*ok [0-9]+' "$out" | tail -40 >&2
    ((failed > 0)) || failed=1
  elif ((failed > 0)); then
    grep -E '^\s*not ok' "$out" >&2
  fi
  rm -f "$out"
  record "pgTAP" "$passed" "$failed"
  run_check "supabase db advisors (no security findings)" keyserver_advisors
}

# Runs a program whose output ends with "N passed, M failed" and records its counts.
run_counted() {
  local name="$1"; shift
  local out status=0 passed failed
  out="$(mktemp)"
  step "$name" bash -c '"$@" >"$0" 2>&1' "$out" "$@" || status=$?
  grep -E '^(not ok|ok) ' "$out" | sed 's/^/    /' >&2 || true
  passed=$(grep -oE '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1 | awk '{print $1}')
  failed=$(grep -oE '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1 | awk '{print $3}')
  passed=${passed:-0}
  failed=${failed:-0}
  if ((status != 0 && failed == 0)); then failed=1; fi
  if ((status != 0)); then tail -60 "$out" >&2; fi
  rm -f "$out"
  record "$name" "$passed" "$failed"
}

# The native library: header, host build and exports, C tests of the DM and community calls
# (plain and under ASan), Python ctypes test, the seven mobile static libraries,
# cross-architecture conversations.
test_native() {
  # shellcheck source=native/scripts/header.sh
  source "$ROOT/native/scripts/header.sh"
  # shellcheck source=native/scripts/mobile.sh
  source "$ROOT/native/scripts/mobile.sh"
  # shellcheck source=native/scripts/cross.sh
  source "$ROOT/native/scripts/cross.sh"
  ensure_apt gcc python3 llvm-14
  run_check "native header is cbindgen's output" header_check
  run_check "native Dart wrapper uses only the header's names" dart_wrapper_check
  local lib="$CARGO_TARGET_DIR/debug" work
  run_check "native host build (cdylib + staticlib)" quiet cargo build -p spots-signal-ffi
  run_check "native cdylib exports exactly the header's functions" native_host_exports "$lib"
  work="$(mktemp -d)"
  # Each C program (DM calls, community calls) against the cdylib, then under ASan + LSan
  # linked with the staticlib.
  local program
  for program in dm community; do
    if quiet gcc -std=c11 -O1 -g -Wall -Wextra -Werror -I"$ROOT/native/include" \
        "$ROOT/native/tests/c/${program}_test.c" -L"$lib" -lspots_signal -lpthread \
        -o "$work/${program}_test"; then
      run_counted "native C $program test (gcc, cdylib)" env LD_LIBRARY_PATH="$lib" \
        "$work/${program}_test" "$work/c-$program"
    else
      record "native C $program test (gcc, cdylib)" 0 1
    fi
    if quiet gcc -std=c11 -O1 -g -fsanitize=address -fno-omit-frame-pointer -Wall -Wextra \
        -Werror -I"$ROOT/native/include" "$ROOT/native/tests/c/${program}_test.c" \
        "$lib/libspots_signal.a" -lpthread -ldl -lm -o "$work/${program}_test_asan"; then
      run_counted "native C $program test under AddressSanitizer + LeakSanitizer (staticlib)" \
        env ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23 "$work/${program}_test_asan" \
        "$work/asan-$program"
    else
      record "native C $program test under AddressSanitizer" 0 1
    fi
  done
  run_counted "native Python ctypes test" python3 "$ROOT/native/tests/python/test_ctypes.py" \
    "$lib/libspots_signal.so" "$work/py"
  rm -rf "$work"
  mobile_prerequisites
  local target
  for target in "${MOBILE_TARGETS[@]}"; do
    run_check "native staticlib $target: builds, exports the header's functions" \
      mobile_check_target "$target"
  done
  cross_main run_check
}

# The host cdylib's dynamic symbol table equals the header's function list.
native_host_exports() {
  local want got
  want="$(header_functions)"
  got="$(nm -D --defined-only "$1/libspots_signal.so" | awk '$2 == "T" {print $3}' | sort -u)"
  if [[ "$want" != "$got" ]]; then
    diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") >&2 || true
    return 1
  fi
}

print_summary() {
  if ((${#FAILED_SUITES[@]})); then
    printf 'failed: %s\n' "${FAILED_SUITES[*]}" >&2
  fi
  printf 'took %ss\n' "$(($(date +%s) - _x_start_time))" >&2
  printf '%s passed, %s failed\n' "$TOTAL_PASSED" "$TOTAL_FAILED"
}

# Whatever stops the run early (a tool that cannot be installed, an interrupted build), the
# run still ends with the summary line, counting the stop as a failure.
on_early_exit() {
  record "run stopped early" 0 1
  print_summary
}

test_main() {
  local suites=("$@")
  # pgTAP before deno: the pgTAP suites roll back and expect the fresh cluster, while the Deno
  # suites leave users, bundles and buckets behind.
  ((${#suites[@]})) || suites=(rust native fuzz wasm pgtap deno)
  local s stack_state=none
  for s in "${suites[@]}"; do
    case "$s" in rust | native | fuzz | wasm | deno | pgtap) ;; *) die "unknown suite $s (rust native fuzz wasm deno pgtap)" ;; esac
  done
  trap on_early_exit EXIT
  for s in "${suites[@]}"; do
    # Suites that need the stack get one fresh cluster with the current migrations.
    if [[ ($s == deno || $s == pgtap) && $stack_state == none ]]; then
      # In a subshell: a failing step exits it, not the run.
      if (step "stack reset (fresh cluster, migrations, gateway)" stack_reset); then
        stack_state=up
      else
        stack_state=failed
      fi
    fi
    if [[ ($s == deno || $s == pgtap) && $stack_state == failed ]]; then
      record "$s (no stack)" 0 1
      continue
    fi
    # A suite records its own results; a command failing outside those records still counts.
    "test_$s" || record "$s suite" 0 1
  done
  trap - EXIT
  print_summary
  ((TOTAL_FAILED == 0))
}
