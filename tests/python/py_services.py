"""Python services of the in-process and cross-process tests
(test_embedded.py, test_node.py): ordinary `mycelium.Service` code on the
link_test schema, run inside mycelium-py-host-node (embedded) or in a
Python node."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any, Dict, List

import link_test as lt
from mycelium import Service, on, serves


class Echo(Service):
    """ping -> pong, like the C++ cpp.echo."""

    @on(lt.ping)
    def ping(self, p: lt.ping) -> None:
        self.publish(lt.pong(seq=p.seq, payload=p.payload))


class Burner(Service):
    """On command "burn": says "burning", computes for param `seconds`
    (holding the GIL, as pure Python does), then says "burned"."""

    @on(lt.command)
    def command(self, c: lt.command) -> None:
        if c.text != "burn":
            return
        self.publish(lt.command(text="burning"))
        end = time.perf_counter() + float(self.params.get("seconds", 1.0))
        x = 0
        while time.perf_counter() < end:
            x += 1
        self.publish(lt.command(text="burned"))


class RoundTrips(Service):
    """Python -> C++ -> Python: pings param `rounds` times through whoever
    answers pings (cpp.echo), checks every pong, asks cpp.reporter for its
    chat count after publishing param `chats` chats, writes what it saw to
    param `out` and quits."""

    def on_start(self) -> None:
        self.rounds = int(self.params.get("rounds", 100))
        self.seen: List[int] = []
        self.nodes = 0

    def on_ready(self, nodes: int) -> None:
        self.nodes = nodes
        self.publish(lt.ping(seq=1, payload=b"\x00\x01"))

    @on(lt.pong)
    def pong(self, p: lt.pong) -> None:
        assert p.payload == b"\x00\x01", p
        self.seen.append(p.seq)
        if len(self.seen) < self.rounds:
            self.publish(lt.ping(seq=p.seq + 1, payload=b"\x00\x01"))
            return
        chats = int(self.params.get("chats", 5))
        for i in range(chats):
            self.publish(lt.chat(origin="py", seq=i))
        rep = self.request(lt.report_request(token=42), lt.report, timeout=5)
        result: Dict[str, Any] = {"pongs": self.seen, "token": rep.token, "chats": rep.chats,
                                  "params": self.params, "nodes": self.nodes,
                                  "node": self.node_name,
                                  # the C++ node has the types compiled in: no codec
                                  "bridged": [self._handle.bind(lt.ping),
                                              self._handle.bind(lt.pong)]}
        with open(self.params["out"], "w") as f:
            json.dump(result, f)
        self.quit()


class Reporter(Service):
    """Serves report_request (like cpp.reporter) and counts chats."""

    def on_start(self) -> None:
        self.chats = 0

    @on(lt.chat)
    def chat(self, c: lt.chat) -> None:
        self.chats += 1

    @serves(lt.report_request)
    def report(self, r: lt.report_request) -> lt.report:
        return lt.report(token=r.token, chats=self.chats)


_incarnations = 0
_lock = threading.Lock()


class Failer(Service):
    """Raises on command "fail"; announces each incarnation (and its stop)
    with a chat."""

    def on_start(self) -> None:
        global _incarnations
        with _lock:
            _incarnations += 1
            n = _incarnations
        self.publish(lt.chat(origin="failer", seq=n))  # "I am incarnation n"

    @on(lt.command)
    def command(self, c: lt.command) -> None:
        if c.text == "fail":
            raise RuntimeError("failing on purpose")

    def on_stop(self) -> None:
        self.publish(lt.chat(origin="failer-stop", seq=_incarnations))


class BadStart(Service):
    """on_start raises: the start fails with the traceback."""

    schema = lt

    def on_start(self) -> None:
        raise ValueError("no start for you")


class Kicker(Service):
    """When the deployment is ready, publishes command param `text`."""

    schema = lt

    def on_ready(self, nodes: int) -> None:
        self.publish(lt.command(text=str(self.params.get("text", "go"))))


class Watcher(Service):
    """Records chats; once it saw chat (param `origin`, param `seq`),
    writes them to param `out` and quits."""

    def on_start(self) -> None:
        self.seen: List[List[Any]] = []

    @on(lt.chat)
    def chat(self, c: lt.chat) -> None:
        self.seen.append([c.origin, c.seq])
        if c.origin == self.params["origin"] and c.seq == int(self.params["seq"]):
            with open(self.params["out"], "w") as f:
                json.dump(self.seen, f)
            self.quit()


class AsyncEcho(Service):
    """``async def`` handlers on the instance's asyncio loop: answers each
    ping after an await, serves report_request, starts a task that
    outlives its handler on command "later", and raises on "fail"."""

    async def on_start(self) -> None:
        await asyncio.sleep(0)
        self.publish(lt.chat(origin="async-start", seq=0))  # this incarnation is up

    @on(lt.ping)
    async def ping(self, p: lt.ping) -> None:
        await asyncio.sleep(0.0005)
        self.publish(lt.pong(seq=p.seq, payload=p.payload))

    @serves(lt.report_request)
    async def report(self, r: lt.report_request) -> lt.report:
        await asyncio.sleep(0)
        return lt.report(token=r.token, chats=42)

    @on(lt.command)
    async def command(self, c: lt.command) -> None:
        if c.text == "later":
            async def later() -> None:
                await asyncio.sleep(0.01)
                self.publish(lt.chat(origin="task", seq=1))
            asyncio.get_running_loop().create_task(later())
        elif c.text == "fail":
            raise RuntimeError("async failing on purpose")

    async def on_stop(self) -> None:
        await asyncio.sleep(0)
        self.publish(lt.chat(origin="async-stop", seq=0))


class AsyncAsker(Service):
    """On command "ask": `arequest`s a report (from AsyncEcho) and publishes
    its token as a chat. Handlers of one instance run one at a time, so a
    handler must not await a reply from its own instance."""

    @on(lt.command)
    async def command(self, c: lt.command) -> None:
        if c.text == "ask":
            rep = await self.arequest(lt.report_request(token=9), lt.report, timeout=5)
            self.publish(lt.chat(origin="asked", seq=rep.token))


class SyncWithAsyncHandler(Service):
    """A service without asyncio that adds an ``async def`` handler at run
    time: its first chat fails the instance with a text that says what to
    set."""

    schema = lt

    def on_start(self) -> None:
        self.subscribe(lt.chat, self.chat)

    async def chat(self, c: lt.chat) -> None:
        pass


class LendingRoundTrips(Service):
    """Pings param `rounds` times through cpp.echo on the node's loop while
    spinning (param `spin`), then writes the pongs it saw and the counters
    of the loop its waits ran (`loop_stats`) to param `out` and quits."""

    def on_start(self) -> None:
        self.rounds = int(self.params.get("rounds", 100))
        self.seen: List[int] = []

    def on_ready(self, nodes: int) -> None:
        self.publish(lt.ping(seq=1, payload=b"\x00"))

    @on(lt.pong)
    def pong(self, p: lt.pong) -> None:
        self.seen.append(p.seq)
        if len(self.seen) < self.rounds:
            self.publish(lt.ping(seq=p.seq + 1, payload=b"\x00"))
            return
        with open(self.params["out"], "w") as f:
            json.dump({"pongs": self.seen, "loop": self.loop_stats()}, f)
        self.quit()


class Affinity(Service):
    """Writes the CPUs its thread may run on (param `cpu` pins it) to param
    `out` once the deployment is ready, and quits."""

    schema = lt

    def on_ready(self, nodes: int) -> None:
        with open(self.params["out"], "w") as f:
            json.dump(sorted(os.sched_getaffinity(0)), f)
        self.quit()
