#!/usr/bin/env bash
# The README's "test" command (and what CI runs): installs dependencies,
# builds in a clean directory and runs every test with CTest.
#
#   scripts/test.sh                    # all default tests (unit, integration, fuzz smoke)
#   scripts/test.sh -L unit            # extra arguments go to ctest
#   SANITIZE=address scripts/test.sh   # ASan+UBSan build in build-address
#   SANITIZE=thread  scripts/test.sh   # TSan build in build-thread
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/install-deps.sh"
SANITIZE="${SANITIZE:-}"
if [ -n "$SANITIZE" ]; then
  BUILD_DIR="${BUILD_DIR:-$ROOT/build-$SANITIZE}"
  EXTRA=(-DMYCELIUM_SANITIZE="$SANITIZE" -DMYCELIUM_BUILD_BENCHMARKS=OFF -DMYCELIUM_BUILD_FUZZ=OFF)
  if [ "$SANITIZE" = thread ]; then
    # TSan needs an instrumented CAF (see scripts/build-caf.sh).
    CAF="$ROOT/.deps/caf-tsan"
    "$ROOT/scripts/build-caf.sh" tsan "$CAF"
    EXTRA+=(-DCAF_INCLUDE_DIR="$CAF/include" -DCAF_CORE_LIBRARY="$CAF/lib/libcaf_core.so"
            -DCAF_IO_LIBRARY="$CAF/lib/libcaf_io.so" -DCAF_OPENSSL_LIBRARY=)
  fi
else
  BUILD_DIR="${BUILD_DIR:-$ROOT/build-test}"
  EXTRA=()
fi
rm -rf "$BUILD_DIR"
BUILD_DIR="$BUILD_DIR" "$ROOT/scripts/build.sh" -DMYCELIUM_WERROR=ON "${EXTRA[@]}"
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 600 "$@"
