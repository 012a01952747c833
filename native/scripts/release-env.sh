# shellcheck shell=bash
# Deterministic release build settings shared by build-android.sh and build-ios.sh: the same
# sources, toolchain (rust-toolchain pinned by the caller) and these flags give the same bytes.

release_env() {
  local root="$1"
  # No timestamps, no absolute paths of the build machine in the artifacts.
  export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct)}"
  local cargo_home="${CARGO_HOME:-$HOME/.cargo}"
  export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$root=/spots-signal --remap-path-prefix=$cargo_home=/cargo -C debuginfo=0"
  # SQLite (cc crate): the same remapping for the C objects.
  export CFLAGS="${CFLAGS:-} -ffile-prefix-map=$root=/spots-signal -ffile-prefix-map=$cargo_home=/cargo"
  # One codegen unit and thin LTO come from [profile.release]; strip the symbol table but not
  # the exported functions.
  export CARGO_PROFILE_RELEASE_STRIP=debuginfo
  export CARGO_INCREMENTAL=0
  export ZERO_AR_DATE=1
}
