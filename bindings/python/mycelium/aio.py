"""Link clients on asyncio: the same protocol core as mycelium.link.

    from mycelium import aio

    lk = await aio.connect_unix(path, tm.SCHEMA, node="py")
    async with lk:
        sub = lk.subscribe(tm.pong)
        await lk.wait_peer_interest(tm.ping, timeout=5)
        lk.publish(tm.ping(seq=1))
        async for msg in sub:          # woken by the event loop, no polling
            ...
        rep = await lk.request(tm.report_request(token=7), tm.report, timeout=2,
                               match=lambda r: r.token == 7)

One reader task per link awaits the stream; a timer task sends heartbeats
and detects a silent peer. Thread-safety: use a link from its event loop
only (as every asyncio object).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import (AsyncIterator, Callable, Dict, Generic, List, Optional, Tuple, Type, TypeVar, Union)

from . import protocol, wire
from .codec import DEFAULT_MAX_PAYLOAD, Message, Schema
from .errors import Errc, LinkClosed, LinkError, RequestTimeout
from .link import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_HEARTBEAT, DEFAULT_PEER_TIMEOUT
from .protocol import Identity, LinkProtocol

M = TypeVar("M", bound=Message)
R = TypeVar("R", bound=Message)

_END = object()  # queued when the link closes
_log = logging.getLogger("mycelium")


class AsyncSubscription(Generic[M]):
    """Messages of one type: ``async for msg in sub`` (ends when the link
    closes cleanly, raises its error otherwise) or ``await sub.get()``."""

    def __init__(self, link: "AsyncLink", cls: Type[M], callback: Optional[Callable[[M], None]]) -> None:
        self.link = link
        self.cls = cls
        self.callback = callback
        self._queue: "asyncio.Queue[object]" = asyncio.Queue()
        self._closed = False

    def _deliver(self, msg: M) -> None:
        if self.callback is not None:
            self.callback(msg)
        else:
            self._queue.put_nowait(msg)

    async def get(self, timeout: Optional[float] = None) -> M:
        """The next message; TimeoutError after `timeout` seconds; the
        link's error (LinkClosed with errc none after a clean close) once the
        link is closed and nothing is queued."""
        if self._queue.empty() and (self._closed or self.link.closed):
            raise self.link._closed_error()
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError("no %s within %.3f s on link to %s"
                               % (self.cls.type_name, timeout or 0.0, self.link.peer_name)) from None
        if item is _END:
            self._queue.put_nowait(_END)  # wake any other waiter too
            raise self.link._closed_error()
        return item  # type: ignore[return-value]

    def __aiter__(self) -> AsyncIterator[M]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[M]:
        while True:
            try:
                msg = await self.get()
            except LinkClosed as e:
                if e.errc == Errc.none:
                    return
                raise
            yield msg

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_END)
            self.link._unsubscribe(self)

    def __enter__(self) -> "AsyncSubscription[M]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncLink:
    """An established connection; create it with `connect_unix`,
    `connect_tcp` or `open` (any asyncio stream pair)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, schema: Schema, *,
                 node: str = "python", service: str = "python", secret: Union[str, bytes, None] = None,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, heartbeat_interval: float = DEFAULT_HEARTBEAT,
                 peer_timeout: float = DEFAULT_PEER_TIMEOUT) -> None:
        self.schema = schema
        self.heartbeat_interval = heartbeat_interval
        self.peer_timeout = peer_timeout
        self._reader = reader
        self._writer = writer
        self._core = LinkProtocol(schema, Identity(node, service), secret, max_payload)
        self._subs: Dict[int, List[AsyncSubscription[Message]]] = {}
        self._error: Optional[LinkError] = None
        self._closed = False
        self._established = False
        self._interest = asyncio.Event()  # set (and replaced) on every interest change
        self._tasks: List["asyncio.Task[None]"] = []

    @classmethod
    async def open(cls, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, schema: Schema,
                   handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT, **kw: object) -> "AsyncLink":
        """Runs the handshake on a connected stream pair; raises
        HandshakeRefused (SchemaMismatch, AuthFailed) when refused."""
        link = cls(reader, writer, schema, **kw)  # type: ignore[arg-type]
        try:
            await asyncio.wait_for(link._handshake(), handshake_timeout)
        except asyncio.TimeoutError:
            link._abort()
            raise LinkError(Errc.peer_lost, "no handshake from the peer within %.1f s"
                            % handshake_timeout) from None
        except BaseException:
            link._abort()
            raise
        link._tasks = [asyncio.create_task(link._read_loop()), asyncio.create_task(link._timer())]
        return link

    # -- properties
    @property
    def peer(self) -> Optional[wire.Hello]:
        return self._core.peer

    @property
    def peer_name(self) -> str:
        return self._core.peer_name()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> protocol.Stats:
        return self._core.stats

    def _closed_error(self) -> LinkError:
        return self._error if self._error is not None else LinkClosed(Errc.none, "link to %s closed"
                                                                      % self.peer_name)

    def _write(self, frames: List[bytes]) -> None:
        if frames:
            self._writer.write(b"".join(frames))

    async def _handshake(self) -> None:
        self._write([self._core.start()])
        while True:
            data = await self._reader.read(65536)
            if not data:
                raise LinkClosed(Errc.peer_lost, "the peer closed the connection during the handshake")
            out: List[bytes] = []
            events = self._core.receive(data, out)
            self._write(out)
            if self._dispatch(events):  # raises a refusal
                try:
                    await self._writer.drain()
                except (ConnectionError, OSError) as e:
                    raise LinkClosed(Errc.io_failed, "writing the handshake to %s: %s"
                                     % (self.peer_name, e)) from None
                return

    def _dispatch(self, events: List[protocol.Event]) -> bool:
        done = False
        for ev in events:
            if isinstance(ev, protocol.Data):
                for sub in list(self._subs.get(ev.header.type_id, ())):
                    try:
                        sub._deliver(ev.message)
                    except Exception:
                        self._core.stats.callback_errors += 1
                        _log.exception("callback for %s from %s raised; the link goes on",
                                       ev.message.type_name, self.peer_name)
            elif isinstance(ev, protocol.Interest):
                self._interest.set()
                self._interest = asyncio.Event()
            elif isinstance(ev, protocol.Established):
                self._established = True
                self._write([self._core.write_interest(t, True) for t in sorted(self._subs)])
                done = True
            elif isinstance(ev, protocol.Closed):
                if not self._established:
                    assert ev.error is not None
                    raise ev.error
                self._error = ev.error if ev.error is not None else LinkClosed(
                    Errc.none, "%s said goodbye" % self.peer_name)
                return True
        return done

    async def _read_loop(self) -> None:
        error: Optional[LinkError] = None
        try:
            while not self._closed:
                data = await self._reader.read(262144)
                if not data:
                    if not self._closed:
                        error = LinkClosed(Errc.peer_lost, "%s closed the connection without a goodbye"
                                           % self.peer_name)
                    break
                out: List[bytes] = []
                events = self._core.receive(data, out)
                self._write(out)
                if self._dispatch(events):
                    break
        except (ConnectionError, OSError) as e:
            if not self._closed:
                error = LinkClosed(Errc.io_failed, "reading from %s: %s" % (self.peer_name, e))
        self._finish(error)

    async def _timer(self) -> None:
        tick = max(min(self.heartbeat_interval, self.peer_timeout / 4), 0.001)
        while not self._closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self._core.peer_timed_out(now, self.peer_timeout):
                self._finish(LinkClosed(Errc.peer_lost, "%s sent nothing for %.3f s"
                                        % (self.peer_name, self.peer_timeout)))
                return
            if self._core.heartbeat_due(now, self.heartbeat_interval):
                self._write([self._core.write_heartbeat()])

    def _finish(self, error: Optional[LinkError]) -> None:
        if self._error is None:
            self._error = error
        if self._closed and not self._subs and self._writer.is_closing():
            return
        self._closed = True
        self._interest.set()
        for lst in self._subs.values():
            for s in lst:
                s._queue.put_nowait(_END)
        self._abort()

    def _abort(self) -> None:
        self._closed = True
        if not self._writer.is_closing():
            self._writer.close()

    # -- the API
    def subscribe(self, cls: Type[M], callback: Optional[Callable[[M], None]] = None) -> AsyncSubscription[M]:
        """Messages of type `cls` from the peer, as `Link.subscribe`; a
        callback runs on the event loop (an exception it raises is logged
        and counted in `stats.callback_errors`)."""
        if cls.type_id not in self.schema.messages:
            raise LinkError(Errc.unknown_type, "%s (id %d) is not a message of schema %s"
                            % (cls.__name__, cls.type_id, self.schema.package))
        if self._closed:
            raise self._closed_error()
        sub = AsyncSubscription(self, cls, callback)
        lst = self._subs.setdefault(cls.type_id, [])
        lst.append(sub)  # type: ignore[arg-type]
        if len(lst) == 1:
            self._write([self._core.write_interest(cls.type_id, True)])
        return sub

    def _unsubscribe(self, sub: AsyncSubscription[M]) -> None:
        lst = self._subs.get(sub.cls.type_id, [])
        if sub in lst:
            lst.remove(sub)  # type: ignore[arg-type]
            if not lst:
                del self._subs[sub.cls.type_id]
                if not self._closed:
                    self._write([self._core.write_interest(sub.cls.type_id, False)])

    def publish(self, msg: Message) -> bool:
        """Queues `msg` on the stream if the peer subscribed to its type;
        False when it did not. `await drain()` to apply back-pressure."""
        if self._closed:
            raise self._closed_error()
        frame = self._core.write_message(msg)
        if frame is None:
            return False
        self._writer.write(frame)
        return True

    async def drain(self) -> None:
        await self._writer.drain()

    async def wait_peer_interest(self, cls: Union[Type[Message], int], timeout: float,
                                 subscribed: bool = True) -> bool:
        """As `Link.wait_peer_interest`, woken by the interest frames."""
        tid = cls if isinstance(cls, int) else cls.type_id
        deadline = time.monotonic() + timeout
        while (tid in self._core.peer_interest) != subscribed:
            left = deadline - time.monotonic()
            if left <= 0 or self._closed:
                return False
            try:
                await asyncio.wait_for(self._interest.wait(), left)
            except asyncio.TimeoutError:
                return False
        return True

    async def request(self, req: Message, reply: Type[R], timeout: float,
                      match: Optional[Callable[[R], bool]] = None) -> R:
        """As `Link.request`: publish, then the first matching reply."""
        deadline = time.monotonic() + timeout
        with self.subscribe(reply) as sub:
            if not await self.wait_peer_interest(req.type_id, timeout):
                if self._closed:
                    raise self._closed_error()
                raise RequestTimeout("no %s within %.3f s: %s never subscribed to %s (no responder)"
                                     % (reply.type_name, timeout, self.peer_name, req.type_name))
            self.publish(req)
            while True:
                try:
                    got = await sub.get(max(deadline - time.monotonic(), 0.0))
                except TimeoutError:
                    raise RequestTimeout("no %s answering %r within %.3f s from %s"
                                         % (reply.type_name, req, timeout, self.peer_name)) from None
                if match is None or match(got):
                    return got

    async def close(self) -> None:
        """Sends goodbye and closes (idempotent)."""
        if not self._closed:
            if self._error is None:
                self._error = LinkClosed(Errc.none, "link to %s closed here" % self.peer_name)
            try:
                self._writer.write(self._core.write_goodbye())
                await self._writer.drain()
            except (ConnectionError, OSError):
                pass
            self._finish(None)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    async def __aenter__(self) -> "AsyncLink":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connect_unix(path: str, schema: Schema, **kw: object) -> AsyncLink:
    """Connects to a Unix-socket peer and runs the handshake; keyword
    arguments as `AsyncLink` plus handshake_timeout."""
    try:
        reader, writer = await asyncio.open_unix_connection(path)
    except OSError as e:
        raise LinkError(Errc.io_failed, "cannot connect to unix socket %s: %s" % (path, e)) from None
    return await AsyncLink.open(reader, writer, schema, **kw)  # type: ignore[arg-type]


async def connect_tcp(host: str, port: int, schema: Schema, **kw: object) -> AsyncLink:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as e:
        raise LinkError(Errc.io_failed, "cannot connect to tcp %s:%d: %s" % (host, port, e)) from None
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return await AsyncLink.open(reader, writer, schema, **kw)  # type: ignore[arg-type]


class AsyncListener:
    """A listening Unix or TCP socket on the event loop; `accept` returns
    an established AsyncLink per connecting peer."""

    def __init__(self, schema: Schema, kw: Dict[str, object], where: str) -> None:
        self.schema = schema
        self.where = where
        self._kw = kw
        self._pending: "asyncio.Queue[Tuple[asyncio.StreamReader, asyncio.StreamWriter]]" = asyncio.Queue()
        self._server: Optional[asyncio.Server] = None

    def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pending.put_nowait((reader, writer))

    @property
    def port(self) -> int:
        """The bound TCP port (0 for a Unix socket)."""
        assert self._server is not None
        for s in self._server.sockets:
            if s.family == socket.AF_INET:
                return int(s.getsockname()[1])
        return 0

    async def accept(self, timeout: Optional[float] = None) -> AsyncLink:
        """Waits for the next peer and runs the handshake with it."""
        try:
            reader, writer = await asyncio.wait_for(self._pending.get(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError("no peer connected to %s within %s s" % (self.where, timeout)) from None
        return await AsyncLink.open(reader, writer, self.schema, **self._kw)  # type: ignore[arg-type]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        while not self._pending.empty():
            _, w = self._pending.get_nowait()
            w.close()

    async def __aenter__(self) -> "AsyncListener":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def listen_unix(path: str, schema: Schema, **kw: object) -> AsyncListener:
    """Listens on a Unix socket; keyword arguments as `AsyncLink.open`."""
    listener = AsyncListener(schema, dict(kw), "unix socket " + path)
    try:
        listener._server = await asyncio.start_unix_server(listener._connected, path)
    except OSError as e:
        raise LinkError(Errc.address_in_use if e.errno == 98 else Errc.io_failed,
                        "cannot listen on unix socket %s: %s" % (path, e)) from None
    return listener


async def listen_tcp(host: str, port: int, schema: Schema, **kw: object) -> AsyncListener:
    """Listens on TCP (port 0 picks one: see `AsyncListener.port`)."""
    listener = AsyncListener(schema, dict(kw), "tcp %s:%d" % (host, port))
    try:
        listener._server = await asyncio.start_server(listener._connected, host, port)
    except OSError as e:
        raise LinkError(Errc.address_in_use if e.errno == 98 else Errc.io_failed,
                        "cannot listen on tcp %s:%d: %s" % (host, port, e)) from None
    return listener


__all__ = ["AsyncLink", "AsyncSubscription", "AsyncListener", "connect_unix", "connect_tcp", "listen_unix",
           "listen_tcp"]
