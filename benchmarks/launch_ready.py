#!/usr/bin/python3
"""Time from `mycelium-run` start to "all N nodes ready", and to a clean stop.

For N nodes (default 1, 4, 16), each running one example.executor service,
all on this host and linked as a full mesh over Unix sockets (or --kind shm),
runs the launcher R times and reports median / min / max of:

  ready  launch -> the launcher's "all N nodes ready" line (measured here)
  stop   SIGTERM -> the launcher's exit (every node stopped cleanly)

Raw baseline in the same run, alternating: starting the same N node
processes with `--list-types` (exec, load, exit; no actor system) in
parallel and waiting for all of them.

  benchmarks/launch_ready.py --run build/apps/mycelium-run \
      --node build/apps/examples/mycelium-example-node [--nodes 1,4,16] [--rounds 5]
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def topology(tmp, n, kind, node):
    lines = [f'socket_dir = "{tmp}/run"', f'binary = "{node}"', ""]
    for i in range(n):
        lines += ["[[nodes]]", f'name = "n{i}"', f'services = ["x{i}"]',
                  f'endpoint = {{ kind = "{kind}" }}', ""]
    for i in range(n):
        lines += [f"[services.x{i}]", 'type = "example.executor"', ""]
    path = os.path.join(tmp, f"bench-{n}.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def one_launch(run, path, n):
    t0 = time.monotonic()
    p = subprocess.Popen([run, path, "--quiet"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    # --quiet hides the launcher's lines; the nodes' "ready" lines remain.
    ready = 0
    for line in p.stdout:
        if line.rstrip().endswith("] ready"):
            ready += 1
            if ready == n:
                break
    t_ready = time.monotonic() - t0
    t1 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    for _ in p.stdout:
        pass
    rc = p.wait(timeout=120)
    t_stop = time.monotonic() - t1
    if ready != n or rc != 0:
        sys.exit(f"launch of {n} nodes failed: {ready} ready, exit {rc}")
    return t_ready, t_stop


def raw_start(node, n):
    t0 = time.monotonic()
    ps = [subprocess.Popen([node, "--list-types"], stdout=subprocess.DEVNULL)
          for _ in range(n)]
    for p in ps:
        p.wait()
    return time.monotonic() - t0


def stats(xs):
    return {"median_ms": statistics.median(xs) * 1e3, "min_ms": min(xs) * 1e3,
            "max_ms": max(xs) * 1e3}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--nodes", default="1,4,16")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--kind", default="unix", choices=["unix", "shm"])
    ap.add_argument("--json", default="benchmarks/results/launch.json")
    a = ap.parse_args()
    node = os.path.abspath(a.node)
    results = []
    with tempfile.TemporaryDirectory(prefix="myc-launch-") as tmp:
        print(f"{'nodes':>5} {'links':>5} | {'raw start med':>13} | {'ready med':>9} "
              f"{'min':>7} {'max':>7} | {'ratio':>5} | {'stop med':>8} {'min':>7} {'max':>7}")
        for n in [int(x) for x in a.nodes.split(",")]:
            path = topology(tmp, n, a.kind, node)
            ready, stop, raw = [], [], []
            one_launch(a.run, path, n)  # warm-up (page cache)
            for _ in range(a.rounds):
                raw.append(raw_start(node, n))
                r, s = one_launch(a.run, path, n)
                ready.append(r)
                stop.append(s)
            rs, rd, st = stats(raw), stats(ready), stats(stop)
            ratio = rd["median_ms"] / rs["median_ms"]
            print(f"{n:>5} {n * (n - 1) // 2:>5} | {rs['median_ms']:>10.1f} ms | "
                  f"{rd['median_ms']:>6.1f} ms {rd['min_ms']:>7.1f} {rd['max_ms']:>7.1f} | "
                  f"{ratio:>5.1f} | {st['median_ms']:>5.1f} ms {st['min_ms']:>7.1f} "
                  f"{st['max_ms']:>7.1f}")
            results.append({"nodes": n, "links": n * (n - 1) // 2, "kind": a.kind,
                            "rounds": a.rounds, "raw_start": rs, "ready": rd,
                            "stop": st, "ratio_ready_to_raw": ratio})
    os.makedirs(os.path.dirname(a.json) or ".", exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"benchmark": "launch_ready", "results": results}, f, indent=2)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
