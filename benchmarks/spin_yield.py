#!/usr/bin/env python3
"""Round trips between two processes that share one CPU, the receiver idle
between them: what a spinning wait costs the process it keeps off the CPU
(docs/benchmarks.md, "Spinning waits yield").

A C++ echo node and the `--rtt` driver of mycelium-link-peer, both pinned
to one CPU (taskset), over a shared-memory link. After each pong the
driver waits `gap` microseconds (busy, in its handler) before the next
ping, so that the echo's loop goes idle and, past its spin, sleeps. While
the driver then spins for the pong (spin_then_block, 100 us), the echo it
woke needs the same CPU: a spin that never yields keeps it off until the
spin ends. `block` (no spin) is the baseline of the same run.

  /usr/bin/python3 benchmarks/spin_yield.py --build build [--cpu 0] [--count 2000]
      [--json benchmarks/results/spin-yield.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Dict, List


def round_trips(peer: str, cpu: int, wait: str, gap_us: int, count: int) -> List[int]:
    with tempfile.TemporaryDirectory(prefix="myc-spin-yield-") as d:
        path = os.path.join(d, "echo.shm")
        pin = ["taskset", "-c", str(cpu)]
        echo = subprocess.Popen(pin + [peer, "--kind", "shm", "--listen", path, "--name", "echo",
                                       "--services", "echo", "--wait", wait, "--placement", "loop",
                                       "--node-defaults"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            assert echo.stdout is not None
            line = echo.stdout.readline()
            if "ready" not in line:
                raise RuntimeError("the echo node did not start: %r" % line)
            r = subprocess.run(pin + [peer, "--kind", "shm", "--connect", path, "--services", "none",
                                      "--rtt", str(count), "--rtt-size", "16", "--wait", wait,
                                      "--placement", "loop", "--node-defaults", "--name", "rtt",
                                      "--rtt-gap-us", str(gap_us)],
                               capture_output=True, text=True, timeout=300, check=True)
            return [int(x) for x in r.stdout.split("rtt ns", 1)[1].split()]
        finally:
            assert echo.stdin is not None
            echo.stdin.close()
            echo.wait(timeout=30)


def summary(v: List[int]) -> Dict[str, float]:
    v = sorted(v[len(v) // 10:])  # without the warm-up tenth
    n = len(v)
    return {"median_us": statistics.median(v) / 1e3, "p90_us": v[int(n * 0.9)] / 1e3,
            "p99_us": v[int(n * 0.99)] / 1e3, "n": n}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default="build", help="the build directory (default build)")
    p.add_argument("--cpu", type=int, default=0, help="the CPU both processes share (default 0)")
    p.add_argument("--count", type=int, default=2000, help="round trips per case (default 2000)")
    p.add_argument("--json", help="also write the results as JSON")
    a = p.parse_args()
    peer = os.path.join(a.build, "tests", "conformance", "mycelium-link-peer")
    if not os.access(peer, os.X_OK):
        print("spin_yield: %s not found: build the project first (--build DIR)" % peer,
              file=sys.stderr)
        return 2
    res: Dict[str, Any] = {"cpu": a.cpu, "count": a.count, "cases": []}
    print("one CPU, shm, 16 B, us          median      p90      p99")
    for wait, gap in (("block", 300), ("spin_then_block", 300), ("spin_then_block", 0),
                      ("busy_poll", 300)):
        s = summary(round_trips(peer, a.cpu, wait, gap, a.count))
        res["cases"].append({"wait": wait, "gap_us": gap, **s})
        print("  %-16s gap %3d us %8.1f %8.1f %8.1f" % (wait, gap, s["median_us"], s["p90_us"],
                                                       s["p99_us"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
