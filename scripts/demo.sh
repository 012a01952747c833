# shellcheck shell=bash
# ./x demo: bring the stack up, run the scenario (native and WASM devices through the gateway),
# print what happened, tear it down.

# Builds the host cdylib of the native library and prints its path.
native_library() {
  step "native library (cargo build -p spots-signal-ffi)" quiet cargo build -p spots-signal-ffi >&2
  printf '%s\n' "$CARGO_TARGET_DIR/debug/libspots_signal.so"
}

demo_main() {
  local lib
  lib="$(native_library)"
  stack_up
  trap 'stack_down' EXIT
  eval "$(stack_env)"
  log "scenario: native (libspots_signal) and WASM devices through the gateway"
  (
    cd "$ROOT/edge-functions"
    SPOTS_NATIVE_LIB="$lib" NO_COLOR=1 "$(deno_bin)" run --frozen --allow-net=127.0.0.1 \
      --allow-env --allow-read --allow-write="${TMPDIR:-/tmp}" --allow-ffi demo/main.ts
  )
}
