#!/bin/sh
# CTest driver of mycelium_fuzz_smoke (see tests/fuzz/CMakeLists.txt).
#
#   run_fuzz_smoke.sh --skip "reason"               exits 77 (CTest: skipped)
#   run_fuzz_smoke.sh FUZZER SECONDS CORPUS WORKDIR
#
# Writes fresh seeds (FUZZER --write-seeds) to WORKDIR/seeds, then fuzzes for
# SECONDS seconds with WORKDIR/corpus as the (writable) working corpus and the
# seeds plus the checked-in CORPUS as read-only inputs. Exits non-zero on any
# crash, sanitizer report, leak, timeout or round-trip violation and prints the
# reproducer's bytes in hex.
set -u

if [ "${1:-}" = "--skip" ]; then
  echo "SKIPPED mycelium_fuzz_smoke: $2"
  exit 77
fi
if [ $# -ne 4 ]; then
  echo "usage: $0 FUZZER SECONDS CORPUS WORKDIR | --skip REASON" >&2
  exit 2
fi
fuzzer=$1 seconds=$2 corpus=$3 work=$4

if [ ! -x "$fuzzer" ]; then
  echo "FAIL: fuzz target $fuzzer was not built; build it with" \
       "'ninja mycelium_fuzz_decode' (or the default target)" >&2
  exit 1
fi

rm -rf "$work"
mkdir -p "$work/corpus" "$work/seeds" "$work/artifacts" || exit 1

"$fuzzer" --write-seeds="$work/seeds" || {
  echo "FAIL: $fuzzer --write-seeds failed" >&2
  exit 1
}

# A seed that no longer decodes means the checked-in corpus is stale or the
# codec changed; the fuzzer itself checks the round trip of every seed.
set -- "$work/corpus" "$work/seeds"
[ -d "$corpus" ] && set -- "$@" "$corpus"

echo "fuzzing $fuzzer for ${seconds}s; corpus: $*"
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=4096 -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$@" \
  > "$work/fuzz.log" 2>&1
rc=$?

# Keep the output short on success, complete on failure.
if [ $rc -eq 0 ]; then
  grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|INFO: seed corpus)' "$work/fuzz.log"
  echo "PASS: no crash in ${seconds}s (log: $work/fuzz.log)"
  exit 0
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
exit 1
