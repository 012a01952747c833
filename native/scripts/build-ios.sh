#!/usr/bin/env bash
# Builds the static libspots_signal for iOS (device arm64; simulator arm64 + x86_64, merged with
# lipo) and wraps them with the header in SpotsSignal.xcframework for the Flutter plugin, on a
# Mac with Xcode. Deterministic: see release-env.sh.
#
#   native/scripts/build-ios.sh                # -> native/flutter/ios/Frameworks/SpotsSignal.xcframework
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=native/scripts/release-env.sh
source "$ROOT/native/scripts/release-env.sh"

command -v xcodebuild >/dev/null || { echo "xcodebuild not found: needs Xcode" >&2; exit 1; }
export IPHONEOS_DEPLOYMENT_TARGET="${IPHONEOS_DEPLOYMENT_TARGET:-13.0}"
TARGETS=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
rustup target add "${TARGETS[@]}"
release_env "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
for target in "${TARGETS[@]}"; do
  cargo rustc --release --locked -p spots-signal-ffi --manifest-path "$ROOT/Cargo.toml" \
    --lib --crate-type staticlib --target "$target"
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/headers" "$WORK/device" "$WORK/simulator"
cp "$ROOT/native/include/spots_signal.h" "$WORK/headers/"
cat >"$WORK/headers/module.modulemap" <<'MAP'
module SpotsSignal {
  header "spots_signal.h"
  export *
}
MAP
cp "$TARGET_DIR/aarch64-apple-ios/release/libspots_signal.a" "$WORK/device/"
lipo -create "$TARGET_DIR/aarch64-apple-ios-sim/release/libspots_signal.a" \
  "$TARGET_DIR/x86_64-apple-ios/release/libspots_signal.a" \
  -output "$WORK/simulator/libspots_signal.a"

OUT="$ROOT/native/flutter/ios/Frameworks/SpotsSignal.xcframework"
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
xcodebuild -create-xcframework \
  -library "$WORK/device/libspots_signal.a" -headers "$WORK/headers" \
  -library "$WORK/simulator/libspots_signal.a" -headers "$WORK/headers" \
  -output "$OUT"

want="$(grep -oE '\bspots_[a-z0-9_]+\(' "$ROOT/native/include/spots_signal.h" | tr -d '(' | sort -u)"
for lib in "$WORK/device/libspots_signal.a" "$WORK/simulator/libspots_signal.a"; do
  got="$(nm -gU "$lib" 2>/dev/null | awk '$2 == "T" {print $3}' | sed 's/^_//' | grep '^spots_' | sort -u)"
  [[ "$want" == "$got" ]] || { echo "$lib: exports differ from the header" >&2; exit 1; }
  shasum -a 256 "$lib"
done
echo "wrote ${OUT#"$ROOT"/}"
