#!/usr/bin/env bash
# Builds libspots_signal.so for Android (arm64-v8a, armeabi-v7a, x86_64, x86) into the Flutter
# plugin's jniLibs, with the NDK through cargo-ndk. Needs: rustup, the four Android targets,
# cargo-ndk, and ANDROID_NDK_HOME (NDK r26+). Deterministic: see release-env.sh.
#
#   native/scripts/build-android.sh            # -> native/flutter/android/src/main/jniLibs/<abi>/
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=native/scripts/release-env.sh
source "$ROOT/native/scripts/release-env.sh"

ANDROID_API="${ANDROID_API:-21}"
OUT="$ROOT/native/flutter/android/src/main/jniLibs"
[[ -n "${ANDROID_NDK_HOME:-}" && -d "$ANDROID_NDK_HOME" ]] \
  || { echo "ANDROID_NDK_HOME must point to an Android NDK" >&2; exit 1; }
command -v cargo-ndk >/dev/null || cargo install --locked cargo-ndk@3.5.4
rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android \
  i686-linux-android

release_env "$ROOT"
rm -rf "$OUT"
cargo ndk --platform "$ANDROID_API" -o "$OUT" \
  -t arm64-v8a -t armeabi-v7a -t x86_64 -t x86 \
  build --release --locked -p spots-signal-ffi --manifest-path "$ROOT/Cargo.toml"

# Only the .so goes into jniLibs; check each exports exactly the header's functions.
want="$(grep -oE '\bspots_[a-z0-9_]+\(' "$ROOT/native/include/spots_signal.h" | tr -d '(' | sort -u)"
for abi in arm64-v8a armeabi-v7a x86_64 x86; do
  so="$OUT/$abi/libspots_signal.so"
  find "$OUT/$abi" -type f ! -name libspots_signal.so -delete
  got="$("$ANDROID_NDK_HOME"/toolchains/llvm/prebuilt/*/bin/llvm-nm -D --defined-only "$so" \
    | awk '$2 == "T" {print $3}' | sort -u)"
  [[ "$want" == "$got" ]] || { echo "$so: exports differ from the header" >&2; exit 1; }
  printf '%s  %s\n' "$(sha256sum "$so" | cut -c1-64)" "${so#"$ROOT"/}"
done
