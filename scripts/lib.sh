# shellcheck shell=bash
# Shared helpers for ./x: paths, logging with timings, and idempotent installers.
# Everything installed goes into $SPOTS_CACHE (outside the clone) so clones and CI reuse it.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPOTS_CACHE="${SPOTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spots-signal}"
mkdir -p "$SPOTS_CACHE"
SPOTS_CACHE="$(cd "$SPOTS_CACHE" && pwd)"
export SPOTS_CACHE

# One stack (cluster, ports) per clone: identify the clone by a hash of its path.
CLONE_ID="$(printf '%s' "$ROOT" | sha256sum | cut -c1-10)"
CLONE_NUM=$(( 16#${CLONE_ID:0:4} % 900 ))

# Pinned tool versions (the wasm-bindgen CLI must equal the crate version in Cargo.toml).
DENO_VERSION="2.9.6"
BINARYEN_VERSION="132.0.0"
SUPABASE_CLI_VERSION="2.117.0"
WASM_BINDGEN_VERSION="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' "$ROOT/Cargo.toml")"
CBINDGEN_VERSION="0.29.2"

# Build artifacts live in the cache, one folder per clone: cargo names a workspace's artifacts
# by paths relative to the workspace root, so two clones sharing a target folder would
# overwrite each other's crates mid-build. Each toolchain keeps its own folder too.
SPOTS_TARGET_ROOT="$SPOTS_CACHE/target/$CLONE_ID"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SPOTS_TARGET_ROOT/rustup}"
DEBIAN_RUSTC_TARGET_DIR="$SPOTS_TARGET_ROOT/debian-rustc"
FUZZ_TARGET_DIR="$SPOTS_TARGET_ROOT/fuzz"
export PATH="$HOME/.cargo/bin:$SPOTS_CACHE/cargo-tools/bin:$PATH"

_x_start_time=$(date +%s)

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# step "description" command...: runs a command, printing its duration when it takes > 3 s,
# and returns the command's status (also inside `if`/`||`, where `set -e` does not apply).
step() {
  local what="$1"; shift
  local start end status=0
  start=$(date +%s)
  log "$what"
  "$@" || status=$?
  end=$(date +%s)
  if (( end - start > 3 )); then
    printf '    (%s: %ss)\n' "$what" "$((end - start))" >&2
  fi
  return "$status"
}

# Runs a command quietly, showing its output only if it fails.
quiet() {
  local out
  out="$(mktemp)"
  if ! "$@" >"$out" 2>&1; then
    cat "$out" >&2
    rm -f "$out"
    return 1
  fi
  rm -f "$out"
}

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# ensure_apt pkg...: installs missing Debian packages (one apt-get call for all of them).
_apt_updated=0
ensure_apt() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get: install them by hand"
  if (( _apt_updated == 0 )); then
    step "apt-get update" quiet as_root apt-get update -qq
    _apt_updated=1
  fi
  step "apt-get install ${missing[*]}" quiet as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_npm_tool name version: installs an npm package into its own prefix in the cache and
# prints that prefix.
ensure_npm_tool() {
  local name="$1" version="$2"
  local prefix="$SPOTS_CACHE/npm/$name@$version"
  if [[ ! -f "$prefix/.installed" ]]; then
    command -v npm >/dev/null || ensure_apt nodejs npm
    mkdir -p "$prefix"
    step "npm install $name@$version" quiet npm install --prefix "$prefix" --no-audit --no-fund \
      --save-exact "$name@$version"
    touch "$prefix/.installed"
  fi
  printf '%s\n' "$prefix"
}

# ensure_cargo_tool crate version binary: cargo-installs a tool into the cache.
ensure_cargo_tool() {
  local crate="$1" version="$2" bin="$3"
  local root="$SPOTS_CACHE/cargo-tools"
  if [[ -x "$root/bin/$bin" ]] && "$root/bin/$bin" --version 2>/dev/null | grep -q "$version"; then
    return 0
  fi
  # Installing unlocked: --locked fails for some of these tools against this registry. Debug
  # builds with one shared target folder: these tools do little work per run, and a cold
  # machine compiles them (and the dependencies they share) in about half the time.
  step "cargo install $crate@$version" quiet env CARGO_TARGET_DIR="$root/build" \
    "$HOME/.cargo/bin/cargo" install --debug --quiet --root "$root" --version "=$version" "$crate"
}

deno_bin() {
  local prefix
  prefix="$(ensure_npm_tool deno "$DENO_VERSION")"
  local bin="$prefix/node_modules/@deno/linux-x64-glibc/deno"
  [[ -x "$bin" ]] || bin="$prefix/node_modules/.bin/deno"
  printf '%s\n' "$bin"
}

export DENO_DIR="$SPOTS_CACHE/deno-dir"
export DENO_NO_UPDATE_CHECK=1
