#!/usr/bin/env bash
# The single-language trading example (apps/examples/trading): installs
# dependencies, builds, and runs
# it under mycelium-run: the trading example as three
# processes on this host (apps/examples/trading/topologies/three-processes.toml),
# showing `mycelium-run plan` first and `mycelium-run status` while it runs.
#
#   scripts/run-trading-example.sh                      # three processes
#   TOPOLOGY=one-process scripts/run-trading-example.sh # or distributed
#   scripts/run-trading-example.sh --json               # extra args go to mycelium-run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/install-deps.sh"
BUILD_DIR="$BUILD_DIR" "$ROOT/scripts/build.sh" -DCMAKE_BUILD_TYPE=Release \
  -DMYCELIUM_BUILD_TESTS=OFF -DMYCELIUM_BUILD_FUZZ=OFF -DMYCELIUM_BUILD_BENCHMARKS=OFF \
  -DMYCELIUM_BUILD_OCAML=OFF
RUN="$BUILD_DIR/apps/mycelium-run"
export PATH="$BUILD_DIR/apps/examples:$PATH"   # the topology names mycelium-example-node
WORK="${WORK:-$(mktemp -d /tmp/mycelium-example.XXXXXX)}"
cp "$ROOT"/apps/examples/trading/topologies/*.toml "$WORK/"
TOPO="$WORK/${TOPOLOGY:-three-processes}.toml"

echo "== mycelium-run plan $TOPO"
"$RUN" plan "$TOPO"

echo "== mycelium-run $TOPO --until-exit journal"
"$RUN" "$TOPO" --until-exit journal "$@" &
launcher=$!
trap 'kill $launcher 2>/dev/null || true' EXIT
# Ask for the status once every node is ready (the launcher answers on its
# control socket; give it up to 30 s to get there).
for _ in $(seq 300); do
  if out=$("$RUN" status "$TOPO" 2>/dev/null) && grep -q " running for " <<< "$out"; then
    echo "== mycelium-run status $TOPO"
    echo "$out"
    break
  fi
  kill -0 $launcher 2>/dev/null || break
  sleep 0.1
done
wait $launcher
trap - EXIT
echo "== the journal the deployment wrote ($WORK)"
tail -n 3 "$WORK"/journal-*.txt
