#!/usr/bin/env bash
# Configures and builds Mycelium into BUILD_DIR (default: build).
# Usage: scripts/build.sh [extra cmake args...]
#   BUILD_DIR=build-asan scripts/build.sh -DMYCELIUM_SANITIZE=address
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja \
  -DPython3_EXECUTABLE=/usr/bin/python3 -DMYCELIUM_BUILD_FUZZ=ON "$@"
cmake --build "$BUILD_DIR" -j "$(nproc)"
