#!/usr/bin/env bash
# Generates the Dart bindings (native/flutter/lib/src/bindings.g.dart) from the C header with
# ffigen (needs the Dart or Flutter SDK and libclang).
set -euo pipefail
cd "$(dirname "$0")/../flutter"
dart pub get
dart run ffigen --config ffigen.yaml
