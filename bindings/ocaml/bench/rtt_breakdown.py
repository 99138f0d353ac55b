#!/usr/bin/python3
"""Where the CPU time of each client's round trip goes, from a perf profile
of one bench_rtt round (docs/benchmarks.md, OCaml section).

  perf record -F 4000 -o rtt.data -- bench_rtt.exe --peer PEER --kind shm \
      --count 100000 --rounds 1 --sizes 65536 --echo-cpu 0 --client-cpu 1
  perf script -i rtt.data -F pid,tid,time,ip,sym | \
      bindings/ocaml/bench/rtt_breakdown.py --round-trips 100000

With --rounds 1 the OCaml client runs first, then the C++ client (a second
mycelium-link-peer process), then bench_rtt's in-process measurements. The
script finds the three processes (bench_rtt.exe by its first sample, the
echo node as the peer process sampled from start to end, the C++ client as
the other one), takes the OCaml client's samples from its start to the C++
client's first sample and the C++ client's samples, sorts their symbols
into a few groups and prints microseconds of CPU per round trip (both
clients spin while they wait, so "poll / spin" is mostly waiting for the
echo). Sampling frequency: --freq (4000 Hz, as recorded).
"""

import argparse
import collections
import sys

GROUPS = [
    ("copy (memmove)", ["memmove", "memcpy"]),
    ("major GC and major-heap allocation",
     ["mark_slice", "caml_darken", "sweep_slice", "caml_major", "caml_alloc_shr", "bf_", "caml_page_table",
      "caml_fl_", "caml_compact", "invert_pointer", "do_compaction"]),
    ("minor GC", ["oldify", "caml_empty_minor", "caml_minor", "caml_gc_dispatch"]),
    ("poll / spin / event loop",
     ["cpu_relax", "load_acquire", "Ring.peek", "poll_turns", "poll_ring", "is_closed", "is_up", "Socket_link.loop",
      "Socket_link.go_", "epoll", "ev_run", "ev_invoke", "Lwt_main", "wakeup_paused", "Lwt_sequence", "syscall",
      "fdget", "getpid", "task_pid", "gettimeofday", "clock_gettime", "Lwt_engine", "x64_sys", "__rcu",
      "io_loop::run", "poll_pollers", "shm_endpoint::poll", "shm_endpoint::take", "run_posted",
      "num_socket_handlers", "poll_once", "fput", "_raw_spin"]),
]


def group(sym):
    for name, keys in GROUPS:
        if any(k in sym for k in keys):
            return name
    return "other (decode, encode, dispatch, Lwt)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--round-trips", type=int, required=True, help="round trips per client (--count of bench_rtt)")
    ap.add_argument("--freq", type=float, default=4000.0, help="perf record -F")
    a = ap.parse_args()
    rows = []
    for line in sys.stdin:
        parts = line.split()
        if len(parts) < 3 or "/" not in parts[0]:
            continue
        pid = parts[0].split("/")[0]
        t = float(parts[1].rstrip(":"))
        sym = parts[3] if len(parts) > 3 else parts[2]
        rows.append((pid, t, sym))
    if not rows:
        sys.exit("rtt_breakdown: no samples on stdin (perf script -F pid,tid,time,ip,sym)")
    first, last = {}, {}
    for pid, t, _ in rows:
        first.setdefault(pid, t)
        last[pid] = t
    ocaml = rows[0][0]  # bench_rtt.exe starts the others
    t0, t1 = rows[0][1], rows[-1][1]
    others = [p for p in first if p != ocaml and sum(1 for r in rows if r[0] == p) > 100]
    echo = min(others, key=lambda p: (first[p] - t0) - (last[p] - t1))
    client = max((p for p in others if p != echo), key=lambda p: sum(1 for r in rows if r[0] == p))
    for label, pid, lo, hi in [("OCaml client", ocaml, t0, first[client]),
                               ("C++ client", client, first[client], last[client] + 1)]:
        c = collections.Counter(group(s) for p, t, s in rows if p == pid and lo <= t < hi)
        n = sum(c.values())
        print(f"{label} (pid {pid}): {n} samples, {n / a.freq:.2f} s of CPU")
        for g, v in c.most_common():
            print(f"  {g:40s} {v / a.freq / a.round_trips * 1e6:6.2f} us per round trip")


if __name__ == "__main__":
    main()
