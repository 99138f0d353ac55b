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

With --daemon, node n0 is on 127.0.0.1 and the others on "host" 127.0.0.2,
linked over TCP; each round then launches that deployment twice: with its
nodes as local processes, and through a node daemon serving 127.0.0.2 (one
daemon, started once per N), so the daemon's cost shows beside the same
TCP mesh.

  benchmarks/launch_ready.py --run build/apps/mycelium-run \
      --node build/apps/examples/mycelium-example-node [--nodes 1,4,16] [--rounds 5]
      [--daemon]
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def topology(tmp, n, kind, node, hosts=False, daemon_port=None):
    """N nodes; with `hosts`, n0 on 127.0.0.1 and the rest on 127.0.0.2 (TCP),
    and with `daemon_port` those started through the daemon there."""
    lines = [f'socket_dir = "{tmp}/run"', f'binary = "{node}"', ""]
    for i in range(n):
        lines += ["[[nodes]]", f'name = "n{i}"', f'services = ["x{i}"]']
        if hosts:
            lines += [f'host = "{"127.0.0.1" if i == 0 else "127.0.0.2"}"',
                      f"port = {free_port()}", ""]
        else:
            lines += [f'endpoint = {{ kind = "{kind}" }}', ""]
    for i in range(n):
        lines += [f"[services.x{i}]", 'type = "example.executor"', ""]
    if daemon_port is not None:
        lines += ["[[daemons]]", 'host = "127.0.0.2"', f"port = {daemon_port}", ""]
    suffix = "" if not hosts else "-tcp" if daemon_port is None else "-daemon"
    path = os.path.join(tmp, f"bench-{n}{suffix}.toml")
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


def daemon_rounds(a, node, tmp):
    """Per N: the TCP mesh as local processes, then through a daemon."""
    print(f"{'nodes':>5} | {'processes: ready med':>20} {'stop med':>8} | "
          f"{'daemon: ready med':>17} {'stop med':>8} | {'ready ratio':>11}")
    results = []
    for n in [int(x) for x in a.nodes.split(",")]:
        port = free_port()
        d = subprocess.Popen([node, "--serve", f"127.0.0.2:{port}"], cwd=tmp,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            if "listening on" not in d.stdout.readline():
                sys.exit("the node daemon did not start")
            local = topology(tmp, n, "tcp", node, hosts=True)
            remote = topology(tmp, n, "tcp", node, hosts=True, daemon_port=port)
            one_launch(a.run, local, n)  # warm-up
            one_launch(a.run, remote, n)
            runs = {"processes": ([], []), "daemon": ([], [])}
            for _ in range(a.rounds):
                for key, path in (("processes", local), ("daemon", remote)):
                    r, s = one_launch(a.run, path, n)
                    runs[key][0].append(r)
                    runs[key][1].append(s)
        finally:
            d.send_signal(signal.SIGTERM)
            d.wait(timeout=60)
            d.stdout.close()
        row = {"nodes": n, "rounds": a.rounds, "daemon_nodes": n - 1}
        for key, (ready, stop) in runs.items():
            row[key] = {"ready": stats(ready), "stop": stats(stop)}
        ratio = row["daemon"]["ready"]["median_ms"] / row["processes"]["ready"]["median_ms"]
        row["ratio_ready_daemon_to_processes"] = ratio
        print(f"{n:>5} | {row['processes']['ready']['median_ms']:>17.1f} ms "
              f"{row['processes']['stop']['median_ms']:>5.1f} ms | "
              f"{row['daemon']['ready']['median_ms']:>14.1f} ms "
              f"{row['daemon']['stop']['median_ms']:>5.1f} ms | {ratio:>11.2f}")
        results.append(row)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--nodes", default="1,4,16")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--kind", default="unix", choices=["unix", "shm"])
    ap.add_argument("--daemon", action="store_true",
                    help="compare local TCP node processes with nodes in a daemon")
    ap.add_argument("--json", default=None,
                    help="default benchmarks/results/launch.json, or "
                         "launch-daemon.json with --daemon")
    a = ap.parse_args()
    if a.json is None:
        a.json = "benchmarks/results/launch-daemon.json" if a.daemon \
            else "benchmarks/results/launch.json"
    node = os.path.abspath(a.node)
    results = []
    with tempfile.TemporaryDirectory(prefix="myc-launch-") as tmp:
        if a.daemon:
            results = daemon_rounds(a, node, tmp)
        else:
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
