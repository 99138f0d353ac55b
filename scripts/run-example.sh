#!/usr/bin/env bash
# The README's "run" command: installs dependencies, builds, and runs the
# example deployment (three services on one in-process bus).
# Extra arguments go to the example, e.g. --quotes 100000 --quiet.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/install-deps.sh"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}" "$ROOT/scripts/build.sh" -DCMAKE_BUILD_TYPE=Release \
  -DMYCELIUM_BUILD_TESTS=OFF -DMYCELIUM_BUILD_FUZZ=OFF -DMYCELIUM_BUILD_BENCHMARKS=OFF
"${BUILD_DIR:-$ROOT/build}/apps/examples/mycelium-example-trading" "$@"
