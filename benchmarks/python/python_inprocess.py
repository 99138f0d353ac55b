#!/usr/bin/python3
"""Benchmark of the pybind11 runtime (issue 12): each figure beside a bare
pybind11 call and the C++ <-> C++ figure from the same run.

  in process   mycelium-bench-py-node (Python embedded in a C++ node):
               - a bare pybind11 call, `encode()` of a 16-byte-field ping,
                 and `Service.publish` (the call itself, a C++ subscriber);
               - Python publish -> C++ handler entry (one way);
               - C++ publish -> Python handler entry (one way);
               - the same two hops between two C++ services of that node.
  shm          round trips between this Python process (mycelium.Node with a
               shared-memory link) and a C++ mycelium-link-peer that echoes,
               beside C++ <-> C++ round trips through the same kind of link
               (mycelium-link-peer --rtt against the same echo peer).

One-way samples are handler entry minus the publisher's CLOCK_MONOTONIC
stamp. Prints median, p99, p99.9 per path and the ratios, and writes JSON
(default benchmarks/results/python-inprocess.json) and a text table.

    PYTHONPATH=bindings/python:build/python:build/tests/python/generated:benchmarks/python \\
      /usr/bin/python3 benchmarks/python/python_inprocess.py --build build
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
PY_WAIT = os.environ.get("PY_WAIT", "busy_poll")
PY_SPIN = float(os.environ.get("PY_SPIN", "0.0001"))


def summary(ns: List[int]) -> Dict[str, float]:
    s = sorted(ns)

    def pct(p: float) -> float:
        return s[min(len(s) - 1, int(p * len(s)))] / 1000.0

    return {"median_us": statistics.median(s) / 1000.0, "p99_us": pct(0.99),
            "p999_us": pct(0.999), "n": len(s)}


def in_process(build: str, rounds: int, calls: int, pin: str, placement: str,
               py_cpu: Optional[int] = None) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="myc-pybench-") as d:
        out = {k: os.path.join(d, k) for k in ("driver.json", "reflector.txt", "a.txt", "b.txt")}
        topo = os.path.join(d, "bench.toml")
        with open(topo, "w") as f:
            f.write('''socket_dir = "%s/sock"
[[nodes]]
name = "bench"
services = ["reflector", "cpp_a", "cpp_b", "driver"]
[services.reflector]
type = "bench.reflector"
placement = "%s"
params = { out = "%s" }
[services.cpp_a]
type = "bench.cpp_a"
placement = "%s"
params = { out = "%s" }
[services.cpp_b]
type = "bench.cpp_b"
placement = "%s"
params = { out = "%s" }
[services.driver]
type = "python:bench_py_services:Driver"
params = { rounds = %d, calls = %d, out = "%s"%s }
''' % (d, placement, out["reflector.txt"], placement, out["a.txt"], placement, out["b.txt"],
       rounds, calls, out["driver.json"], "" if py_cpu is None else ", cpu = %d" % py_cpu))
        cmd = [os.path.join(build, "apps", "mycelium-run"), "run", topo, "--quiet", "--binary",
               os.path.join(build, "benchmarks", "mycelium-bench-py-node"), "--until-exit", "driver"]
        if pin:
            cmd = ["taskset", "-c", pin] + cmd
        subprocess.run(cmd, check=True, timeout=600)
        with open(out["driver.json"]) as f:
            drv = json.load(f)

        def samples(name: str) -> List[int]:
            with open(out[name]) as f:
                return [int(x) for x in f.read().split()]

        res: Dict[str, Any] = {
            "bare_pybind11_call_ns": drv["noop_ns"],
            "clock_read_ns": drv["clock_ns"],
            "encode_ping_ns": drv["encode_ns"],
            "publish_call_ns": drv["publish_ns"],
            "publish_codec_ns": drv["publish_codec_ns"],
            "bridged": drv["bridged"],
            "placement": placement,
            "publish_bytes_ns": drv["publish_bytes_ns"],
            "publish_no_subscriber_ns": drv["publish_nosub_ns"],
            "py_to_cpp": summary(samples("reflector.txt")[rounds // 10:]),
            "cpp_to_py": summary(drv["cpp_to_py_ns"][rounds // 10:]),
            "cpp_to_cpp": summary(samples("b.txt")[rounds // 10:] + samples("a.txt")[rounds // 10:]),
        }
        return res


def shm_round_trips(build: str, rounds: int, pin: str) -> Dict[str, Any]:
    import link_test as lt
    import mycelium
    peer_bin = os.path.join(build, "tests", "conformance", "mycelium-link-peer")
    with tempfile.TemporaryDirectory(prefix="myc-pyshm-") as d:
        path = os.path.join(d, "echo.shm")
        pre = ["taskset", "-c", pin.split(",")[0]] if pin else []
        echo = subprocess.Popen(pre + [peer_bin, "--kind", "shm", "--listen", path, "--name", "echo",
                                       "--services", "echo", "--wait", "busy_poll", "--placement", "loop",
                                       "--node-defaults"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert echo.stdout is not None
            line = echo.stdout.readline()
            assert "ready" in line, line
            # C++ <-> C++ through the same echo.
            pre2 = ["taskset", "-c", pin.split(",")[-1]] if pin else []
            r = subprocess.run(pre2 + [peer_bin, "--kind", "shm", "--connect", path, "--services",
                                       "none", "--rtt", str(rounds), "--rtt-size", "16", "--wait",
                                       "busy_poll", "--placement", "loop", "--node-defaults", "--name", "cpp-rtt"],
                               capture_output=True, text=True, timeout=600, check=True)
            cpp = [int(x) for x in r.stdout.split("rtt ns", 1)[1].split()]
            # Python <-> C++, with the schema's native module (the bridge:
            # C++ structs in the runtime) and without it (the pure-Python
            # codec), against the same echo.
            # Not pinned: this process has two busy threads (the caller,
            # polling its queue, and the link's I/O loop); on one CPU they
            # would take turns of a scheduler slice.
            py = {"native": py_round_trips(lt, path, rounds, True),
                  "codec": py_round_trips(lt, path, rounds, False),
                  "not_lent": py_round_trips(lt, path, rounds, True, lend=False)}
        finally:
            assert echo.stdin is not None
            echo.stdin.close()
            echo.wait(timeout=30)
    return {"cpp_cpp": summary(cpp[rounds // 10:]), "py_cpp": summary(py["native"][rounds // 10:]),
            "py_cpp_codec": summary(py["codec"][rounds // 10:]),
            "py_cpp_not_lent": summary(py["not_lent"][rounds // 10:])}


def py_round_trips(lt: Any, path: str, rounds: int, native: bool, lend: bool = True) -> List[int]:
    """Round trips of 16-byte pings from a mycelium.Node in this process
    (`lend`: the waiting get runs the node's loop, docs/python.md section 8)."""
    import mycelium
    node = mycelium.Node("py-rtt", lt, native=native, lend_loop=lend)
    try:
        assert node.native == native
        pongs = node.subscribe(lt.pong, spin=0.001)
        lk = node.connect("shm", path, wait=PY_WAIT, spin=PY_SPIN)
        assert lk.wait_up(20) and lk.wait_peer_interest(lt.ping, 20)
        payload = b"\x5a" * 16
        clock = time.monotonic_ns
        out: List[int] = []
        for i in range(rounds):
            t0 = clock()
            node.publish(lt.ping(seq=i, payload=payload))
            pongs.get(timeout=10)
            out.append(clock() - t0)
        return out
    finally:
        node.stop()


def median_of(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Per figure, the median over the runs (this VM's speed drifts between
    runs by up to 2x; one run is not a measurement)."""
    out: Dict[str, Any] = {}
    for k, v in runs[0].items():
        if isinstance(v, dict):
            out[k] = {f: statistics.median(r[k][f] for r in runs) for f in v}
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = statistics.median(r[k] for r in runs)
        else:
            out[k] = v
    return out


def shm_lines(shm: Dict[str, Any], runs: int) -> List[str]:
    lines = ["shm round trips, 16 B, busy_poll, us%s   median      p99    p99.9"
             % (" (median of %d runs)" % runs if runs > 1 else "")]
    for k, label in (("cpp_cpp", "C++ <-> C++"), ("py_cpp", "Python <-> C++ (native module)"),
                     ("py_cpp_codec", "Python <-> C++ (pure-Python codec)"),
                     ("py_cpp_not_lent", "Python <-> C++ (native, loop not lent)")):
        s = shm[k]
        lines.append("  %-36s %8.2f %8.2f %8.2f" % (label, s["median_us"], s["p99_us"], s["p999_us"]))
    lines.append("  Python adds %.2f us per round trip (median; %.2f with the codec, %.2f with "
                 "the loop not lent)"
                 % (shm["py_cpp"]["median_us"] - shm["cpp_cpp"]["median_us"],
                    shm["py_cpp_codec"]["median_us"] - shm["cpp_cpp"]["median_us"],
                    shm["py_cpp_not_lent"]["median_us"] - shm["cpp_cpp"]["median_us"]))
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default="build", help="the CMake build directory")
    p.add_argument("--rounds", type=int, default=20000)
    p.add_argument("--calls", type=int, default=200000)
    p.add_argument("--pin", default="", help="CPUs to pin to, e.g. 0,1 (taskset -c)")
    p.add_argument("--py-cpu", type=int, default=None,
                   help="in process: the CPU of the Python driver's thread (its param cpu)")
    p.add_argument("--placement", default="loop", choices=("loop", "pool"),
                   help="where the C++ services of the in-process run sit (default loop)")
    p.add_argument("--repeat", type=int, default=3,
                   help="in-process runs; the table shows each figure's median over them")
    p.add_argument("--shm-only", action="store_true",
                   help="only the shared-memory round trips, --repeat times (JSON default "
                        "benchmarks/results/python-shm.json)")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if a.json is None:
        a.json = os.path.join(HERE, "..", "results",
                              "python-shm.json" if a.shm_only else "python-inprocess.json")
    a.build = os.path.abspath(a.build)
    # mycelium-run starts the node in the topology's directory.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        os.path.abspath(x) for x in os.environ.get("PYTHONPATH", "").split(os.pathsep) if x)
    if a.shm_only:
        shm_runs = [shm_round_trips(a.build, a.rounds, a.pin) for _ in range(max(1, a.repeat))]
        text = "\n".join(shm_lines(median_of(shm_runs), len(shm_runs)) + [
            "  per run, Python adds (native / codec): " + ", ".join(
                "%.2f / %.2f" % (r["py_cpp"]["median_us"] - r["cpp_cpp"]["median_us"],
                                 r["py_cpp_codec"]["median_us"] - r["cpp_cpp"]["median_us"])
                for r in shm_runs)])
        print(text)
        with open(a.json, "w") as f:
            json.dump({"shm": median_of(shm_runs), "shm_runs": shm_runs, "rounds": a.rounds,
                       "when": time.strftime("%Y-%m-%d %H:%M")}, f, indent=1)
        with open(os.path.splitext(a.json)[0] + ".txt", "w") as f:
            f.write(text + "\n")
        return 0
    runs = [in_process(a.build, a.rounds, a.calls, a.pin, a.placement, a.py_cpu)
            for _ in range(max(1, a.repeat))]
    res = {"in_process": median_of(runs), "in_process_runs": runs,
           "shm": shm_round_trips(a.build, a.rounds, a.pin),
           "rounds": a.rounds, "pin": a.pin, "when": time.strftime("%Y-%m-%d %H:%M")}
    ip, shm = res["in_process"], res["shm"]
    lines = [
        "Python in process (embedded), %d rounds, pin %s, C++ services on the %s; "
        "median of %d runs" % (a.rounds, a.pin or "none", a.placement, len(runs)),
        "  bare pybind11 call      %8.0f ns" % ip["bare_pybind11_call_ns"],
        "  encode() of a ping      %8.0f ns" % ip["encode_ping_ns"],
        "  Service.publish call    %8.0f ns  (%.1fx a bare call; %s)"
        % (ip["publish_call_ns"], ip["publish_call_ns"] / ip["bare_pybind11_call_ns"],
           "the bridge: no encoding" if ip["bridged"] else "NOT bridged: encoded"),
        "    the same through the codec (encode + bytes) %6.0f ns" % ip["publish_codec_ns"],
        "    of which: pre-encoded bytes %6.0f ns; no subscriber (no hand-off) %6.0f ns"
        % (ip["publish_bytes_ns"], ip["publish_no_subscriber_ns"]),
        "  one way, us             median      p99    p99.9",
    ]
    for k, label in (("py_to_cpp", "Python -> C++"), ("cpp_to_py", "C++ -> Python"),
                     ("cpp_to_cpp", "C++ -> C++ (same run)")):
        s = ip[k]
        lines.append("  %-22s %8.2f %8.2f %8.2f" % (label, s["median_us"], s["p99_us"], s["p999_us"]))
    lines.append("  ratio py->cpp / cpp->cpp median: %.2f" % (ip["py_to_cpp"]["median_us"]
                                                           / ip["cpp_to_cpp"]["median_us"]))
    lines.append("  per run: publish call %s ns; py->cpp %s us; cpp->py %s us; bare call %s ns" % (
        ", ".join("%.0f" % r["publish_call_ns"] for r in runs),
        ", ".join("%.2f" % r["py_to_cpp"]["median_us"] for r in runs),
        ", ".join("%.2f" % r["cpp_to_py"]["median_us"] for r in runs),
        ", ".join("%.0f" % r["bare_pybind11_call_ns"] for r in runs)))
    lines += shm_lines(shm, 1)
    text = "\n".join(lines)
    print(text)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.splitext(a.json)[0] + ".txt", "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
