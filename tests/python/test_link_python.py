"""Two Python links talking to each other (a Listener and a client in one
process, over a real Unix socket): flow control when both sides flood,
callbacks that raise, overflow errors, close with buffered data."""

from __future__ import annotations

import logging
import os
import threading
from typing import Iterator, List, Tuple

import pytest

import link_test as lt
from mycelium import Errc, LinkError, link


@pytest.fixture
def pair(scratch: str) -> Iterator[Tuple[link.Link, link.Link]]:
    listener = link.listen_unix(os.path.join(scratch, "pair.sock"), lt.SCHEMA, node="server")
    box: List[link.Link] = []
    t = threading.Thread(target=lambda: box.append(listener.accept(timeout=20)), daemon=True)
    t.start()
    client = link.connect_unix(os.path.join(scratch, "pair.sock"), lt.SCHEMA, node="client")
    t.join(timeout=20)
    assert box, "the listener accepted nothing"
    server = box[0]
    try:
        yield client, server
    finally:
        client.close()
        server.close()
        listener.close()


def test_both_sides_flood_without_deadlock(pair: Tuple[link.Link, link.Link]) -> None:
    client, server = pair
    # the server echoes on its reader thread while the client floods
    server.subscribe(lt.ping, callback=lambda p: server.publish(lt.pong(seq=p.seq, payload=p.payload)))
    pongs = client.subscribe(lt.pong)
    assert client.wait_peer_interest(lt.ping, timeout=10) and server.wait_peer_interest(lt.pong, timeout=10)
    n, body = 20000, bytes(1000)
    for i in range(n):  # 20 MB, far over both sockets' buffers
        assert client.publish(lt.ping(seq=i, payload=body))
    assert [pongs.get(timeout=30).seq for _ in range(n)] == list(range(n))
    assert server.stats.callback_errors == 0


def test_a_raising_callback_is_logged_and_the_link_goes_on(pair: Tuple[link.Link, link.Link],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    client, server = pair
    got: List[int] = []

    def handler(p: lt.ping) -> None:
        if p.seq == 2:
            raise ValueError("handler failed on purpose")
        got.append(p.seq)

    server.subscribe(lt.ping, callback=handler)
    done = server.subscribe(lt.probe)
    assert client.wait_peer_interest(lt.probe, timeout=10)
    with caplog.at_level(logging.ERROR, logger="mycelium"):
        for i in (1, 2, 3):
            client.publish(lt.ping(seq=i))
        client.publish(lt.probe(seq=9))  # after the pings on the same stream
        assert done.get(timeout=10).seq == 9
    assert got == [1, 3] and server.stats.callback_errors == 1
    rec = [r for r in caplog.records if "callback for ping from node 'client'" in r.getMessage()]
    assert len(rec) == 1 and rec[0].exc_info is not None
    assert "handler failed on purpose" in caplog.text and "Traceback" in caplog.text


def test_publish_raises_link_overflow_when_the_peer_stops_reading(scratch: str) -> None:
    # A peer that accepted and shook hands but never reads again: a raw
    # socket under our control plays it.
    import socket
    from mycelium import protocol, wire
    path = os.path.join(scratch, "slow.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    box: List[link.Link] = []
    t = threading.Thread(target=lambda: box.append(link.connect_unix(
        path, lt.SCHEMA, send_buffer=1 << 16, block_timeout=0.2, peer_timeout=30)), daemon=True)
    t.start()
    conn, _ = srv.accept()
    conn.settimeout(10)
    core = protocol.LinkProtocol(lt.SCHEMA, protocol.Identity("slow", "peer", 1))
    conn.sendall(core.start() + core.write_interest(lt.ping.type_id, True))
    out: List[bytes] = []
    while core.state != protocol.LinkProtocol.ESTABLISHED:
        core.receive(conn.recv(65536), out)
    conn.sendall(b"".join(out))
    t.join(timeout=10)
    assert box
    lk = box[0]
    try:
        assert lk.wait_peer_interest(lt.ping, timeout=10)
        with pytest.raises(LinkError) as info:
            for i in range(100000):
                lk.publish(lt.ping(seq=i, payload=bytes(1000)))
        assert info.value.errc == Errc.link_overflow and "reads too slowly" in info.value.text
        assert lk.send_buffered > 1 << 16
        # the peer reads again: the buffer drains and publishing works
        def drain() -> None:
            while True:
                try:
                    if not conn.recv(1 << 20):
                        return
                except OSError:
                    return

        threading.Thread(target=drain, daemon=True).start()
        lk.block_timeout = 10.0
        assert lk.publish(lt.ping(seq=0, payload=b""))
    finally:
        lk.close()
        conn.close()
        srv.close()


def test_asyncio_pair_and_raising_callback(scratch: str, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    from mycelium import aio

    async def main() -> None:
        path = os.path.join(scratch, "apair.sock")
        async with await aio.listen_unix(path, lt.SCHEMA, node="aserver") as listener:
            client_task = asyncio.create_task(aio.connect_unix(path, lt.SCHEMA, node="aclient"))
            server = await listener.accept(timeout=20)
            client = await client_task
            async with server, client:
                seen: List[int] = []

                def handler(p: lt.ping) -> None:
                    if p.seq == 2:
                        raise RuntimeError("async handler failed on purpose")
                    seen.append(p.seq)

                server.subscribe(lt.ping, callback=handler)
                probes = server.subscribe(lt.probe)
                assert await client.wait_peer_interest(lt.probe, timeout=10)
                for i in (1, 2, 3):
                    client.publish(lt.ping(seq=i))
                client.publish(lt.probe(seq=4))
                assert (await probes.get(timeout=10)).seq == 4
                assert seen == [1, 3] and server.stats.callback_errors == 1
            assert server.closed and client.closed

    with caplog.at_level(logging.ERROR, logger="mycelium"):
        asyncio.run(asyncio.wait_for(main(), 60))
    assert "async handler failed on purpose" in caplog.text and "Traceback" in caplog.text


def test_closed_subscription_and_closed_link_errors(pair: Tuple[link.Link, link.Link]) -> None:
    from mycelium import LinkClosed
    client, server = pair
    with pytest.raises(TypeError, match="delivers to its callback"):
        client.subscribe(lt.chat, callback=print).get(timeout=1)
    sub = client.subscribe(lt.pong)
    sub.close()
    with pytest.raises(LinkClosed, match="the subscription to pong on the link to node 'server'"):
        sub.get(timeout=1)
    assert list(sub) == []  # iteration just ends
    pongs = client.subscribe(lt.pong)
    server.close()
    with pytest.raises(LinkClosed) as info:  # the peer's goodbye: a clean end
        pongs.get(timeout=10)
    assert info.value.errc == Errc.none and "said goodbye" in info.value.text
    assert list(pongs) == []
    with pytest.raises(LinkClosed):
        client.publish(lt.ping())
    assert repr(client.peer).startswith("Hello(node='server', service='python', pid=%d" % os.getpid())
