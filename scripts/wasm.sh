# shellcheck shell=bash
# The WASM build: core -> crypto-wasm -> wasm-bindgen packages for Deno (edge functions, tests)
# and the web (admin tooling) -> wasm-opt. Uses a rustup wasm32 target when one is installed,
# otherwise Debian's rustc-web with -Zbuild-std (the two toolchains never share a target dir).

WASM_CRATE=spots-crypto-wasm
WASM_STEM=spots_crypto_wasm
WASM_DENO_OUT="$ROOT/edge-functions/_shared/wasm"
WASM_WEB_OUT="$ROOT/crypto-wasm/pkg/web"

rustup_has_wasm_target() {
  command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown
}

# Prints the path of the raw .wasm produced by cargo.
wasm_cargo_build() {
  if rustup_has_wasm_target; then
    quiet cargo build --profile wasm-release -p "$WASM_CRATE" --target wasm32-unknown-unknown
    printf '%s\n' "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/$WASM_STEM.wasm"
    return
  fi
  ensure_apt rustc-web cargo-web rust-web-src
  local rust_lld
  rust_lld="$("$HOME/.cargo/bin/rustc" --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
  [[ -x "$rust_lld" ]] || die "rust-lld not found at $rust_lld (needed to link wasm with Debian rustc)"
  quiet env RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    CARGO_TARGET_DIR="$DEBIAN_RUSTC_TARGET_DIR" \
    RUSTFLAGS="-C linker=$rust_lld" \
    /usr/bin/cargo build --profile wasm-release -p "$WASM_CRATE" \
    --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort
  printf '%s\n' "$DEBIAN_RUSTC_TARGET_DIR/wasm32-unknown-unknown/wasm-release/$WASM_STEM.wasm"
}

human_size() { numfmt --to=iec --suffix=B --format='%.1f' "$1"; }

wasm_build() {
  local raw
  raw="$(step "cargo build $WASM_CRATE (wasm32)" wasm_cargo_build)"
  [[ -f "$raw" ]] || die "no wasm produced at $raw"

  # wasm-bindgen and wasm-opt are deterministic: skip them when the module did not change.
  local stamp="$SPOTS_CACHE/wasm-stamps/$CLONE_ID"
  local digest
  digest="$(sha256sum "$raw" | cut -c1-64)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$digest" && -f "$WASM_DENO_OUT/${WASM_STEM}_bg.wasm" \
        && -f "$WASM_WEB_OUT/${WASM_STEM}_bg.wasm" ]]; then
    log "wasm packages up to date"
    wasm_report "$raw"
    return 0
  fi

  ensure_cargo_tool wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
  local binaryen
  binaryen="$(ensure_npm_tool binaryen "$BINARYEN_VERSION")"
  local target out optimized=""
  for target in deno web; do
    if [[ $target == deno ]]; then out="$WASM_DENO_OUT"; else out="$WASM_WEB_OUT"; fi
    rm -rf "$out"
    mkdir -p "$out"
    step "wasm-bindgen --target $target" quiet wasm-bindgen --target "$target" --out-dir "$out" "$raw"
    # The targets differ in their JS glue only: optimize a module once and reuse the result
    # when the next one is byte-identical.
    if [[ -n $optimized ]] && cmp -s "$out/${WASM_STEM}_bg.wasm" "$optimized.input"; then
      cp "$optimized" "$out/${WASM_STEM}_bg.wasm"
      continue
    fi
    optimized="$out/${WASM_STEM}_bg.wasm"
    cp "$optimized" "$optimized.input"
    step "wasm-opt -Oz ($target)" quiet node "$binaryen/node_modules/binaryen/bin/wasm-opt" -Oz \
      "$optimized.input" -o "$optimized"
  done
  rm -f "$WASM_DENO_OUT/${WASM_STEM}_bg.wasm.input" "$WASM_WEB_OUT/${WASM_STEM}_bg.wasm.input"
  mkdir -p "$(dirname "$stamp")"
  printf '%s' "$digest" >"$stamp"
  wasm_report "$raw"
}

wasm_report() {
  local raw="$1"
  local bindgen_size opt gz
  opt="$WASM_DENO_OUT/${WASM_STEM}_bg.wasm"
  gz="$(gzip -9c "$opt" | wc -c)"
  printf 'wasm sizes: raw %s, optimized %s, gzip %s (%s)\n' \
    "$(human_size "$(stat -c %s "$raw")")" "$(human_size "$(stat -c %s "$opt")")" \
    "$(human_size "$gz")" "$opt" >&2
}
