#!/usr/bin/env bash
# Integration test of mycelium-backtest: local sweep vs. the same sweep on two
# real worker processes (byte-identical results), Monte Carlo outputs, and the
# errors a user gets for bad input. Workers are started here, synchronised on
# the line they print when listening (with a timeout), and killed on any exit.
set -euo pipefail
BIN="$1"
DATA="$2"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

WORKER=""
start_worker() { # sets WORKER to host:port of a new worker (no subshell: PIDS must stick)
  local fd line
  exec {fd}< <(exec "$BIN" worker --port 0 --threads 1 "$@" 2>&1)
  PIDS+=("$!")
  read -r -t 30 -u "$fd" line || fail "worker did not report listening within 30 s"
  [[ "$line" =~ listening\ on\ (127\.0\.0\.1:[0-9]+)$ ]] || fail "unexpected worker output: $line"
  WORKER="${BASH_REMATCH[1]}"
}

cat > "$WORK/sweep.toml" <<TOML
[data]
source = "csv"
csv = "$DATA/sp500-2000.csv"
[strategy]
fee = 1.0
cash = 100000
[grid]
fast = { from = 5, to = 30, step = 5 }
slow = [40, 80, 120, 160]
[output]
rank_by = "sharpe"
TOML

echo "== local sweep"
"$BIN" sweep "$WORK/sweep.toml" --threads 2 --no-plots --output "$WORK/local" > "$WORK/local.txt"
grep -q "instances: 24" "$WORK/local.txt" || fail "local sweep summary: $(cat "$WORK/local.txt")"

echo "== distributed sweep on two worker processes"
start_worker; W1="$WORKER"
start_worker; W2="$WORKER"
echo "workers: $W1 $W2"
"$BIN" sweep "$WORK/sweep.toml" --no-plots --output "$WORK/remote" --workers "$W1,$W2" > "$WORK/remote.txt"
for f in results.csv summary.txt best_equity.csv best_fills.csv; do
  cmp "$WORK/local/$f" "$WORK/remote/$f" || fail "$f differs between local and distributed runs"
done
echo "distributed == local"

echo "== a worker that is not there"
set +e
out="$("$BIN" sweep "$WORK/sweep.toml" --no-plots --output "$WORK/x" --workers 127.0.0.1:1 2>&1)"
rc=$?
set -e
[ "$rc" = 2 ] || fail "unreachable worker: exit $rc, want 2"
grep -q "cannot reach worker 127.0.0.1:1" <<< "$out" || fail "unreachable worker message: $out"

echo "== workers authenticate drivers by a shared secret"
printf 'not-a-guessable-secret\n' > "$WORK/secret"
printf 'another-secret\n' > "$WORK/wrong"
set +e
out="$("$BIN" worker --host 0.0.0.0 --port 0 2>&1)"
rc=$?
set -e
[ "$rc" = 2 ] || fail "worker on 0.0.0.0 without a secret: exit $rc, want 2"
grep -q "refusing to listen on 0.0.0.0 without authentication" <<< "$out" \
  || fail "worker on 0.0.0.0 without a secret: $out"
start_worker --secret-file "$WORK/secret"; WS="$WORKER"
for driver in none wrong; do
  set +e
  if [ "$driver" = none ]; then
    out="$("$BIN" sweep "$WORK/sweep.toml" --no-plots --output "$WORK/y" --workers "$WS" 2>&1)"
  else
    out="$("$BIN" sweep "$WORK/sweep.toml" --no-plots --output "$WORK/y" --workers "$WS" \
           --secret-file "$WORK/wrong" 2>&1)"
  fi
  rc=$?
  set -e
  [ "$rc" != 0 ] || fail "a driver with secret '$driver' was accepted"
  case $driver in
    none) grep -q "this worker requires authentication" <<< "$out" || fail "no secret: $out" ;;
    wrong) grep -q "refused the proof" <<< "$out" || fail "wrong secret: $out" ;;
  esac
done
"$BIN" sweep "$WORK/sweep.toml" --no-plots --output "$WORK/auth" --workers "$WS" \
  --secret-file "$WORK/secret" > "$WORK/auth.txt"
cmp "$WORK/local/results.csv" "$WORK/auth/results.csv" || fail "authenticated run differs"
echo "authenticated driver == local; unauthenticated and wrong-secret drivers refused"

echo "== monte carlo"
cat > "$WORK/mc.toml" <<TOML
[model]
source = "bootstrap"
csv = "$DATA/sp500-2000.csv"
days = 20
s0 = 100
[simulation]
paths = 2000
seed = 5
[portfolio]
strategy = "buy_and_hold"
cash = 100000
fee = 1
TOML
"$BIN" montecarlo "$WORK/mc.toml" --no-plots --output "$WORK/mc" > "$WORK/mc.txt"
grep -q "VaR 95%" "$WORK/mc/risk.txt" || fail "risk.txt: $(cat "$WORK/mc/risk.txt")"
[ "$(wc -l < "$WORK/mc/pnl.csv")" = 2001 ] || fail "pnl.csv should have 2000 rows"

echo "== bad input"
set +e
out="$("$BIN" sweep "$WORK/missing.toml" 2>&1)"; rc=$?
set -e
[ "$rc" = 2 ] || fail "missing config: exit $rc"
grep -q "missing.toml" <<< "$out" || fail "missing config message: $out"
printf '[grid]\nfsat = [1, 2]\n' > "$WORK/typo.toml"
set +e
out="$("$BIN" sweep "$WORK/typo.toml" 2>&1)"; rc=$?
set -e
[ "$rc" = 2 ] || fail "typo config: exit $rc"
grep -q "typo.toml:2" <<< "$out" || fail "typo config should name file:line: $out"
grep -q "fsat" <<< "$out" || fail "typo config should name the field: $out"
for sub in "" sweep montecarlo worker; do
  "$BIN" $sub --help > /dev/null || fail "--help for '$sub'"
done
echo "1 passed, 0 failed"
