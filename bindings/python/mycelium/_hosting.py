"""Runs Python service instances for the C++ runtime (internal).

The C++ side (bindings/python/src/python_host.cpp) calls `run_service`
once per instance, with the instance's type ("python:pkg.module:Class")
and its handle; everything else happens on the instance's own thread:
import, checks, ``__init__``, ``on_start``, the handlers, ``on_stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import threading
import traceback
from typing import Any, AsyncGenerator, Callable, Dict, Optional, Tuple, Type

from . import _core
from .codec import Message
from .errors import DecodeError
from .service import DEPLOYMENT_READY_TYPE_ID, Service, message_of

_log = logging.getLogger("mycelium")

_EVENT_MESSAGE = _core.EVENT_MESSAGE

PREFIX = "python:"


#: Classes given to `Node.start` as objects, by their type name: found
#: without an import (a class defined in a function has no importable name).
_given: Dict[str, Type[Service]] = {}


def type_name_of(cls: Type[Service]) -> str:
    """The registry name of a service class, ``python:module:QualName``;
    remembers the class so that `resolve` finds it even when its name
    cannot be imported."""
    name = "%s%s:%s" % (PREFIX, cls.__module__, cls.__qualname__)
    _given[name] = cls
    return name


def resolve(type_name: str) -> Type[Service]:
    """The class that ``python:pkg.module:Class`` names, with errors that
    say what is wrong with the name."""
    if type_name in _given:
        return _given[type_name]
    spec = type_name[len(PREFIX):] if type_name.startswith(PREFIX) else type_name
    module_name, sep, path = spec.partition(":")
    if not sep or not module_name or not path:
        raise ValueError("service type %r is not of the form python:package.module:Class"
                         % type_name)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ImportError("service type %r: cannot import module %r: %s (is it on "
                          "PYTHONPATH? set env = { PYTHONPATH = \"...\" } on the node)"
                          % (type_name, module_name, e)) from e
    for part in path.split("."):
        if not hasattr(obj, part):
            raise AttributeError("service type %r: module %r has no %r"
                                 % (type_name, module_name, path))
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Service)):
        raise TypeError("service type %r names %r, which is not a subclass of mycelium.Service"
                        % (type_name, obj))
    return obj


def run_service(type_name: str, handle: Any) -> None:
    """Starts the instance's thread and returns at once (called by C++)."""
    t = threading.Thread(target=_serve, args=(type_name, handle),
                         name="mycelium/%s" % handle.name)
    t.start()


def _make(cls: Type[Service], handle: Any,
          loop: Optional[asyncio.AbstractEventLoop]) -> Service:
    schema = cls.schema_object()
    if schema is None:
        raise TypeError("service class %s has no handlers and no `schema` attribute; set "
                        "schema = <generated module>" % cls.__qualname__)
    if schema.digest != handle.schema_digest:
        raise ValueError(
            "schema digest mismatch: service %s is built on schema %s (digest %s), node %r "
            "runs schema %s (digest %s); generate both from the same schema file"
            % (cls.__qualname__, schema.package, schema.digest.hex(), handle.node_name,
               handle.schema_package, handle.schema_digest.hex()))
    svc = cls.__new__(cls)
    svc._bind(handle, schema)
    svc.__init__()  # type: ignore[misc]
    for type_id, (message_class, _method) in cls._handlers.items():
        handle.bind(message_class)
        handle.subscribe(type_id)
    if cls.on_ready is not Service.on_ready:
        handle.subscribe(DEPLOYMENT_READY_TYPE_ID)
    for type_id in cls._responders:
        handle.serve(type_id)
    started = svc.on_start()
    if inspect.isawaitable(started):
        if loop is None:  # not reached: an async on_start makes the class use asyncio
            raise TypeError("on_start of %s is a coroutine but the service runs without "
                            "asyncio" % cls.__qualname__)
        loop.run_until_complete(started)
    return svc


_STOP = object()


class _Dispatcher:
    """Turns the events of one instance's queue into calls of its handlers,
    the same for both ways of running it (its own thread, or an asyncio
    loop on that thread): what a handler returns, what it raises, replies,
    and the instance's failure. Used by the instance's thread only."""

    def __init__(self, svc: Service, handle: Any, asynchronous: bool) -> None:
        cls = type(svc)
        self.svc = svc
        self.handle = handle
        self.asynchronous = asynchronous
        self.handlers: Dict[int, Tuple[Type[Message], str]] = cls._handlers
        self.responders: Dict[int, Tuple[Type[Message], str]] = cls._responders
        self.failed = False
        self.bad_payloads = 0

    def fail(self, text: str, request_id: Optional[int] = None) -> None:
        if request_id is not None:
            self.handle.reply_error(request_id, text)
        self.handle.fail(text)  # the C++ side logs it and tells the supervisor
        self.failed = True

    def event(self, ev: Any) -> Any:
        """Handles one event: `_STOP` for the order to stop, None when done,
        or (asyncio) a coroutine that finishes it."""
        kind, type_id, request_id, payload, _text = ev
        if kind == _EVENT_MESSAGE and not self.failed:
            # The common case, with nothing made that only a failure needs:
            # a message of a subscribed type, as the object the C++ side made
            # (the node has the type compiled in), to a handler that returns
            # None. Everything else takes the general path below.
            entry = self.handlers.get(type_id)
            if entry is not None and type(payload) is entry[0] \
                    and type_id != DEPLOYMENT_READY_TYPE_ID:
                handler = getattr(self.svc, entry[1])
                try:
                    result = handler(payload)
                except Exception:
                    self.fail("%s raised:\n%s" % (self.what(handler, entry[0]),
                                                   traceback.format_exc().rstrip()))
                    return None
                if result is None:
                    return None
                return self.settle(result, self.what(handler, entry[0]), None)
        if kind == _core.EVENT_STOP:
            return _STOP
        is_request = kind == _core.EVENT_REQUEST
        handle = self.handle
        if type_id == DEPLOYMENT_READY_TYPE_ID and not self.failed:
            # Field 1 the node (string), field 2 the node count: its last 4 bytes.
            return self.finish(lambda: self.svc.on_ready(int.from_bytes(payload[-4:], "little")),
                               "Python on_ready of service %r" % handle.name, None)
        if self.failed:
            if is_request:
                handle.reply_error(request_id, "service %r has failed" % handle.name)
            return None
        fn: Optional[Callable[[Any], Any]] = None
        mc: Optional[Type[Message]] = None
        entry = (self.responders if is_request else self.handlers).get(type_id)
        if entry is not None:
            mc, method = entry
            fn = getattr(self.svc, method)
        elif not is_request and hasattr(self.svc, "_dynamic") and type_id in self.svc._dynamic:
            mc, fn = self.svc._dynamic[type_id]
        if fn is None or mc is None:
            if is_request:
                handle.reply_error(request_id, "service %r serves no type id %d"
                                   % (handle.name, type_id))
            return None  # unsubscribed meanwhile
        try:
            msg = message_of(mc, payload)
        except DecodeError as e:
            self.bad_payloads += 1
            _log.warning("service %s: dropped an undecodable %s (%s); %d so far",
                         handle.name, mc.type_name, e, self.bad_payloads)
            if is_request:
                handle.reply_error(request_id, "undecodable request: %s" % e)
            return None
        call = fn
        return self.finish(lambda: call(msg), self.what(fn, mc),
                           request_id if is_request else None)

    def what(self, fn: Any, mc: Type[Message]) -> str:
        """How messages about handler `fn` of `mc` name it."""
        return "Python handler %s(%s) of service %r" % (
            getattr(fn, "__qualname__", fn), mc.type_name, self.handle.name)

    def finish(self, call: Callable[[], Any], what: str, request_id: Optional[int]) -> Any:
        try:
            result = call()
        except Exception:
            self.fail("%s raised:\n%s" % (what, traceback.format_exc().rstrip()), request_id)
            return None
        return self.settle(result, what, request_id)

    def settle(self, result: Any, what: str, request_id: Optional[int]) -> Any:
        """What a handler returned: awaited (asyncio), refused (a coroutine
        without asyncio), or the reply to a request."""
        if inspect.isawaitable(result):
            if self.asynchronous:
                return self.finish_async(result, what, request_id)
            if inspect.iscoroutine(result):
                result.close()  # never awaited: no warning, no half-run handler
            self.fail("%s is a coroutine function, but the service runs without asyncio: "
                      "set `use_asyncio = True` on its class" % what, request_id)
            return None
        self.answer(result, what, request_id)
        return None

    async def finish_async(self, result: Any, what: str, request_id: Optional[int]) -> None:
        try:
            value = await result
        except Exception:
            self.fail("%s raised:\n%s" % (what, traceback.format_exc().rstrip()), request_id)
            return
        self.answer(value, what, request_id)

    def answer(self, result: Any, what: str, request_id: Optional[int]) -> None:
        if request_id is None:
            return
        try:
            if not isinstance(result, Message):
                raise TypeError("%s returned %r, not a message" % (what, result))
            self.handle.reply(request_id, result.type_id, result.encode())
        except Exception:
            self.fail("%s raised:\n%s" % (what, traceback.format_exc().rstrip()), request_id)


def _pin(handle: Any) -> None:
    """The service param `cpu`: a CPU number, or a list of them, that this
    service's thread runs on (sched_setaffinity of the calling thread). A
    negative number counts from the end of the CPUs the process may use
    (-1: the last), so a topology can say so without knowing the machine."""
    want = handle.params.get("cpu")
    if want is None:
        return
    cpus = want if isinstance(want, list) else [want]
    if not cpus or not all(isinstance(c, int) and not isinstance(c, bool) for c in cpus):
        raise ValueError("service %r: param cpu must be a CPU number or a list of them, not %r"
                         % (handle.name, want))
    allowed = sorted(os.sched_getaffinity(0))
    if any(-c > len(allowed) for c in cpus if c < 0):
        raise ValueError("service %r: param cpu = %r: the process may use %d CPU(s) %s"
                         % (handle.name, want, len(allowed), allowed))
    cpus = [allowed[c] if c < 0 else c for c in cpus]
    try:
        os.sched_setaffinity(0, set(cpus))  # 0: this thread (Linux)
    except OSError as e:
        raise ValueError("service %r: param cpu = %r: %s (this machine has CPUs %s)"
                         % (handle.name, want, e.strerror,
                            sorted(os.sched_getaffinity(0)))) from None


def _serve(type_name: str, handle: Any) -> None:
    loop: Optional[asyncio.AbstractEventLoop] = None
    try:
        _pin(handle)
        cls = resolve(type_name)
        if cls.uses_asyncio():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
        svc = _make(cls, handle, loop)
    except BaseException:
        handle.started("Python service %r (%s) failed to start:\n%s"
                       % (handle.name, type_name, traceback.format_exc().rstrip()))
        if loop is not None:
            _close_loop(loop)
        handle.finish()
        return
    handle.started(None)
    d = _Dispatcher(svc, handle, loop is not None)
    if loop is None:
        # The service param `spin` (seconds) overrides the class attribute.
        spin = float(handle.params.get("spin", cls.spin))
        next_event = handle.nexter(spin)
        while True:
            ev = next_event(None)
            if ev is not None and d.event(ev) is _STOP:
                break
    else:
        loop.run_until_complete(_serve_async(d, handle))
    try:
        stopped = svc.on_stop()
        if loop is not None and inspect.isawaitable(stopped):
            loop.run_until_complete(stopped)
    except Exception:
        _log.error("service %s: on_stop raised:\n%s", handle.name, traceback.format_exc())
    if loop is not None:
        _close_loop(loop)
    handle.finish()


async def queue_events(handle: Any, batch: int,
                       closed: Callable[[], bool] = lambda: False) -> AsyncGenerator[Any, None]:
    """The events of `handle`'s queue on the running asyncio loop, woken
    through the queue's eventfd that the C++ side signals when the queue
    stops being empty (no polling); `closed` is asked before each batch."""
    loop = asyncio.get_running_loop()
    fd = handle.event_fd()
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    try:
        while not closed():
            ready.clear()
            try:
                os.read(fd, 8)  # reset first: a push after the drain signals again
            except BlockingIOError:
                pass
            events = handle.drain(batch)
            for ev in events:
                yield ev
            if len(events) < batch:
                await ready.wait()
    finally:
        loop.remove_reader(fd)


async def _serve_async(d: _Dispatcher, handle: Any) -> None:
    """The queue on the instance's asyncio loop: handlers run one at a time
    in queue order, each awaited before the next, while the tasks they
    started run meanwhile."""
    async with contextlib.aclosing(queue_events(handle, 256)) as events:
        async for ev in events:
            r = d.event(ev)
            if r is _STOP:
                return
            if r is not None:
                await r


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancels what the handlers left running, then closes the loop."""
    try:
        tasks = asyncio.all_tasks(loop)
        for t in tasks:
            t.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
