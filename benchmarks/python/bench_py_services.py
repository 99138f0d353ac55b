"""The Python side of benchmarks/python/python_inprocess.py, running inside
mycelium-bench-py-node (Python embedded in a C++ node). Not a test."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List

import link_test as lt
from mycelium import Service, on
from mycelium import _core


class Driver(Service):
    # Poll the queue for 2 ms before sleeping: the C++ -> Python hop then
    # costs no wake-up of a sleeping thread (which is tens of microseconds
    # on this VM).
    spin = 0.002

    """Measures, once the node is ready: a bare pybind11 call, the Python
    publish call, Python -> C++ and C++ -> Python one-way hops (with
    bench.reflector), then has the C++ pair run the same scheme; writes
    everything to param `out` once the C++ services dumped theirs, and quits."""

    def on_start(self) -> None:
        self.n = int(self.params.get("rounds", 20000))
        self.calls = int(self.params.get("calls", 200000))
        self.back: List[int] = []
        self.result: Dict[str, Any] = {}
        self.left = 0
        self.dumped = 0

    def on_ready(self, nodes: int) -> None:
        clock = time.monotonic_ns
        noop = _core.noop
        t0 = clock()
        for _ in range(self.calls):
            noop()
        self.result["noop_ns"] = (clock() - t0) / self.calls
        t0 = clock()
        for _ in range(self.calls):
            clock()
        self.result["clock_ns"] = (clock() - t0) / self.calls
        m = lt.ping(seq=0)
        t0 = clock()
        for _ in range(self.calls):
            m.encode()
        self.result["encode_ns"] = (clock() - t0) / self.calls
        publish = self.publish
        t0 = clock()
        for _ in range(self.calls):
            publish(m)
        self.result["publish_ns"] = (clock() - t0) / self.calls
        self.result["bridged"] = self._handle.bind(lt.ping)
        # The same publish through the codec (what it was before the bridge).
        raw = self._handle.publish
        t0 = clock()
        for _ in range(self.calls):
            raw(lt.ping.type_id, m.encode())
        self.result["publish_codec_ns"] = (clock() - t0) / self.calls
        # The parts: the same bytes pre-encoded (no encode), and a type
        # nobody subscribes to (no hand-off to a C++ worker).
        data = m.encode()
        t0 = clock()
        for _ in range(self.calls):
            raw(lt.ping.type_id, data)
        self.result["publish_bytes_ns"] = (clock() - t0) / self.calls
        empty = lt.empty().encode()
        t0 = clock()
        for _ in range(self.calls):
            raw(lt.empty.type_id, empty)
        self.result["publish_nosub_ns"] = (clock() - t0) / self.calls
        self.left = self.n
        self.publish(lt.ping(seq=time.monotonic_ns()))

    @on(lt.pong)
    def pong(self, p: lt.pong) -> None:
        self.back.append(time.monotonic_ns() - p.seq)
        self.left -= 1
        if self.left > 0:
            # Stamped right before the publish call: the hop is the
            # framework's (publish -> handler entry), not the making of the
            # message object.
            m = lt.ping()
            m.seq = time.monotonic_ns()
            self.publish(m)
        else:
            self.publish(lt.command(text="cpp %d" % self.n))

    @on(lt.command)
    def command(self, c: lt.command) -> None:
        if c.text == "cpp-done":
            self.publish(lt.command(text="dump"))
        elif c.text.startswith("dumped"):
            self.dumped += 1
            if c.text.startswith("dumped reflector"):
                self.result["unanswered"] = int(c.text.split()[2])
            if self.dumped == 3:
                self.result["cpp_to_py_ns"] = self.back
                with open(self.params["out"], "w") as f:
                    json.dump(self.result, f)
                self.quit()
