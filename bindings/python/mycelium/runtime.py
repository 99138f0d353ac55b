"""`mycelium.Node`: the C++ runtime inside a Python process (docs/python.md
section 4).

A `Node` is a Mycelium node: one CAF actor system with one bus, as a C++
node has. Python code publishes, subscribes and requests on it; Python
services (`mycelium.Service`) run on it; links (shared memory, Unix, TCP)
connect it to other nodes with the same handshake, digest check and
authentication as C++, because they are the C++ links. `Node.from_topology`
builds the node a topology.toml describes, links included.

Thread-safety: every method may be called from any thread. A
`Subscription` belongs to one consumer at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import importlib.util
import itertools
import os
import threading
import types
import warnings
from typing import (Any, AsyncIterator, Callable, Dict, Generic, Iterator, List, Optional,
                    Type, TypeVar, Union, cast)

from . import _core
from ._hosting import queue_events, type_name_of
from .codec import Message, Schema
from .errors import CoreError, LinkClosed, Errc, from_core
from .service import Service, message_of, request_via, schema_of

M = TypeVar("M", bound=Message)
R = TypeVar("R", bound=Message)

SchemaLike = Union[Schema, types.ModuleType, Type[Message]]

_live_nodes: "set[Node]" = set()
_live_lock = threading.Lock()


def _stop_live_nodes() -> None:
    with _live_lock:
        nodes = list(_live_nodes)
    for n in nodes:
        n.stop()


# Before the interpreter joins non-daemon threads (service threads end when
# their node stops), stop every node left running.
getattr(threading, "_register_atexit", lambda f: None)(_stop_live_nodes)


def native_module(schema: Schema) -> Optional[types.ModuleType]:
    """The native module of a generated module's schema: ``<module>_native``
    beside it (built by ``mycelium_add_schema(... PYTHON)``), or None when
    there is none. Raises ImportError when it exists but does not load."""
    if not schema.messages:
        return None
    name = next(iter(schema.messages.values())).__module__ + "_native"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return None if spec is None else importlib.import_module(name)


def _native_wanted(native: Optional[bool]) -> Optional[bool]:
    if native is not None:
        return native
    env = os.environ.get("MYCELIUM_NATIVE", "")
    if env in ("", "auto"):
        return None
    if env in ("0", "1"):
        return env == "1"
    raise ValueError("MYCELIUM_NATIVE=%r: use 0 (the codec), 1 (the native module, or fail) "
                     "or auto" % env)


def runtime_schema(schema: Schema, native: Optional[bool] = None) -> Any:
    """The C++ runtime's view of a generated module's schema
    (docs/python.md section 9). With its native module, the runtime carries
    the C++ structs and Python objects are converted by the bridge; without
    it, the runtime knows the schema by its announcement and messages cross
    as TLV bytes that the pure-Python codec writes and reads.

    `native`: None (default; environment ``MYCELIUM_NATIVE``, else auto)
    uses the native module when there is one and warns when it is there
    but unusable; True requires it (ImportError or ValueError otherwise);
    False never uses it."""
    announced = [(tid, name, digest) for tid, name, digest in schema.types]
    want = _native_wanted(native)
    if want is not False:
        try:
            mod = native_module(schema)
            if mod is not None:
                return _core.NativeSchema(mod, schema.digest, announced)
            if want:
                raise ImportError("schema %s has no native module (%s_native): build it with "
                                  "mycelium_add_schema(... PYTHON <dir>) and put <dir> on "
                                  "PYTHONPATH" % (schema.package, next(
                                      iter(schema.messages.values())).__module__))
        except (ImportError, ValueError) as e:
            if want:
                raise
            warnings.warn("mycelium: %s; the node uses the pure-Python codec" % e,
                          RuntimeWarning, stacklevel=3)
    return _core.RawSchema(schema.package, schema.digest, announced)


def _finish_get(cls: Type[M], p: Any, timeout: Optional[float]) -> M:
    """The part of `Subscription.get` that is not a ready bridged message:
    timeout, end, or TLV bytes to decode."""
    if p is None:
        raise TimeoutError("no %s within %s s" % (cls.type_name, timeout))
    if p is _core.STOP:
        raise LinkClosed(Errc.none, "the subscription is closed")
    return message_of(cls, p)


class Subscription(Generic[M]):
    """Messages of one type, in publish order per publisher: `get`, a
    blocking iterator, or ``async for``. Backed by its own bounded queue
    (`capacity` messages; more are dropped and counted in
    `stats()["queue_dropped"]`). `close` (or leaving a ``with`` block)
    ends it."""

    def __init__(self, node: "Node", cls: Type[M], handle: Any, spin: float = 0.0) -> None:
        self._node = node
        self._cls = cls
        self._handle = handle
        # [closed]: shared with the C++ getter, which sets it on STOP.
        self._ended: List[bool] = [False]
        self._spin = spin
        # next() without the event tuple: the payload, _core.STOP or None.
        self._receive = handle.receiver(spin)
        # `get` as one CPython call: a message the bridge made returns with
        # no Python frame; the rest goes to _finish_get. Neither refers to
        # this object (no cycle through the C function).
        self.get = handle.getter(cls, spin,  # type: ignore[assignment]
                                 functools.partial(_finish_get, cls), self._ended)

    @property
    def _closed(self) -> bool:
        return self._ended[0]

    @_closed.setter
    def _closed(self, v: bool) -> None:
        self._ended[0] = v

    @property
    def message_class(self) -> Type[M]:
        return self._cls

    def _decode(self, ev: Any) -> Optional[M]:
        kind, _type_id, _rid, payload, _text = ev
        if kind == _core.EVENT_STOP:
            self._closed = True
            return None
        return message_of(self._cls, payload)

    def get(self, timeout: Optional[float] = None) -> M:
        """The next message; `TimeoutError` after `timeout` seconds (None:
        wait for ever), `LinkClosed` once closed. Ctrl-C interrupts it on
        the main thread within 100 ms. (Each instance replaces this method
        with the C++ getter, which does the same; this is its reference.)"""
        p = _core.STOP if self._closed else self._receive(timeout)
        if type(p) is self._cls:  # the bridge made it (the native module)
            return p
        if p is _core.STOP:
            self._closed = True
        return _finish_get(self._cls, p, timeout)

    def __iter__(self) -> Iterator[M]:
        while not self._closed:
            ev = self._handle.next(None)
            if ev is None:
                continue
            msg = self._decode(ev)
            if msg is None:
                return
            yield msg

    async def __aiter__(self) -> AsyncIterator[M]:
        """Woken by the event loop through an eventfd that the C++ side
        signals when the queue stops being empty (no polling)."""
        # aclosing: leaving early removes the eventfd's reader at once.
        async with contextlib.aclosing(queue_events(self._handle, 1024,
                                                    lambda: self._closed)) as events:
            async for ev in events:
                msg = self._decode(ev)
                if msg is None:
                    return
                yield msg

    async def aget(self, timeout: Optional[float] = None) -> M:
        """`get` on asyncio."""
        async def first() -> M:
            async for m in self:
                return m
            raise LinkClosed(Errc.none, "the subscription is closed")
        return await asyncio.wait_for(first(), timeout)

    def stats(self) -> Dict[str, int]:
        return cast(Dict[str, int], self._handle.stats())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._handle.unsubscribe(self._cls.type_id)
            self._handle.quit()

    def __enter__(self) -> "Subscription[M]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class CallbackSubscription:
    """A callback registered with `Node.on(cls, callback)`; `close`
    removes it (the node lets go of the callback)."""

    def __init__(self, node: "Node", type_id: int, fn: Callable[[Any], Any]) -> None:
        self._node = node
        self._type_id = type_id
        self._fn: Optional[Callable[[Any], Any]] = fn

    def close(self) -> None:
        if self._fn is not None:
            self._node._remove_callback(self._type_id, self._fn)
            self._fn = None

    def __enter__(self) -> "CallbackSubscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Link:
    """A link of a node (shared memory, Unix or TCP), as C++ runs it."""

    def __init__(self, node: "Node", index: int) -> None:
        self._node = node
        self._index = index

    @property
    def port(self) -> int:
        """The TCP port a listening link is bound to."""
        return cast(int, self._node._rt.link_port(self._index))

    def stats(self) -> Dict[str, Any]:
        return cast(Dict[str, Any], self._node._rt.link_stats(self._index))

    def wait_up(self, timeout: float = 5.0) -> bool:
        """Whether a peer is established within `timeout` seconds."""
        return cast(bool, self._node._rt.link_await_up(self._index, float(timeout)))

    def wait_peer_interest(self, cls: Type[Message], timeout: float = 5.0) -> bool:
        """Whether the peer subscribed to `cls` within `timeout` seconds."""
        return cast(bool, self._node._rt.link_await_peer_interest(self._index, cls.type_id,
                                                                  float(timeout)))

    def stop(self) -> None:
        self._node._rt.link_stop(self._index)


class Node:
    """A Mycelium node in this Python process (the C++ runtime inside)."""

    _ids = itertools.count(1)

    def __init__(self, name: str = "python", schema: Optional[SchemaLike] = None, *,
                 options: Optional[Dict[str, Any]] = None, native: Optional[bool] = None,
                 lend_loop: bool = True, _runtime: Any = None, _schema: Any = None) -> None:
        """`native`: whether the runtime takes the schema from its native
        module (`runtime_schema`; default: when there is one).
        `lend_loop`: a subscription that spins while it waits (``spin=``)
        runs the node's I/O loop itself meanwhile, so that the loop's
        thread sleeps and a message from a ring is taken on the waiting
        thread (docs/python.md section 8); False keeps the loop thread
        polling by the links' wait modes."""
        if schema is None:
            raise TypeError("Node(name, schema): give the generated module of the node's schema")
        self.schema = schema_of(schema)
        rs = _schema if _schema is not None else runtime_schema(self.schema, native)
        #: Whether messages cross the runtime as C++ structs (the schema's
        #: native module) rather than as TLV bytes of the pure-Python codec.
        self.native: bool = bool(rs.native)
        try:
            self._rt = _runtime if _runtime is not None else _core.Runtime(
                name, rs, options or {})
        except CoreError as e:
            raise from_core(e) from None
        #: Whether waiting subscriptions run the loop's turns (`lend_loop`).
        self.lends_loop: bool = bool(lend_loop and self._rt.enable_lending())
        self._lock = threading.Lock()
        self._main: Any = None
        self._publisher: Any = None
        self._callbacks: Any = None
        self._callback_table: Dict[int, List[Callable[[Any], Any]]] = {}
        self._callback_thread: Optional[threading.Thread] = None
        self._stopped = False
        with _live_lock:
            _live_nodes.add(self)

    @classmethod
    def from_topology(cls, path: str, node: str, schema: Optional[SchemaLike] = None, *,
                      options: Optional[Dict[str, Any]] = None,
                      native: Optional[bool] = None, lend_loop: bool = True) -> "Node":
        """Node `node` of topology file `path`: its services started (Python
        ones by ``type = "python:pkg.module:Class"``), its links to the other
        nodes started. `wait_links` waits for the peers."""
        if schema is None:
            raise TypeError("Node.from_topology(path, node, schema): give the generated "
                            "module of the topology's schema")
        s = schema_of(schema)
        rs = runtime_schema(s, native)
        try:
            rt = _core.Runtime(path, node, rs, options or {})
        except CoreError as e:
            raise from_core(e) from None
        return cls(node, s, _runtime=rt, _schema=rs, lend_loop=lend_loop)

    @property
    def name(self) -> str:
        return cast(str, self._rt.name)

    # -- services ------------------------------------------------------------------

    def start(self, service: Union[Type[Service], str], name: Optional[str] = None,
              params: Optional[Dict[str, Any]] = None, *, placement: str = "pool",
              max_restarts: int = 3, window: float = 60.0) -> None:
        """Starts a service on this node: a `Service` subclass (run on its
        own Python thread) or a registered type name. Returns once its
        ``on_start`` ran; raises `CoreError` with the reason otherwise."""
        type_name = type_name_of(service) if isinstance(service, type) else service
        if name is None:
            name = service.__name__ if isinstance(service, type) else service
        try:
            self._rt.start_service(type_name, name, params or {}, placement, max_restarts,
                                   window)
        except CoreError as e:
            raise from_core(e) from None

    # -- publish / subscribe / request ----------------------------------------------

    def _main_handle(self) -> Any:
        with self._lock:
            if self._main is None:
                self._main = self._rt.open_client("%s.python" % self.name)
            return self._main

    def loop_stats(self) -> Dict[str, Any]:
        """Counters of the node's I/O loop: turns, resumed actors, polled
        frames, sleeps, socket polls, flushes, `lends` (times a waiting
        subscription ran the loop itself), `attends` (times the loop thread
        took back rings a lender had left), `timers` (messages it delivered at
        their time: loop services' `delayed_send` to themselves) and whether
        it lends."""
        return cast(Dict[str, Any], self._rt.loop_stats())

    def publish(self, msg: Message) -> bool:
        """Publishes `msg`; False when nobody subscribed or a link refused it."""
        pub = self._publisher
        if pub is None:
            # The handle's plain CPython publish (no pybind11 dispatch); from
            # now on it is this instance's `publish` itself, as
            # `Service.publish` is (it raises the same CoreError).
            pub = self._publisher = self._main_handle().publisher()
            self.publish = pub  # type: ignore[assignment]
        try:
            return cast(bool, pub(msg))
        except CoreError as e:
            raise from_core(e) from None

    def subscribe(self, cls: Type[M], *, capacity: int = 65536,
                  spin: float = 0.0) -> Subscription[M]:
        """A `Subscription` to read messages of `cls` from (its own queue of
        `capacity` messages). `spin`: seconds `get` polls before it sleeps
        (see `Service.spin`)."""
        # One service name for all subscriptions: counters are kept per name
        # for the bus's lifetime, so a name per subscription would grow them.
        h = self._rt.open_client("%s.python.sub" % self.name, capacity)
        try:
            h.bind(cls)
            h.subscribe(cls.type_id)
        except CoreError as e:
            h.quit()
            raise from_core(e) from None
        return Subscription(self, cls, h, spin)

    def on(self, cls: Type[M], callback: Callable[[M], Any]) -> CallbackSubscription:
        """Calls `callback` for every `cls`, on the node's callback thread
        (one for all callbacks of the node, one call at a time). A callback
        that raises is logged with its traceback; the others go on."""
        return self._add_callback(cls, callback)

    def _add_callback(self, cls: Type[M], callback: Callable[[M], Any]) -> CallbackSubscription:
        with self._lock:
            if self._callbacks is None:
                self._callbacks = self._rt.open_client("%s.python.callbacks" % self.name)
                self._callback_thread = threading.Thread(
                    target=self._run_callbacks, name="mycelium/%s/callbacks" % self.name,
                    daemon=True)
                self._callback_thread.start()
            def call(payload: Any, c: Type[M] = cls, f: Callable[[M], Any] = callback) -> Any:
                return f(message_of(c, payload))
            table = dict(self._callback_table)
            table[cls.type_id] = table.get(cls.type_id, []) + [call]
            self._callback_table = table
            self._callbacks.bind(cls)
            self._callbacks.subscribe(cls.type_id)
            return CallbackSubscription(self, cls.type_id, call)

    def _remove_callback(self, type_id: int, fn: Callable[[Any], Any]) -> None:
        with self._lock:
            table = dict(self._callback_table)
            left = [f for f in table.get(type_id, []) if f is not fn]
            if left:
                table[type_id] = left
            else:
                table.pop(type_id, None)
                if self._callbacks is not None and not self._stopped:
                    self._callbacks.unsubscribe(type_id)
            self._callback_table = table

    def _run_callbacks(self) -> None:
        import logging
        import traceback
        while True:
            ev = self._callbacks.next(None)
            if ev is None:
                continue
            kind, type_id, _rid, payload, _text = ev
            if kind == _core.EVENT_STOP:
                return
            for fn in self._callback_table.get(type_id, []):
                try:
                    fn(payload)
                except Exception:
                    logging.getLogger("mycelium").error(
                        "node %s: a callback for type id %d raised:\n%s", self.name, type_id,
                        traceback.format_exc())
            fn = None  # type: ignore[assignment]  # let go of a closed callback

    def request(self, req: Message, reply_class: Type[R], timeout: float = 1.0) -> R:
        """Sends `req` to the node's responder of its type; blocks for the
        reply (`RequestTimeout`, `NoResponder`, or the responder's error)."""
        return request_via(self._main_handle(), req, reply_class, timeout)

    async def arequest(self, req: Message, reply_class: Type[R], timeout: float = 1.0) -> R:
        """`request` on asyncio (the wait runs on the loop's executor, so
        the event loop keeps running)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.request, req, reply_class, timeout)

    # -- links -------------------------------------------------------------------

    def connect(self, kind: str, address: str, port: int = 0, **options: Any) -> Link:
        """A link that connects to a peer node: kind "shm", "unix" or "tcp";
        options as `link_config` (secret, wait, ring_capacity, overflow, ...)."""
        return self._link(kind, "connect", address, port, options)

    def listen(self, kind: str, address: str, port: int = 0, **options: Any) -> Link:
        """A link that peers connect to (TCP port 0 picks one: `Link.port`)."""
        return self._link(kind, "listen", address, port, options)

    def _link(self, kind: str, role: str, address: str, port: int,
              options: Dict[str, Any]) -> Link:
        try:
            return Link(self, self._rt.link(kind, role, address, port, options))
        except CoreError as e:
            raise from_core(e) from None

    def wait_links(self, timeout: float = 10.0) -> None:
        """Waits until every topology link has its peers; `TimeoutError`
        naming the links still waiting."""
        ok, why = self._rt.await_links(float(timeout))
        if not ok:
            raise TimeoutError("node %s: peers not reached within %s s: %s"
                               % (self.name, timeout, why))

    def announce_ready(self, nodes: int = 1) -> None:
        """Publishes `deployment_ready` (services that produce data from
        nothing start on it)."""
        self._rt.announce_ready(nodes)

    # -- statistics ----------------------------------------------------------------

    def topics(self) -> List[Dict[str, Any]]:
        return cast(List[Dict[str, Any]], self._rt.topics())

    def services(self) -> List[Dict[str, Any]]:
        return cast(List[Dict[str, Any]], self._rt.services())

    def links(self) -> List[Dict[str, Any]]:
        return cast(List[Dict[str, Any]], self._rt.all_link_stats())

    # -- end -----------------------------------------------------------------------

    def stop(self) -> None:
        """Stops the services (each runs on_stop), the links and the actor
        system. Idempotent; also run at interpreter exit."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._rt.stop()
        if self._callback_thread is not None:
            self._callback_thread.join(10)
        with _live_lock:
            _live_nodes.discard(self)

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
