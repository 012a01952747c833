# shellcheck shell=bash
# Cross-architecture conversations: the CLI and the library built for i686 (32-bit x86, like
# Android x86 / armeabi-v7a's 32-bit pointers) and aarch64 (64-bit ARM, like iOS and Android
# arm64, run under qemu-user) talk to the x86_64 build through state files and store files,
# and the state written on one architecture is carried on by another.
#
# Built with Debian's rustc and -Zbuild-std (no rustup targets needed) and Debian's cross gcc
# as linker; sourced by scripts/test.sh, or `bash native/scripts/cross.sh` alone
# (SPOTS_CROSS_FULL=1 also runs the whole C test suites, DM and community, on each
# architecture).

CROSS_TARGETS=(i686-unknown-linux-gnu aarch64-unknown-linux-gnu)
CROSS_TARGET_DIR="$DEBIAN_RUSTC_TARGET_DIR"

cross_prerequisites() {
  ensure_apt rustc-web cargo-web rust-web-src qemu-user gcc-aarch64-linux-gnu \
    libc6-dev-arm64-cross gcc-i686-linux-gnu libc6-dev-i386-cross libc6-i386 lib32gcc-s1
}

cross_gcc() {
  case "$1" in
    i686-unknown-linux-gnu) echo i686-linux-gnu-gcc ;;
    aarch64-unknown-linux-gnu) echo aarch64-linux-gnu-gcc ;;
    x86_64-unknown-linux-gnu) echo gcc ;;
  esac
}

# How to run a binary of a target on this machine.
cross_runner() {
  case "$1" in
    aarch64-unknown-linux-gnu) echo "qemu-aarch64 -L /usr/aarch64-linux-gnu" ;;
    *) echo "" ;;
  esac
}

# Builds the CLI and the library (staticlib) of a target and links the C tests against it;
# prints the output folder.
cross_build() {
  local target="$1" key gcc dir
  key="${target//-/_}"
  gcc="$(cross_gcc "$target")"
  dir="$CROSS_TARGET_DIR/$target/debug"
  if [[ $target == x86_64-unknown-linux-gnu ]]; then
    # The host build: rustup's toolchain, the same target folder as the other suites.
    quiet cargo build -p spots-signal -p spots-signal-ffi || return 1
    dir="$CARGO_TARGET_DIR/debug"
  else
    quiet env RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
      CARGO_TARGET_DIR="$CROSS_TARGET_DIR" CARGO_PROFILE_DEV_DEBUG=false \
      "CARGO_TARGET_${key^^}_LINKER=$gcc" "CC_$key=$gcc" \
      /usr/bin/cargo build --manifest-path "$ROOT/Cargo.toml" -p spots-signal -p spots-signal-ffi \
      --target "$target" -Zbuild-std=std,panic_abort || return 1
  fi
  local program
  for program in dm community; do
    quiet "$gcc" -std=c11 -O1 -Wall -Wextra -Werror -I"$ROOT/native/include" \
      "$ROOT/native/tests/c/${program}_test.c" "$dir/libspots_signal.a" -lpthread -ldl -lm \
      -o "$dir/${program}_test" || return 1
  done
  printf '%s\n' "$dir"
}

# A DM between the CLI of arch A (alice) and arch B (bob) through JSON state files; halfway
# the two swap binaries, so each state file written on one architecture is continued on the
# other.
cross_cli_dm() {
  local work="$1" a_bin="$2" b_bin="$3"
  export SPOTS_SIGNAL_NOW_MS=1800000000000
  local A=($a_bin) B=($b_bin)
  "${A[@]}" new-party "$work/alice.json" alice 1 1111 1 >"$work/alice.bundle" || return 1
  "${B[@]}" new-party "$work/bob.json" bob 1 2222 2 >"$work/bob.bundle" || return 1
  "${A[@]}" process-bundle "$work/alice.json" bob.1 "$work/bob.bundle" >/dev/null || return 1
  local turn text out type body got from to state
  for turn in 1 2 3 4 5 6; do
    if ((turn == 4)); then local T=("${A[@]}"); A=("${B[@]}"); B=("${T[@]}"); fi
    if ((turn % 2)); then from=alice to=bob; else from=bob to=alice; fi
    text="turn $turn from $from"
    if [[ $from == alice ]]; then state="$work/alice.json"; out="$("${A[@]}" encrypt "$state" bob.1 "$text")" || return 1
    else state="$work/bob.json"; out="$("${B[@]}" encrypt "$state" alice.1 "$text")" || return 1; fi
    type="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["type"])' <<<"$out")"
    body="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["body"])' <<<"$out")"
    if [[ $to == bob ]]; then got="$("${B[@]}" decrypt "$work/bob.json" alice.1 "$type" "$body")" || return 1
    else got="$("${A[@]}" decrypt "$work/alice.json" bob.1 "$type" "$body")" || return 1; fi
    [[ "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["plaintext_utf8"])' <<<"$got")" == "$text" ]] \
      || { printf 'turn %s: got %s\n' "$turn" "$got" >&2; return 1; }
  done
  "${A[@]}" safety-number "$work/alice.json" bob.1 >"$work/sa" || return 1
  "${B[@]}" safety-number "$work/bob.json" alice.1 >"$work/sb" || return 1
  # The 60 digits agree on both sides (the QR payloads are mirror images).
  [[ "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["displayable"])' <"$work/sa")" \
    == "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["displayable"])' <"$work/sb")" ]] \
    || { echo "safety numbers differ" >&2; return 1; }
}

# A group conversation (Sender Keys) between the CLI of arch A (alice) and arch B (bob), on the
# state files of cross_cli_dm: each sender-key distribution message travels inside a Signal DM,
# then group messages go both ways; halfway the binaries swap state files again.
cross_cli_group() {
  local work="$1" a_bin="$2" b_bin="$3"
  export SPOTS_SIGNAL_NOW_MS=1800000000000
  local A=($a_bin) B=($b_bin) dist=6f1c2a3e-0d4b-4c5e-9f60-7a8b9c0d1e2f
  local field='import json,sys; print(json.load(sys.stdin)[sys.argv[1]])'
  local skdm out type body got
  # alice -> bob and bob -> alice: the distribution message, as a DM.
  skdm="$("${A[@]}" group-create "$work/alice.json" "$dist" | python3 -c "$field" skdm)" || return 1
  out="$("${A[@]}" encrypt "$work/alice.json" bob.1 "$skdm")" || return 1
  got="$("${B[@]}" decrypt "$work/bob.json" alice.1 "$(python3 -c "$field" type <<<"$out")" \
    "$(python3 -c "$field" body <<<"$out")" | python3 -c "$field" plaintext_utf8)" || return 1
  "${B[@]}" group-process "$work/bob.json" alice.1 "$got" >/dev/null || return 1
  skdm="$("${B[@]}" group-create "$work/bob.json" "$dist" | python3 -c "$field" skdm)" || return 1
  out="$("${B[@]}" encrypt "$work/bob.json" alice.1 "$skdm")" || return 1
  got="$("${A[@]}" decrypt "$work/alice.json" bob.1 "$(python3 -c "$field" type <<<"$out")" \
    "$(python3 -c "$field" body <<<"$out")" | python3 -c "$field" plaintext_utf8)" || return 1
  "${A[@]}" group-process "$work/alice.json" bob.1 "$got" >/dev/null || return 1
  local turn text skm from
  for turn in 1 2 3 4 5 6; do
    if ((turn == 4)); then local T=("${A[@]}"); A=("${B[@]}"); B=("${T[@]}"); fi
    text="group turn $turn"
    if ((turn % 2)); then
      skm="$("${A[@]}" group-encrypt "$work/alice.json" "$dist" "$text" | python3 -c "$field" skm)" || return 1
      got="$("${B[@]}" group-decrypt "$work/bob.json" alice.1 "$skm" | python3 -c "$field" plaintext_utf8)" || return 1
    else
      skm="$("${B[@]}" group-encrypt "$work/bob.json" "$dist" "$text" | python3 -c "$field" skm)" || return 1
      got="$("${A[@]}" group-decrypt "$work/alice.json" bob.1 "$skm" | python3 -c "$field" plaintext_utf8)" || return 1
    fi
    [[ "$got" == "$text" ]] || { printf 'group turn %s: got %s\n' "$turn" "$got" >&2; return 1; }
  done
}

# A DM between the library of arch A (alice's store) and arch B (bob's store) through store
# files (C driver, --party steps); halfway the binaries swap stores.
cross_lib_dm() {
  local work="$1" a_bin="$2" b_bin="$3"
  local A=($a_bin) B=($b_bin)
  "${A[@]}" --party "$work" alice a1 init || return 1
  "${B[@]}" --party "$work" bob b2 init || return 1
  "${A[@]}" --party "$work" alice a1 connect bob || return 1
  local turn text
  for turn in 1 2 3 4 5 6; do
    if ((turn == 4)); then local T=("${A[@]}"); A=("${B[@]}"); B=("${T[@]}"); fi
    text="turn $turn"
    if ((turn % 2)); then
      "${A[@]}" --party "$work" alice a1 send bob "$text" || return 1
      "${B[@]}" --party "$work" bob b2 recv alice "$text" || return 1
    else
      "${B[@]}" --party "$work" bob b2 send alice "$text" || return 1
      "${A[@]}" --party "$work" alice a1 recv bob "$text" || return 1
    fi
  done
}

# Runs every cross check through `run_check` (scripts/test.sh) or prints results alone.
cross_main() {
  local runner="${1:-run_check}"
  cross_prerequisites
  local host target dir run work
  host="$(cross_build x86_64-unknown-linux-gnu)" || { "$runner" "cross: x86_64 build" false; return; }
  for target in "${CROSS_TARGETS[@]}"; do
    if ! dir="$(step "cross build $target (CLI + library)" cross_build "$target")"; then
      "$runner" "cross: $target build" false
      continue
    fi
    run="$(cross_runner "$target")"
    work="$(mktemp -d)"
    # The whole C suite on the foreign architecture takes minutes (more under qemu): only on
    # request, the conversations below always run.
    if [[ -n "${SPOTS_CROSS_FULL:-}" ]]; then
      "$runner" "cross: $target C test suite (library, own stores)" \
        quiet $run "$dir/dm_test" "$work/suite"
      "$runner" "cross: $target C community test suite (library, own stores)" \
        quiet $run "$dir/community_test" "$work/community"
    fi
    mkdir -p "$work/cli" "$work/lib"
    "$runner" "cross: $target CLI <-> x86_64 CLI DM through state files" \
      cross_cli_dm "$work/cli" "$run $dir/spots-signal" "$host/spots-signal"
    "$runner" "cross: $target CLI <-> x86_64 CLI group (Sender Keys) through state files" \
      cross_cli_group "$work/cli" "$run $dir/spots-signal" "$host/spots-signal"
    "$runner" "cross: $target library <-> x86_64 library DM through store files" \
      cross_lib_dm "$work/lib" "$run $dir/dm_test" "$host/dm_test"
    rm -rf "$work"
  done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  # shellcheck source=scripts/lib.sh
  source "$(cd "$(dirname "$0")/../.." && pwd)/scripts/lib.sh"
  _cross_status=0
  _cross_report() {
    local name="$1"; shift
    if step "$name" "$@"; then echo "ok - $name"; else echo "not ok - $name"; _cross_status=1; fi
  }
  cross_main _cross_report
  exit "$_cross_status"
fi
