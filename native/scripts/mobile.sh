# shellcheck shell=bash
# Compile-only check of the mobile static libraries on a Linux machine without the Android NDK
# or Xcode (sourced by scripts/test.sh; `bash native/scripts/mobile.sh` runs it alone).
#
# What it does, per target (Android arm64-v8a, armeabi-v7a, x86_64, x86; iOS device, arm64
# simulator, x86_64 simulator):
# - Rust: Debian's rustc builds std for the target (-Zbuild-std) and the crate as a
#   `staticlib`, exactly the Rust code the packaging scripts ship.
# - SQLite (rusqlite `bundled`): Debian's clang compiles the same sqlite3.c with the target's
#   triple, but against STAND-IN headers: glibc's headers for that architecture (Debian cross
#   packages) in place of Bionic (NDK) or the iOS SDK, plus small stubs for the Apple-only
#   headers SQLite includes (TargetConditionals.h, malloc/malloc.h, sys/sysctl.h, Darwin's
#   struct statfs), and on Apple targets SQLITE_ENABLE_LOCKING_STYLE=0 (macOS-only locking
#   variants). These objects prove that SQLite compiles for the triple and
#   is linked into the archive; they are never shipped. Only native/scripts/build-android.sh
#   (NDK) and build-ios.sh (Xcode) produce archives with SQLite built against the real SDKs.
# - The archive must export exactly the functions native/include/spots_signal.h declares
#   (`spots_*`, with Apple's leading underscore), no more, no fewer.
# The check uses the dev profile without debug info (fast); the packaging scripts build release.

MOBILE_TARGETS=(
  aarch64-linux-android armv7-linux-androideabi x86_64-linux-android i686-linux-android
  aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
)
NATIVE_DIR="$ROOT/native"
DEBIAN_TARGET_DIR="$DEBIAN_RUSTC_TARGET_DIR"
ANDROID_API=21
IOS_MIN=13.0

mobile_prerequisites() {
  ensure_apt rustc-web cargo-web rust-web-src clang-14 llvm-14 \
    libc6-dev-arm64-cross libc6-dev-armhf-cross libc6-dev-i386-cross libc6-dev
}

# The clang triple of a Rust target.
clang_triple() {
  case "$1" in
    aarch64-linux-android) echo "aarch64-linux-android$ANDROID_API" ;;
    armv7-linux-androideabi) echo "armv7a-linux-androideabi$ANDROID_API" ;;
    x86_64-linux-android) echo "x86_64-linux-android$ANDROID_API" ;;
    i686-linux-android) echo "i686-linux-android$ANDROID_API" ;;
    aarch64-apple-ios) echo "arm64-apple-ios$IOS_MIN" ;;
    aarch64-apple-ios-sim) echo "arm64-apple-ios$IOS_MIN-simulator" ;;
    x86_64-apple-ios) echo "x86_64-apple-ios$IOS_MIN-simulator" ;;
    *) die "unknown mobile target $1" ;;
  esac
}

# Header folders (glibc for the same architecture) standing in for the target's C library.
standin_sources() {
  case "$1" in
    aarch64-* ) echo /usr/aarch64-linux-gnu/include ;;
    armv7-*) echo /usr/arm-linux-gnueabihf/include ;;
    i686-*) echo /usr/i686-linux-gnu/include ;;
    x86_64-*) echo "/usr/include/x86_64-linux-gnu /usr/include" ;;
  esac
}

# Builds (once) the stand-in sysroot of a target and prints its path: usr/include holds
# symlinks to the glibc headers plus the stubs below.
standin_sysroot() {
  local target="$1"
  # The folder name must not look like another Apple platform's SDK to cc-rs.
  local root="$SPOTS_CACHE/native/standin-v2/$target"
  if [[ -f "$root/.done" ]]; then printf '%s\n' "$root"; return; fi
  rm -rf "$root"
  local inc="$root/usr/include" src entry
  mkdir -p "$inc"
  for src in $(standin_sources "$target"); do
    for entry in "$src"/*; do
      [[ -e "$inc/$(basename "$entry")" ]] || ln -s "$entry" "$inc/$(basename "$entry")"
    done
  done
  case "$target" in
    armv7-*)
      # androideabi is soft-float ABI: glibc's armhf headers select gnu/stubs-soft.h.
      rm -f "$inc/gnu"; mkdir -p "$inc/gnu"
      for entry in /usr/arm-linux-gnueabihf/include/gnu/*; do ln -s "$entry" "$inc/gnu/"; done
      : >"$inc/gnu/stubs-soft.h"
      ;;
    *-apple-ios*)
      local sim=0
      [[ $target == *-sim || $target == x86_64-apple-ios ]] && sim=1
      cat >"$inc/TargetConditionals.h" <<EOH
/* Stand-in for the iOS SDK header (compile-only check). */
#define TARGET_OS_IPHONE 1
#define TARGET_OS_IOS 1
#define TARGET_OS_EMBEDDED 1
#define TARGET_OS_MACCATALYST 0
#define TARGET_IPHONE_SIMULATOR $sim
#define TARGET_OS_SIMULATOR $sim
EOH
      mkdir -p "$inc/malloc" "$inc/sys.apple"
      cat >"$inc/malloc/malloc.h" <<'EOH'
/* Stand-in for the iOS SDK header (compile-only check): the zone allocator SQLite uses. */
#include <stddef.h>
typedef struct _malloc_zone_t { size_t (*size)(struct _malloc_zone_t *, const void *); } malloc_zone_t;
malloc_zone_t *malloc_default_zone(void);
malloc_zone_t *malloc_create_zone(size_t, unsigned);
void malloc_set_zone_name(malloc_zone_t *, const char *);
void *malloc_zone_malloc(malloc_zone_t *, size_t);
void *malloc_zone_realloc(malloc_zone_t *, void *, size_t);
void malloc_zone_free(malloc_zone_t *, void *);
size_t malloc_size(const void *);
EOH
      # glibc 2.36 has no sys/sysctl.h; Darwin does.
      rm -f "$inc/sys"; mkdir -p "$inc/sys"
      for entry in "$(standin_sources "$target" | awk '{print $1}')"/sys/*; do ln -s "$entry" "$inc/sys/"; done
      [[ -e "$inc/sys/sysctl.h" ]] || cat >"$inc/sys/sysctl.h" <<'EOH'
/* Stand-in for the iOS SDK header (compile-only check). */
#include <stddef.h>
int sysctlbyname(const char *, void *, size_t *, void *, size_t);
EOH
      rmdir "$inc/sys.apple"
      # Darwin's struct statfs (SQLite reads f_fstypename and f_flags).
      rm -f "$inc/sys/mount.h"
      cat >"$inc/sys/mount.h" <<'EOH'
/* Stand-in for the iOS SDK header (compile-only check): the parts SQLite uses. */
#include <stdint.h>
#define MFSTYPENAMELEN 16
#define MNT_LOCAL 0x00001000
struct statfs {
  uint32_t f_bsize; int32_t f_iosize; uint64_t f_blocks, f_bfree, f_bavail, f_files, f_ffree;
  uint32_t f_flags; char f_fstypename[MFSTYPENAMELEN]; char f_mntonname[1024];
  char f_mntfromname[1024];
};
int fstatfs(int, struct statfs *);
int statfs(const char *, struct statfs *);
EOH
      ;;
  esac
  touch "$root/.done"
  printf '%s\n' "$root"
}

# Builds the staticlib of one target; prints the archive's path.
mobile_build() {
  local target="$1" sysroot triple key out
  sysroot="$(standin_sysroot "$target")"
  triple="$(clang_triple "$target")"
  key="${target//-/_}"
  local env=(
    RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
    CARGO_TARGET_DIR="$DEBIAN_TARGET_DIR"
    CARGO_PROFILE_DEV_DEBUG=false
    IPHONEOS_DEPLOYMENT_TARGET="$IOS_MIN"
    "CC_$key=clang-14" "AR_$key=llvm-ar-14"
  )
  if [[ $target == *-apple-ios* ]]; then
    # Darwin clang predefines __nonnull (nullability), which glibc's headers define otherwise.
    env+=(SDKROOT="$sysroot" "CFLAGS_$key=--target=$triple -U__nonnull -DSQLITE_ENABLE_LOCKING_STYLE=0")
  else
    env+=("CFLAGS_$key=--target=$triple --sysroot=$sysroot")
  fi
  out="$(mktemp)"
  if ! env "${env[@]}" /usr/bin/cargo rustc --manifest-path "$NATIVE_DIR/Cargo.toml" \
      -p spots-signal-ffi --lib --crate-type staticlib --target "$target" \
      -Zbuild-std=std,panic_abort --message-format=json-render-diagnostics >"$out" 2>"$out.err"; then
    tail -40 "$out.err" >&2
    rm -f "$out" "$out.err"
    return 1
  fi
  python3 - "$out" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "spots_signal" \
            and "spots-signal-ffi" in msg["package_id"]:
        for name in msg["filenames"]:
            if name.endswith(".a"):
                print(name)
EOP
  rm -f "$out" "$out.err"
}

# The functions the header declares, one per line, sorted.
header_functions() {
  grep -oE '\bspots_[a-z0-9_]+\(' "$NATIVE_DIR/include/spots_signal.h" | tr -d '(' | sort -u
}

# The spots_* functions an archive defines and exports, sorted (Apple's `_` prefix removed).
archive_functions() {
  llvm-nm-14 -g --defined-only "$1" 2>/dev/null | awk '$2 == "T" {print $3}' \
    | sed -E 's/^_(spots_)/\1/' | grep -E '^spots_' | sort -u
}

# Also refuses any other exported symbol in our namespace (data included).
check_archive_symbols() {
  local archive="$1" target="$2"
  local want got
  want="$(header_functions)"
  got="$(archive_functions "$archive")"
  if [[ "$want" != "$got" ]]; then
    printf 'symbols of %s differ from the header:\n' "$target" >&2
    diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") >&2 || true
    return 1
  fi
  # Evidence that SQLite is inside: its entry points are defined in the archive.
  if ! llvm-nm-14 -g --defined-only "$archive" 2>/dev/null | grep -E ' T _?sqlite3_open_v2$' >/dev/null; then
    printf '%s: SQLite is not in the archive\n' "$target" >&2
    return 1
  fi
  local format
  format="$(llvm-objdump-14 -a "$archive" 2>/dev/null | grep -m1 -oE 'file format [a-z0-9-]+' || true)"
  printf '    %s: %s spots_* functions, sqlite3 inside, %s, %s\n' "$target" \
    "$(printf '%s\n' "$got" | wc -l)" "${format:-?}" "$(du -h "$archive" | cut -f1)" >&2
}

# Runs the whole check; one result per target through the given recorder.
mobile_check_target() {
  local target="$1" archive
  archive="$(mobile_build "$target")" || return 1
  [[ -f "$archive" ]] || { printf 'no archive for %s\n' "$target" >&2; return 1; }
  check_archive_symbols "$archive" "$target"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  # shellcheck source=scripts/lib.sh
  source "$(cd "$(dirname "$0")/../.." && pwd)/scripts/lib.sh"
  mobile_prerequisites
  status=0
  for t in "${@:-${MOBILE_TARGETS[@]}}"; do
    step "staticlib $t" mobile_check_target "$t" || status=1
  done
  exit "$status"
fi
