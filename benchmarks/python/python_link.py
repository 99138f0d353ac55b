#!/usr/bin/python3
"""Benchmark of the pure-Python package (bindings/python), each figure beside
its raw baseline from the same run (DESIGN.md, "Benchmarks protocol"):

  codec   generated `encode()` / `decode()` of a message vs `struct` packing
          and unpacking the same bytes with a precompiled format (the least
          Python can do to produce or read those bytes)
  link    ping/pong round trips between this process and a C++
          mycelium-link-peer over Unix and TCP: `Link.publish` +
          `Subscription.get` vs a raw client on the same peer that sends
          pre-built frames and reads the answer with `recv_into` (same
          handshake, no decoding, no threads). Round trip, alternating rounds.

Prints median, p99, p99.9, max and msg/s per path and the ratio, and writes
JSON (default benchmarks/results/python.json). The peer runs CAF's default
scheduler settings (mycelium-link-peer has no option for them), which add
about 250 us to every round trip for both paths alike (docs/configuration.md).

    PYTHONPATH=bindings/python:build/tests/python/generated \\
      /usr/bin/python3 benchmarks/python/python_link.py --peer build/tests/conformance/mycelium-link-peer
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List

import link_test as lt
import test_messages as tm
from mycelium import link, protocol
from mycelium.codec import HEADER


def summary(ns: List[int]) -> Dict[str, float]:
    s = sorted(ns)

    def pct(p: float) -> float:
        return s[min(len(s) - 1, int(p * len(s)))] / 1000.0

    return {"median_us": statistics.median(s) / 1000.0, "p99_us": pct(0.99), "p999_us": pct(0.999),
            "max_us": s[-1] / 1000.0, "msgs_per_s": 1e9 * len(s) / sum(s), "n": len(s)}


def time_calls(fn: Callable[[], Any], n: int) -> List[int]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def bench_codec(n: int, rounds: int) -> Dict[str, Any]:
    o = tm.order(leg=tm.leg(venue="XNAS", qty=100), side=tm.side.buy, px=101.25)
    payload = o.encode()
    # the same 38 bytes with one precompiled struct: tags, lengths and values
    raw = struct.Struct("<HI HI4s HI HI Hd")
    args = (0x0C, 16, 0x0C, 4, b"XNAS", 0x12, 100, 0x12, 1, 0x1B, 101.25)
    assert raw.pack(*args) == payload
    results: Dict[str, Any] = {}
    samples: Dict[str, List[int]] = {k: [] for k in ("raw_encode", "encode", "raw_decode", "decode")}
    for _ in range(rounds):  # alternate, warm-up included in the first round's discard
        samples["raw_encode"] += time_calls(lambda: raw.pack(*args), n)
        samples["encode"] += time_calls(o.encode, n)
        samples["raw_decode"] += time_calls(lambda: raw.unpack_from(payload), n)
        samples["decode"] += time_calls(lambda: tm.order.decode(payload), n)
    for k, v in samples.items():
        results[k] = summary(v[n // 2:])  # drop the first half round: warm-up
    results["encode_ratio"] = results["encode"]["median_us"] / results["raw_encode"]["median_us"]
    results["decode_ratio"] = results["decode"]["median_us"] / results["raw_decode"]["median_us"]
    return results


class RawClient:
    """The baseline: handshake with the protocol core on a blocking socket,
    then pre-built ping frames and `recv_into` of the pong frame."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        core = protocol.LinkProtocol(lt.SCHEMA, protocol.Identity("raw", "bench"))
        sock.sendall(core.start())
        out: List[bytes] = []
        while core.state != protocol.LinkProtocol.ESTABLISHED:
            data = sock.recv(65536)
            if not data:
                raise SystemExit("raw client: the peer closed during the handshake")
            core.receive(data, out)
        sock.sendall(b"".join(out))
        self.core = core
        self.buf = bytearray(1 << 17)
        self.view = memoryview(self.buf)
        self.pending = 0  # bytes of a following frame already read

    def want_pongs(self, on: bool) -> None:
        """(Un)subscribes pong: the peer answers every ping to every link
        that wants pongs, so each path listens only during its own round."""
        self.sock.sendall(self.core.write_interest(lt.pong.type_id, on))

    def round_trip(self, seq: int, ping_tail: bytes, pong_len: int) -> None:
        """`ping_tail` is the ping payload after its 10-byte seq field."""
        self.core._tx += 1
        self.sock.sendall(HEADER.pack(10 + len(ping_tail), lt.ping.type_id, self.core._tx, 0, 0, 0)
                          + b"\x0b\x00" + struct.pack("<Q", seq) + ping_tail)
        buf, view, size = self.buf, self.view, len(self.buf)
        got = self.pending
        while True:
            while got < 24:
                got += self.sock.recv_into(view[got:], size - got)
            length, type_id = struct.unpack_from("<II", buf, 0)
            total = 24 + length
            while got < total:
                got += self.sock.recv_into(view[got:], size - got)
            answer = type_id == lt.pong.type_id and length == pong_len and \
                struct.unpack_from("<Q", buf, 26)[0] == seq
            rest = got - total
            buf[:rest] = buf[total:got]
            got = rest
            if answer:
                self.pending = got
                return
            # interest, heartbeats, or a late pong of the other path: skip


def bench_link(peer_exe: str, kind: str, sizes: List[int], n: int, rounds: int) -> Dict[str, Any]:
    d = tempfile.mkdtemp(prefix="myc-bench-")
    where = os.path.join(d, "peer.sock") if kind == "unix" else "127.0.0.1"
    proc = subprocess.Popen([peer_exe, "--kind", kind, "--listen", where, "--port", "0", "--services", "echo",
                             "--peer-timeout-ms", "600000"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("ready port="):
            raise SystemExit("peer did not start: %r" % line)
        port = int(line.split()[1].split("=")[1])

        def connect_raw() -> socket.socket:
            if kind == "unix":
                s = socket.socket(socket.AF_UNIX)
                s.connect(where)
            else:
                s = socket.create_connection(("127.0.0.1", port))
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s

        raw = RawClient(connect_raw())
        lk = link.connect_unix(where, lt.SCHEMA) if kind == "unix" else link.connect_tcp("127.0.0.1", port,
                                                                                       lt.SCHEMA)
        if not lk.wait_peer_interest(lt.ping, timeout=10):
            raise SystemExit("the peer never subscribed to ping")
        out: Dict[str, Any] = {}
        seq = 0
        for size in sizes:
            body = bytes(size)
            ping_tail = lt.ping(seq=0, payload=body).encode()[10:]
            pong_len = len(lt.pong(seq=0, payload=body).encode())
            raw_ns: List[int] = []
            link_ns: List[int] = []
            for r in range(rounds + 1):  # round 0 is warm-up
                raw.want_pongs(True)
                a = []
                for _ in range(n):
                    seq += 1
                    t0 = time.perf_counter_ns()
                    raw.round_trip(seq, ping_tail, pong_len)
                    a.append(time.perf_counter_ns() - t0)
                raw.want_pongs(False)
                b = []
                with lk.subscribe(lt.pong) as pongs:
                    for _ in range(n):
                        seq += 1
                        msg = lt.ping(seq=seq, payload=body)
                        t0 = time.perf_counter_ns()
                        lk.publish(msg)
                        while pongs.get(timeout=10).seq != seq:
                            pass  # a late pong of the raw path
                        b.append(time.perf_counter_ns() - t0)
                if r > 0:
                    raw_ns += a
                    link_ns += b
            out[str(size)] = {"raw": summary(raw_ns), "link": summary(link_ns),
                              "ratio": statistics.median(link_ns) / statistics.median(raw_ns)}
        lk.close()
        raw.sock.close()
        return out
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        import shutil
        shutil.rmtree(d, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", required=True, help="path of mycelium-link-peer")
    ap.add_argument("--kinds", default="unix,tcp")
    ap.add_argument("--sizes", default="16,256,4096,65536", help="ping payload bytes")
    ap.add_argument("--roundtrips", type=int, default=20000, help="per path, size and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--codec-calls", type=int, default=200000)
    ap.add_argument("--json", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results",
                                                   "python.json"))
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    result: Dict[str, Any] = {"python": sys.version.split()[0], "argv": sys.argv[1:],
                              "codec": bench_codec(args.codec_calls, args.rounds)}
    c = result["codec"]
    print("codec (order, 38-byte payload), per call, median / p99 / p99.9 / max us:")
    for k in ("raw_encode", "encode", "raw_decode", "decode"):
        s = c[k]
        print("  %-11s %7.3f %7.3f %7.3f %9.1f" % (k, s["median_us"], s["p99_us"], s["p999_us"], s["max_us"]))
    print("  encode %.1fx raw, decode %.1fx raw" % (c["encode_ratio"], c["decode_ratio"]))
    for kind in args.kinds.split(","):
        r = bench_link(args.peer, kind, sizes, args.roundtrips, args.rounds)
        result[kind] = r
        print("%s round trip to a C++ peer (%d x %d per path and size), us:" % (kind, args.rounds, args.roundtrips))
        print("  %7s  %-5s %9s %9s %9s %9s %10s" % ("bytes", "path", "median", "p99", "p99.9", "max", "msg/s"))
        for size in sizes:
            e = r[str(size)]
            for path in ("raw", "link"):
                s = e[path]
                print("  %7d  %-5s %9.1f %9.1f %9.1f %9.1f %10.0f" % (size, path, s["median_us"], s["p99_us"],
                                                                     s["p999_us"], s["max_us"], s["msgs_per_s"]))
            print("  %7d  ratio link/raw %.2f" % (size, e["ratio"]))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote %s" % args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
