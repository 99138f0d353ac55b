#!/usr/bin/env bash
# Runs the multi-language trading system (docs/deployment.md) under
# mycelium-run: C++ market data -> Python signals -> OCaml risk -> C++
# execution, then prints the tick-to-order latency per hop and end to end
# and writes a PNG plot per deployment.
#
#   scripts/run-trading-system.sh                  # fast, isolated, distributed
#   DEPLOYMENTS=isolated scripts/run-trading-system.sh
#   BARS=2000 RATE=0 scripts/run-trading-system.sh # fewer bars, unpaced
#   SKIP_BUILD=1 ...                               # use the existing build
#   BENCH=1 scripts/run-trading-system.sh          # benchmark mode: a synthetic
#       stream of 3 symbols, 20,000 bars at 2,000/s, a fast model (2/5 bars) so
#       that about every fifth bar makes an order; results and plots go to
#       benchmarks/results/trading-system-*
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
if [ -z "${SKIP_BUILD:-}" ]; then
  "$ROOT/scripts/install-deps.sh"
  BUILD_DIR="$BUILD_DIR" "$ROOT/scripts/build.sh" -DMYCELIUM_BUILD_TESTS=OFF \
    -DMYCELIUM_BUILD_FUZZ=OFF -DMYCELIUM_BUILD_BENCHMARKS=OFF -DMYCELIUM_BUILD_OCAML=ON
fi
RUN="$BUILD_DIR/apps/mycelium-run"
export PATH="$BUILD_DIR/apps/trading_system:$BUILD_DIR/bindings/ocaml/bin:$PATH"
export PYTHONPATH="$ROOT/bindings/python:$BUILD_DIR/python:$BUILD_DIR/apps/trading_system/python:$ROOT/apps/trading_system/python${PYTHONPATH:+:$PYTHONPATH}"
WORK="${WORK:-$(mktemp -d /tmp/mycelium-trading.XXXXXX)}"
DEPLOYMENTS="${DEPLOYMENTS:-fast isolated distributed}"
journals=()
for d in $DEPLOYMENTS; do
  src="$ROOT/apps/trading_system/topologies/$d.toml"
  [ -f "$src" ] || { echo "run-trading-system: no deployment '$d' ($src)" >&2; exit 2; }
  # The topology's relative paths are the source tree's; the copy runs in WORK.
  if [ -n "${BENCH:-}" ]; then
    sed -e "s|source = \"csv\", file = \"[^\"]*\", rate = 2000|source = \"synthetic\", symbols = [\"AAA\", \"BBB\", \"CCC\"], bars = ${BARS:-20000}, rate = ${RATE:-2000}|" \
        -e "s|fast = 10, slow = 30|fast = 2, slow = 5|" "$src" > "$WORK/$d.toml"
  else
    sed -e "s|\"../../../tests/|\"$ROOT/tests/|" \
        -e "s|rate = 2000|rate = ${RATE:-2000}|" \
        -e "s|source = \"csv\"|source = \"csv\", bars = ${BARS:-0}|" "$src" > "$WORK/$d.toml"
  fi
  echo "== mycelium-run $d.toml"
  "$RUN" "$WORK/$d.toml" --until-exit execution --quiet
  journals+=("$WORK/journal-$d.json")
done
echo "== tick-to-order latency ($WORK)"
if [ -n "${BENCH:-}" ]; then
  /usr/bin/python3 "$ROOT/apps/trading_system/report.py" "${journals[@]}" \
    --png-dir "$ROOT/benchmarks/results" --json "$ROOT/benchmarks/results/trading-system.json" \
    | tee "$ROOT/benchmarks/results/trading-system.txt"
else
  /usr/bin/python3 "$ROOT/apps/trading_system/report.py" "${journals[@]}"
fi
if [ ${#journals[@]} -gt 1 ]; then
  /usr/bin/python3 - "${journals[@]}" <<'PY'
import json, sys
js = [json.load(open(p)) for p in sys.argv[1:]]
same = all(j["fills"] == js[0]["fills"] and j["positions"] == js[0]["positions"] for j in js)
print("fills and final positions identical across %s: %s (%d fills, positions %s)"
      % (", ".join(j["deployment"] for j in js), "yes" if same else "NO",
         len(js[0]["fills"]), js[0]["positions"]))
sys.exit(0 if same else 1)
PY
fi
