"""The Python link clients against a real C++ peer process
(tests/conformance/link_peer.cpp, target mycelium-link-peer) over Unix
sockets and TCP, in both roles (Python connects / the C++ peer connects),
blocking and asyncio: messages both ways, interest, request/reply with
timeout, authentication, refusal on digest mismatch, a stopped and a killed
peer. Every wait has a timeout; peers are stopped in fixtures' finally."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any, List, Optional

import pytest

import link_test as lt
from conftest import Peer, ctrl_c_child, env_path
from mycelium import (AuthFailed, Errc, HandshakeRefused, LinkClosed, RequestTimeout, SchemaMismatch, aio,
                      link)

KINDS = ["unix", "tcp"]


def fnv1a(data: bytes) -> int:
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def start_peer(peers: List[Peer], scratch: str, kind: str, *extra: str) -> Peer:
    where = os.path.join(scratch, "peer.sock") if kind == "unix" else "127.0.0.1"
    p = Peer(["--kind", kind, "--listen", where, "--port", "0", "--name", "cpp-peer", *extra])
    peers.append(p)
    p.wait_ready()
    p.address = where  # type: ignore[attr-defined]
    return p


def connect(kind: str, peer: Peer, **kw: Any) -> link.Link:
    if kind == "unix":
        return link.connect_unix(peer.address, lt.SCHEMA, **kw)  # type: ignore[attr-defined]
    return link.connect_tcp("127.0.0.1", peer.port, lt.SCHEMA, **kw)


async def aconnect(kind: str, peer: Peer, **kw: Any) -> aio.AsyncLink:
    if kind == "unix":
        return await aio.connect_unix(peer.address, lt.SCHEMA, **kw)  # type: ignore[attr-defined]
    return await aio.connect_tcp("127.0.0.1", peer.port, lt.SCHEMA, **kw)


def report(lk: link.Link) -> lt.report:
    token = int.from_bytes(os.urandom(6), "little")
    return lk.request(lt.report_request(token=token), lt.report, timeout=10, match=lambda r: r.token == token)


@pytest.mark.parametrize("kind", KINDS)
def test_python_to_cpp_and_back(kind: str, peers: List[Peer], scratch: str) -> None:
    peer = start_peer(peers, scratch, kind)
    with connect(kind, peer, node="py-test", service="client") as lk:
        assert lk.peer is not None and lk.peer.node == "cpp-peer"
        assert lk.peer.schema_digest == lt.SCHEMA_DIGEST and lk.peer.types == lt.SCHEMA.types
        peer.await_stderr("established with node 'py-test' service 'client' (pid %d)" % os.getpid())
        pongs = lk.subscribe(lt.pong)
        assert lk.wait_peer_interest(lt.ping, timeout=10)
        assert {lt.ping.type_id, lt.data.type_id, lt.report_request.type_id, lt.empty.type_id} <= lk.peer_interest
        sizes = [0, 1, 7, 8, 1000, 70000]
        sent = {i: os.urandom(n) for i, n in enumerate(sizes, 1)}
        for i, body in sent.items():
            assert lk.publish(lt.ping(seq=i, payload=body))
        got = {p.seq: p.payload for p in (pongs.get(timeout=10) for _ in sizes)}
        assert got == sent
        # a stream checked by the peer's sink: order and checksums
        before = report(lk)
        first = before.last_seq + 1
        for s in range(first, first + 300):
            body = bytes((s * 7 + k) & 0xFF for k in range(s % 97 * 13))
            lk.publish(lt.data(seq=s, checksum=fnv1a(body), payload=body))
        assert lk.publish(lt.empty())
        after = report(lk)
        assert (after.received - before.received, after.order_errors, after.checksum_errors,
                after.last_seq, after.empties - before.empties) == (300, 0, 0, first + 299, 1)
        # a type nobody over there wants is not sent, and counted
        assert not lk.publish(lt.pong(seq=1)) and lk.stats.not_wanted == 1
        assert lk.stats.bad_frames == 0
    peer.await_stderr("closed the link (goodbye)")


@pytest.mark.parametrize("kind", KINDS)
def test_cpp_publishes_to_python(kind: str, peers: List[Peer], scratch: str) -> None:
    peer = start_peer(peers, scratch, kind)
    with connect(kind, peer) as lk:
        data = lk.subscribe(lt.data)
        chats: List[lt.chat] = []
        lk.subscribe(lt.chat, callback=chats.append)  # runs on the reader thread
        assert lk.wait_peer_interest(lt.command, timeout=10)
        lk.publish(lt.command(text="send 500 3000"))
        for s in range(1, 501):
            d = data.get(timeout=10)
            assert d.seq == s and d.checksum == fnv1a(d.payload), s
        lk.publish(lt.command(text="chat 5"))
        lk.publish(lt.command(text="send 1 0"))  # ordered after the chats: when it arrives, they did
        assert data.get(timeout=10).seq == 1
        assert [(c.origin, c.seq) for c in chats] == [("cpp-peer", i) for i in range(1, 6)]


@pytest.mark.parametrize("kind", KINDS)
def test_interest_propagation(kind: str, peers: List[Peer], scratch: str) -> None:
    peer = start_peer(peers, scratch, kind)
    with connect(kind, peer) as lk:
        assert lk.wait_peer_interest(lt.command, timeout=10)
        assert lt.probe.type_id not in lk.peer_interest
        assert not lk.publish(lt.probe(seq=1))
        lk.publish(lt.command(text="subscribe probe"))
        assert lk.wait_peer_interest(lt.probe, timeout=10)
        assert lk.publish(lt.probe(seq=2))
        assert report(lk).probes == 1
        lk.publish(lt.command(text="unsubscribe probe"))
        assert lk.wait_peer_interest(lt.probe, timeout=10, subscribed=False)
        assert not lk.publish(lt.probe(seq=3))


@pytest.mark.parametrize("kind", KINDS)
def test_request_reply_and_timeouts(kind: str, peers: List[Peer], scratch: str) -> None:
    peer = start_peer(peers, scratch, kind)
    with connect(kind, peer) as lk:
        r = lk.request(lt.report_request(token=77), lt.report, timeout=10, match=lambda x: x.token == 77)
        assert r.token == 77
        t0 = time.monotonic()
        with pytest.raises(RequestTimeout, match="no report answering"):
            lk.request(lt.report_request(token=78), lt.report, timeout=0.3, match=lambda x: x.token == -1)
        assert 0.3 <= time.monotonic() - t0 < 5
        with pytest.raises(RequestTimeout, match="never subscribed to probe"):
            lk.request(lt.probe(seq=1), lt.report, timeout=0.3)
        with pytest.raises(RequestTimeout) as info:
            lk.request(lt.probe(seq=1), lt.report, timeout=0.1)
        assert info.value.errc == Errc.request_timeout and isinstance(info.value, TimeoutError)


@pytest.mark.parametrize("kind", KINDS)
def test_idle_link_stays_up_by_heartbeats(kind: str, peers: List[Peer], scratch: str) -> None:
    # the peer's peer_timeout is 1 s (its default): our heartbeats keep it up
    peer = start_peer(peers, scratch, kind)
    with connect(kind, peer) as lk:
        probes = lk.subscribe(lt.probe)  # nobody publishes probes
        with pytest.raises(TimeoutError):
            probes.get(timeout=1.5)
        assert not lk.closed
        assert report(lk).order_errors == 0  # and the link still works
        assert lk.stats.frames_in >= 10  # the peer's heartbeats (100 ms)
    assert not [l for l in peer.stderr_lines if "peer_lost" in l or "sent nothing" in l]


@pytest.mark.parametrize("kind", KINDS)
def test_authentication(kind: str, peers: List[Peer], scratch: str) -> None:
    peer = start_peer(peers, scratch, kind, "--secret", "py-secret")
    with connect(kind, peer, secret="py-secret") as lk:
        assert report(lk).order_errors == 0
    with pytest.raises(AuthFailed) as info:
        connect(kind, peer, secret="wrong")
    assert info.value.errc == Errc.auth_failed and "different secrets" in info.value.text
    with pytest.raises(AuthFailed, match="has a shared secret configured"):
        connect(kind, peer)
    peer.await_stderr("sent no authentication proof")


@pytest.mark.parametrize("kind", KINDS)
def test_secret_here_but_not_on_the_peer(kind: str, peers: List[Peer], scratch: str) -> None:
    peer = start_peer(peers, scratch, kind)
    with pytest.raises(AuthFailed, match="sent no authentication proof"):
        connect(kind, peer, secret="only-here")
    peer.await_stderr("has a shared secret configured")


@pytest.mark.parametrize("kind", KINDS)
def test_refusal_on_digest_mismatch(kind: str, peers: List[Peer], scratch: str) -> None:
    import link_test_other as lto
    peer = start_peer(peers, scratch, kind, "--schema", "other")
    with pytest.raises(SchemaMismatch) as info:
        connect(kind, peer, node="py-test")
    e = info.value
    assert isinstance(e, HandshakeRefused) and e.errc == Errc.schema_mismatch
    assert lt.SCHEMA_DIGEST.hex() in e.text and lto.SCHEMA_DIGEST.hex() in e.text
    assert "first differing message type" in e.text and "Rebuild both sides" in e.text
    # the C++ side logs the refusal too, with both digests
    line = peer.await_stderr("schema digest mismatch")
    assert lt.SCHEMA_DIGEST.hex() in line


@pytest.mark.parametrize("kind", KINDS)
def test_cpp_connects_to_python_listener(kind: str, peers: List[Peer], scratch: str) -> None:
    if kind == "unix":
        listener = link.listen_unix(os.path.join(scratch, "py.sock"), lt.SCHEMA, node="py-listener")
        args = ["--kind", "unix", "--connect", os.path.join(scratch, "py.sock")]
    else:
        listener = link.listen_tcp("127.0.0.1", 0, lt.SCHEMA, node="py-listener")
        args = ["--kind", "tcp", "--connect", "127.0.0.1", "--port", str(listener.port)]
    with listener:
        count = 300
        peer = Peer(args + ["--services", "none", "--ping", str(count), "--name", "cpp-pinger"])
        peers.append(peer)
        with listener.accept(timeout=20) as lk:
            assert lk.peer is not None and lk.peer.node == "cpp-pinger"
            echoed = 0

            def echo(p: lt.ping) -> None:
                nonlocal echoed
                lk.publish(lt.pong(seq=p.seq, payload=p.payload))
                echoed += 1

            lk.subscribe(lt.ping, callback=echo)
            peer.await_stdout("echo ok %d" % count, timeout=60)
            assert peer.wait_exit() == 0
            assert echoed == count


@pytest.mark.parametrize("kind", KINDS)
def test_asyncio_client(kind: str, peers: List[Peer], scratch: str) -> None:
    peer = start_peer(peers, scratch, kind)

    async def main() -> None:
        async with await aconnect(kind, peer, node="py-aio") as lk:
            pongs = lk.subscribe(lt.pong)
            assert await lk.wait_peer_interest(lt.ping, timeout=10)
            for i in range(1, 101):
                lk.publish(lt.ping(seq=i, payload=bytes([i])))
            await lk.drain()
            seen: List[int] = []
            async for p in pongs:
                assert p.payload == bytes([p.seq])
                seen.append(p.seq)
                if len(seen) == 100:
                    break
            assert seen == list(range(1, 101))
            r = await lk.request(lt.report_request(token=5), lt.report, timeout=10, match=lambda x: x.token == 5)
            assert r.token == 5
            with pytest.raises(RequestTimeout):
                await lk.request(lt.probe(seq=1), lt.report, timeout=0.2)
            # peer -> python on the event loop
            data = lk.subscribe(lt.data)
            lk.publish(lt.command(text="send 50 100"))
            got = [await data.get(timeout=10) for _ in range(50)]
            assert [d.seq for d in got] == list(range(1, 51))
            assert all(d.checksum == fnv1a(d.payload) for d in got)
        assert lk.closed
        # a subscription's iterator ends cleanly after the link closed here
        assert [m async for m in pongs] == []

    asyncio.run(asyncio.wait_for(main(), 60))
    peer.await_stderr("closed the link (goodbye)")


@pytest.mark.parametrize("kind", KINDS)
def test_asyncio_refusals(kind: str, peers: List[Peer], scratch: str) -> None:
    other = start_peer(peers, scratch, kind, "--schema", "other")

    async def main() -> None:
        with pytest.raises(SchemaMismatch):
            await aconnect(kind, other)
    asyncio.run(asyncio.wait_for(main(), 30))


def test_asyncio_auth(peers: List[Peer], scratch: str) -> None:
    peer = start_peer(peers, scratch, "unix", "--secret", "a-secret")

    async def main() -> None:
        async with await aconnect("unix", peer, secret="a-secret") as lk:
            assert (await lk.request(lt.report_request(token=9), lt.report, timeout=10,
                                     match=lambda r: r.token == 9)).token == 9
        with pytest.raises(AuthFailed):
            await aconnect("unix", peer, secret="nope")
    asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize("kind", KINDS)
def test_stopped_peer_is_detected_by_peer_timeout(kind: str, peers: List[Peer], scratch: str) -> None:
    peer = start_peer(peers, scratch, kind)
    with connect(kind, peer, peer_timeout=0.5) as lk:
        pongs = lk.subscribe(lt.pong)
        assert lk.wait_peer_interest(lt.ping, timeout=10)
        os.kill(peer.proc.pid, signal.SIGSTOP)  # its socket stays open; only silence tells
        t0 = time.monotonic()
        with pytest.raises(LinkClosed) as info:
            pongs.get(timeout=10)
        took = time.monotonic() - t0
        assert info.value.errc == Errc.peer_lost and "sent nothing for 0.500 s" in info.value.text
        assert 0.3 < took < 3, took
        with pytest.raises(LinkClosed):
            lk.publish(lt.ping())


@pytest.mark.parametrize("kind", KINDS)
def test_killed_peer_ends_iteration_with_peer_lost(kind: str, peers: List[Peer], scratch: str) -> None:
    peer = start_peer(peers, scratch, kind)
    with connect(kind, peer) as lk:
        pongs = lk.subscribe(lt.pong)
        assert lk.wait_peer_interest(lt.ping, timeout=10)
        lk.publish(lt.ping(seq=1))
        it = iter(pongs)
        assert next(it).seq == 1
        peer.proc.kill()
        peer.proc.wait(timeout=10)
        t0 = time.monotonic()
        with pytest.raises(LinkClosed) as info:
            next(it)
        assert info.value.errc == Errc.peer_lost and "without a goodbye" in info.value.text
        assert time.monotonic() - t0 < 2


def test_connect_errors_name_the_address(scratch: str) -> None:
    path = os.path.join(scratch, "nobody.sock")
    with pytest.raises(link.LinkError, match="cannot connect to unix socket %s" % path):
        link.connect_unix(path, lt.SCHEMA)
    with pytest.raises(link.LinkError, match="cannot listen on unix socket"):
        link.listen_unix(os.path.join(scratch, "missing-dir", "x.sock"), lt.SCHEMA)


@pytest.mark.parametrize("mode", [[], ["--asyncio"]])
def test_example_script_against_the_peer(mode: List[str], peers: List[Peer], scratch: str) -> None:
    peer = start_peer(peers, scratch, "unix", "--secret", "ex")
    script = os.path.join(env_path("MYCELIUM_SOURCE_DIR"), "bindings", "python", "examples", "link_client.py")
    r = subprocess.run([env_path("MYCELIUM_PYTHON"), script, "--unix", peer.address,  # type: ignore[attr-defined]
                        "--secret", "ex", "--count", "50"] + mode,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # blocking mode streams 50 data messages to the peer's sink; asyncio mode only pings
    n = 0 if mode else 50
    assert r.stdout.strip() == "report: received=%d order_errors=0 checksum_errors=0 last_seq=%d" % (n, n)
    r = subprocess.run([env_path("MYCELIUM_PYTHON"), script, "--unix", peer.address,  # type: ignore[attr-defined]
                        "--secret", "bad"] + mode, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "auth_failed" in r.stderr and "different secrets" in r.stderr


CTRL_C_CHILD = '''
import sys, time
import link_test as lt
from mycelium import link
lk = link.connect_unix(sys.argv[1], lt.SCHEMA)
sub = lk.subscribe(lt.pong)   # nobody sends pongs unasked: get() blocks
try:
    print("waiting", flush=True)
    sub.get()
    print("returned", flush=True)
except KeyboardInterrupt:
    print("interrupted %.6f" % time.monotonic(), flush=True)
lk.close()
'''


def test_ctrl_c_interrupts_a_blocking_get_within_100_ms(peers: List[Peer], scratch: str) -> None:
    peer = start_peer(peers, scratch, "unix")
    ctrl_c_child([env_path("MYCELIUM_PYTHON"), "-c", CTRL_C_CHILD, peer.address])  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_cpp_connects_to_asyncio_listener(kind: str, peers: List[Peer], scratch: str) -> None:
    count = 300

    async def main() -> None:
        if kind == "unix":
            path = os.path.join(scratch, "aio.sock")
            listener = await aio.listen_unix(path, lt.SCHEMA, node="py-aio-listener")
            args = ["--kind", "unix", "--connect", path]
        else:
            listener = await aio.listen_tcp("127.0.0.1", 0, lt.SCHEMA, node="py-aio-listener")
            args = ["--kind", "tcp", "--connect", "127.0.0.1", "--port", str(listener.port)]
        async with listener:
            peer = Peer(args + ["--services", "none", "--ping", str(count), "--name", "cpp-pinger"])
            peers.append(peer)
            async with await listener.accept(timeout=20) as lk:
                assert lk.peer is not None and lk.peer.node == "cpp-pinger"
                echoed = 0
                async for p in lk.subscribe(lt.ping):
                    lk.publish(lt.pong(seq=p.seq, payload=p.payload))
                    echoed += 1
                    if echoed == count:
                        break
                await lk.drain()
                await asyncio.to_thread(peer.await_stdout, "echo ok %d" % count, 60)
            assert await asyncio.to_thread(peer.wait_exit) == 0

    asyncio.run(asyncio.wait_for(main(), 90))


@pytest.mark.parametrize("kind", KINDS)
def test_publishing_faster_than_reading_does_not_deadlock(kind: str, peers: List[Peer], scratch: str) -> None:
    # 20,000 pings of 1000 bytes without reading a pong in between: far more
    # than the socket buffers hold in both directions. The reader thread must
    # keep reading while a publisher is blocked in send.
    import threading
    peer = start_peer(peers, scratch, kind)
    with connect(kind, peer) as lk:
        pongs = lk.subscribe(lt.pong)
        assert lk.wait_peer_interest(lt.ping, timeout=10)
        body = bytes(1000)
        n = 20000
        errors: List[BaseException] = []

        def flood() -> None:
            try:
                for i in range(n):
                    lk.publish(lt.ping(seq=i, payload=body))
            except BaseException as e:  # reported below
                errors.append(e)

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        t.join(timeout=120)
        assert not t.is_alive(), "publish blocked: %d pongs queued" % pongs.pending()
        assert errors == []
        assert [pongs.get(timeout=30).seq for _ in range(n)] == list(range(n))
