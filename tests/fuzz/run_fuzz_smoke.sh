#!/bin/sh
# CTest driver of mycelium_fuzz_smoke (see tests/fuzz/CMakeLists.txt).
#
#   run_fuzz_smoke.sh --skip "reason"          exits 77 (CTest: skipped)
#   run_fuzz_smoke.sh SECONDS WORKDIR FUZZER CORPUS [FUZZER CORPUS]...
#
# Fuzzes the targets one after the other, SECONDS in total: each gets an
# equal share (at least 1 s; the last one gets the remainder). For each
# target, writes fresh seeds (FUZZER --write-seeds) to WORKDIR/<name>/seeds,
# then fuzzes with WORKDIR/<name>/corpus as the (writable) working corpus and
# the seeds plus the checked-in CORPUS as read-only inputs. Every target runs
# even if an earlier one failed. Exits non-zero on any crash, sanitizer
# report, leak, timeout or property violation and prints the reproducer's
# bytes in hex.
set -u

if [ "${1:-}" = "--skip" ]; then
  echo "SKIPPED mycelium_fuzz_smoke: $2"
  exit 77
fi
if [ $# -lt 4 ] || [ $(( ($# - 2) % 2 )) -ne 0 ]; then
  echo "usage: $0 SECONDS WORKDIR FUZZER CORPUS [FUZZER CORPUS]... | --skip REASON" >&2
  exit 2
fi
total=$1 workdir=$2
shift 2
count=$(( $# / 2 ))
share=$(( total / count ))
[ "$share" -ge 1 ] || share=1

# fuzz_one FUZZER SECONDS CORPUS WORKDIR: 0 on success.
fuzz_one() {
  fuzzer=$1 seconds=$2 corpus=$3 work=$4
  if [ ! -x "$fuzzer" ]; then
    echo "FAIL: fuzz target $fuzzer was not built; build it with" \
         "'ninja $(basename "$fuzzer")' (or the default target)" >&2
    return 1
  fi
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/seeds" "$work/artifacts" || return 1

  "$fuzzer" --write-seeds="$work/seeds" || {
    echo "FAIL: $fuzzer --write-seeds failed" >&2
    return 1
  }

  # A seed that no longer passes means the checked-in corpus is stale or the
  # code changed; the fuzzer checks its properties on every seed.
  set -- "$work/corpus" "$work/seeds"
  [ -d "$corpus" ] && set -- "$@" "$corpus"

  echo "fuzzing $fuzzer for ${seconds}s; corpus: $*"
  "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$@" \
    > "$work/fuzz.log" 2>&1
  rc=$?

  # Keep the output short on success, complete on failure.
  if [ $rc -eq 0 ]; then
    grep -E '^(#[0-9]+[[:space:]]+DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|INFO: seed corpus)' "$work/fuzz.log"
    echo "PASS: $(basename "$fuzzer"): no crash in ${seconds}s (log: $work/fuzz.log)"
    return 0
  fi
  cat "$work/fuzz.log"
  echo
  echo "FAIL: $fuzzer exited with $rc"
  for f in "$work"/artifacts/*; do
    [ -f "$f" ] || continue
    echo "reproducer $f ($(wc -c < "$f") bytes), hex:"
    od -An -v -tx1 "$f" | tr -d ' \n'
    echo
    echo "reproduce with: $fuzzer $f"
  done
  return 1
}

failed=0
i=1
while [ $# -gt 0 ]; do
  seconds=$share
  [ $i -eq $count ] && seconds=$(( total - share * (count - 1) ))
  [ "$seconds" -ge 1 ] || seconds=1
  fuzz_one "$1" "$seconds" "$2" "$workdir/$(basename "$1")" || failed=1
  shift 2
  i=$(( i + 1 ))
done
exit $failed
