"""A Python process's node lends its I/O loop to waiting subscriptions
(docs/python.md section 8, "Spinning waits run the loop"): a `get` that
spins runs the loop's turns itself, so frames come off the ring on the
Python thread and the loop thread sleeps. Checked against a real C++ echo
peer over every link kind: every message arrives, in order and intact, the
loop was lent, a thread that does not spin still gets its messages while
another one lends, and `lend_loop=False` turns it off."""

from __future__ import annotations

import os
import threading
from typing import Iterator, List

import pytest

import link_test as lt
import mycelium
from conftest import Peer

KINDS = ["shm", "unix", "tcp"]


def echo_peer(peers: List[Peer], scratch: str, kind: str) -> Peer:
    where = os.path.join(scratch, "echo.%s" % kind) if kind != "tcp" else "127.0.0.1"
    p = Peer(["--kind", kind, "--listen", where, "--port", "0", "--name", "echo",
              "--services", "echo", "--wait", "busy_poll", "--placement", "loop"])
    peers.append(p)
    p.wait_ready()
    p.address = where  # type: ignore[attr-defined]
    return p


@pytest.fixture
def node() -> Iterator[mycelium.Node]:
    n = mycelium.Node("lender", lt)
    try:
        yield n
    finally:
        n.stop()


def linked(node: mycelium.Node, peer: Peer, kind: str, **kw: object) -> mycelium.Link:
    lk = node.connect(kind, peer.address, peer.port, **kw)  # type: ignore[attr-defined]
    assert lk.wait_up(10), lk.stats()
    assert lk.wait_peer_interest(lt.ping, 10)
    return lk


@pytest.mark.parametrize("kind", KINDS)
def test_a_spinning_get_runs_the_loop_and_loses_nothing(kind: str, node: mycelium.Node,
                                                        peers: List[Peer], scratch: str) -> None:
    assert node.lends_loop and node.loop_stats()["lending"]
    peer = echo_peer(peers, scratch, kind)
    pongs = node.subscribe(lt.pong, spin=0.05)
    lk = linked(node, peer, kind, wait="busy_poll")
    before = node.loop_stats()["lends"]
    sizes = [0, 1, 16, 4096, 65536, 200_000] + [16] * 300
    for i, n in enumerate(sizes, 1):
        payload = os.urandom(n)
        assert node.publish(lt.ping(seq=i, payload=payload))
        p = pongs.get(timeout=10)
        assert p.seq == i and p.payload == payload
    assert node.loop_stats()["lends"] > before
    st = lk.stats()
    assert st["bad_frames"] == 0 and st["dropped_overflow"] == 0, st


def test_a_thread_that_does_not_spin_is_served_while_another_lends(
        node: mycelium.Node, peers: List[Peer], scratch: str) -> None:
    peer = echo_peer(peers, scratch, "shm")
    pongs = node.subscribe(lt.pong)  # blocks, never lends
    probes = node.subscribe(lt.probe, spin=30.0)  # nobody publishes probes
    lk = linked(node, peer, "shm", wait="busy_poll")
    lending = threading.Event()
    stop = threading.Event()

    def lender() -> None:
        while not stop.is_set():
            lending.set()
            try:
                probes.get(timeout=0.2)  # spins (runs the loop) until the timeout
            except (TimeoutError, mycelium.LinkClosed):
                pass

    t = threading.Thread(target=lender, daemon=True)
    t.start()
    try:
        assert lending.wait(10)
        for i in range(1, 201):
            assert node.publish(lt.ping(seq=i, payload=b"x" * (i % 50)))
            p = pongs.get(timeout=10)
            assert p.seq == i and p.payload == b"x" * (i % 50)
        assert node.loop_stats()["lends"] > 0
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive()
    assert lk.stats()["bad_frames"] == 0


@pytest.mark.parametrize("kind", ["shm", "unix"])
def test_without_a_lender_the_loop_thread_delivers(kind: str, node: mycelium.Node,
                                                   peers: List[Peer], scratch: str) -> None:
    # One spinning get leaves the rings to the lender; then nobody spins,
    # and the loop thread must take them back on its own (shm), and take
    # the publishes posted to the socket link's broker without a pipe write
    # (unix).
    peer = echo_peer(peers, scratch, kind)
    pongs = node.subscribe(lt.pong, spin=0.05)
    linked(node, peer, kind, wait="busy_poll")
    assert node.publish(lt.ping(seq=1))
    assert pongs.get(timeout=10).seq == 1
    blocking = node.subscribe(lt.pong)
    for i in range(2, 102):
        assert node.publish(lt.ping(seq=i))
        assert blocking.get(timeout=10).seq == i
    assert node.loop_stats()["attends"] + node.loop_stats()["sleeps"] > 0


def test_lend_loop_false_keeps_the_loop_thread_polling(peers: List[Peer], scratch: str) -> None:
    with mycelium.Node("plain", lt, lend_loop=False) as n:
        assert not n.lends_loop and not n.loop_stats()["lending"]
        peer = echo_peer(peers, scratch, "shm")
        pongs = n.subscribe(lt.pong, spin=0.01)
        linked(n, peer, "shm", wait="busy_poll")
        for i in range(1, 51):
            assert n.publish(lt.ping(seq=i))
            assert pongs.get(timeout=10).seq == i
        assert n.loop_stats()["lends"] == 0


@pytest.mark.parametrize("kind", ["shm", "unix"])
def test_a_python_service_that_spins_lends_the_loop_too(kind: str, node: mycelium.Node,
                                                        peers: List[Peer], scratch: str) -> None:
    from py_services import Echo
    node.start(Echo, "echo", params={"spin": 0.05})
    where = os.path.join(scratch, "py.%s" % kind)
    node.listen(kind, where)
    before = node.loop_stats()["lends"]
    p = Peer(["--kind", kind, "--connect", where, "--services", "none", "--ping", "300",
              "--name", "cpp-pinger"])
    peers.append(p)
    p.await_stdout("echo ok 300")
    assert p.wait_exit() == 0
    assert node.loop_stats()["lends"] > before
