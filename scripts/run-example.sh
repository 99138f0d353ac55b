#!/usr/bin/env bash
# The README's "run" command: installs dependencies, builds, and runs the
# flagship example under mycelium-run: the multi-language trading system
# (docs/deployment.md), C++ market data -> Python signals -> OCaml risk ->
# C++ execution, in its three deployments (fast, isolated, distributed). It
# shows `mycelium-run plan` of the isolated deployment first, and ends with
# the tick-to-order latency of each deployment and the check that all three
# gave the same fills and positions.
#
#   scripts/run-example.sh                         # all three deployments
#   DEPLOYMENTS=fast scripts/run-example.sh        # one of them
#   BENCH=1 scripts/run-example.sh                 # the benchmark mode
# The single-language trading example (apps/examples/trading) runs with
# scripts/run-trading-example.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/install-deps.sh"
BUILD_DIR="$BUILD_DIR" "$ROOT/scripts/build.sh" -DCMAKE_BUILD_TYPE=Release \
  -DMYCELIUM_BUILD_TESTS=OFF -DMYCELIUM_BUILD_FUZZ=OFF -DMYCELIUM_BUILD_BENCHMARKS=OFF \
  -DMYCELIUM_BUILD_OCAML=ON
export PATH="$BUILD_DIR/apps/trading_system:$BUILD_DIR/bindings/ocaml/bin:$PATH"
export PYTHONPATH="$ROOT/bindings/python:$BUILD_DIR/python:$BUILD_DIR/apps/trading_system/python:$ROOT/apps/trading_system/python${PYTHONPATH:+:$PYTHONPATH}"
echo "== mycelium-run plan apps/trading_system/topologies/isolated.toml"
"$BUILD_DIR/apps/mycelium-run" plan "$ROOT/apps/trading_system/topologies/isolated.toml"
SKIP_BUILD=1 BUILD_DIR="$BUILD_DIR" "$ROOT/scripts/run-trading-system.sh"
