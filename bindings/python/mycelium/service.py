"""Python services: ``class Model(mycelium.Service)`` (docs/python.md
section 5).

A service has handlers per message type (``@on(M)``), responders
(``@serves(Req)``, returning the reply), ``on_start``/``on_stop``, typed
``publish`` and its ``params``. The same class runs

- inside a C++ node, by topology (``type = "python:pkg.module:Class"``), on
  that node's bus;
- in a Python node (``python3 -m mycelium.node``, started by mycelium-run,
  or ``mycelium.Node(...).start(Model)``), linked to the other nodes.

Each instance runs on a Python thread of its own, fed by a bounded queue
that the C++ side fills on the publisher's thread: Python never runs on a
CAF worker or the I/O loop, and handlers of one instance run one at a time,
in publish order per publisher (as C++ handlers do). A handler that raises
is logged with its traceback and fails the instance; its node's supervisor
restarts a fresh instance per the restart policy.

Thread-safety: an instance's methods belong to its own thread (handlers,
``on_start``, ``on_stop``); ``publish`` and ``request`` may be called from any
thread.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import types
from typing import (Any, Awaitable, Callable, ClassVar, Dict, Optional, Tuple, Type, TypeVar, Union,
                    cast)

from .codec import Message, Schema
from .errors import CoreError, MyceliumError, from_core

M = TypeVar("M", bound=Message)
R = TypeVar("R", bound=Message)
F = TypeVar("F", bound=Callable[..., Any])

#: The node-local `mycelium::deployment_ready` (docs/services.md).
DEPLOYMENT_READY_TYPE_ID = 0xFFFE0002

#: publish() results (mycelium::publish_status).
PUBLISH_OK = 0
PUBLISH_NO_SUBSCRIBER = 1
PUBLISH_BACK_PRESSURED = 2


def on(message_class: Type[Message]) -> Callable[[F], F]:
    """Marks a method as the handler of `message_class`:
    ``@on(md.quote) def quote(self, q: md.quote) -> None``."""
    def mark(fn: F) -> F:
        setattr(fn, "_mycelium_on", message_class)
        return fn
    return mark


def serves(request_class: Type[Message]) -> Callable[[F], F]:
    """Marks a method as the responder of `request_class`; it returns the
    reply message: ``@serves(md.price_request) def price(self, r) -> md.price_reply``."""
    def mark(fn: F) -> F:
        setattr(fn, "_mycelium_serves", request_class)
        return fn
    return mark


def schema_of(x: Union[Schema, types.ModuleType, Type[Message]]) -> Schema:
    """The `Schema` of a generated module, of one of its message classes,
    or `x` itself."""
    if isinstance(x, Schema):
        return x
    if isinstance(x, types.ModuleType):
        s = getattr(x, "SCHEMA", None)
        if not isinstance(s, Schema):
            raise TypeError("module %s is not a generated message module (it has no SCHEMA)"
                            % x.__name__)
        return s
    if isinstance(x, type) and issubclass(x, Message):
        return schema_of(sys.modules[x.__module__])
    raise TypeError("not a schema, generated module or message class: %r" % (x,))


class Service:
    """Base class of Python services. Subclass it, mark handlers with
    `on` and responders with `serves`, and override `on_start` /
    `on_stop` as needed. The class attribute `schema` (a generated module)
    is optional: by default it is the module of the handlers' classes."""

    schema: ClassVar[Optional[Any]] = None
    #: Seconds the instance's thread polls its queue before it sleeps: 0
    #: (default) sleeps at once; a few tens of microseconds save the
    #: wake-up of a sleeping thread per message (tens of microseconds on a
    #: VM) at the price of a busy CPU meanwhile. The service parameter
    #: `spin` overrides it per instance. While it spins, the thread runs the
    #: node's I/O loop (docs/python.md section 8) in a Python process, and
    #: in a C++ node when the service parameter `lend_loop` is true.
    spin: ClassVar[float] = 0.0
    #: Whether the instance's thread runs an asyncio loop, so that handlers,
    #: responders and on_start/on_ready/on_stop may be ``async def`` (they
    #: are awaited one at a time, in queue order, and the tasks they start
    #: run meanwhile). None (default): when any of them is ``async def``.
    #: The queue then wakes the loop through an eventfd; `spin` does not
    #: apply.
    use_asyncio: ClassVar[Optional[bool]] = None
    _handlers: ClassVar[Dict[int, Tuple[Type[Message], str]]] = {}
    _responders: ClassVar[Dict[int, Tuple[Type[Message], str]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: Dict[int, Tuple[Type[Message], str]] = {}
        responders: Dict[int, Tuple[Type[Message], str]] = {}
        for klass in reversed(cls.__mro__):
            for name, fn in vars(klass).items():
                mc = getattr(fn, "_mycelium_on", None)
                if mc is not None:
                    handlers[mc.type_id] = (mc, name)
                rc = getattr(fn, "_mycelium_serves", None)
                if rc is not None:
                    responders[rc.type_id] = (rc, name)
        cls._handlers = handlers
        cls._responders = responders

    # Set by the host before __init__ runs (so params work in __init__ too).
    _handle: Any
    _schema: Schema
    _classes: Dict[int, Type[Message]]

    @classmethod
    def uses_asyncio(cls) -> bool:
        """Whether instances run on an asyncio loop (see `use_asyncio`)."""
        if cls.use_asyncio is not None:
            return cls.use_asyncio
        names = [m for _, m in list(cls._handlers.values()) + list(cls._responders.values())]
        names += ["on_start", "on_ready", "on_stop"]
        return any(inspect.iscoroutinefunction(getattr(cls, n, None)) for n in names)

    @classmethod
    def schema_object(cls) -> Optional[Schema]:
        """The schema of this class: `schema`, or its handlers' module."""
        if cls.schema is not None:
            return schema_of(cls.schema)
        for mc, _ in list(cls._handlers.values()) + list(cls._responders.values()):
            return schema_of(mc)
        return None

    def _bind(self, handle: Any, schema: Schema) -> None:
        self._handle = handle
        self._schema = schema
        self._classes = dict(schema.messages)
        if type(self).publish is Service.publish:
            # The C++ call itself, without a Python frame around it (a
            # quarter of the publish's time); a subclass that overrides
            # publish keeps its own.
            setattr(self, "publish", handle.publisher())

    # -- what a service is -------------------------------------------------------

    @property
    def name(self) -> str:
        """The instance name (from the topology or `Node.start`)."""
        return cast(str, self._handle.name)

    @property
    def node_name(self) -> str:
        return cast(str, self._handle.node_name)

    @property
    def params(self) -> Dict[str, Any]:
        """The instance's parameters (topology ``params`` or `Node.start`)."""
        return cast(Dict[str, Any], self._handle.params)

    # The three hooks may be overridden by plain or ``async def`` methods
    # (the latter make the instance use asyncio, see `use_asyncio`).

    def on_start(self) -> Optional[Awaitable[None]]:
        """Runs once before any handler, on the instance's thread."""
        return None

    def on_stop(self) -> Optional[Awaitable[None]]:
        """Runs once when the instance ends (stop, failure or quit)."""
        return None

    def on_ready(self, nodes: int) -> Optional[Awaitable[None]]:
        """Override it to hear when the whole deployment is ready (C++'s
        `deployment_ready`): every node started and linked, so what is
        published from now on reaches every subscriber. `nodes` is the
        number of nodes. A service that produces data from nothing starts
        here."""
        return None

    # -- what it does ------------------------------------------------------------

    def publish(self, msg: Message) -> bool:
        """Publishes `msg` on the node's bus; False when nobody subscribed
        (counted, not an error) or a link's queue refused it."""
        # Runs only when a subclass overrides publish and calls this one: the
        # instance's publish is the C++ function itself (see _bind). Its
        # errors are CoreErrors, which from_core keeps as they are.
        return cast(bool, self._handle.publish_object(msg))

    def request(self, req: Message, reply_class: Type[R], timeout: float = 1.0) -> R:
        """Sends `req` to the node's responder of its type and waits for the
        reply: `RequestTimeout`, `NoResponder`, or the responder's error."""
        return request_via(self._handle, req, reply_class, timeout)

    async def arequest(self, req: Message, reply_class: Type[R], timeout: float = 1.0) -> R:
        """`request` for ``async def`` handlers: waits on the loop's
        executor, so the instance's other tasks go on meanwhile."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, request_via, self._handle, req, reply_class,
                                          timeout)

    def subscribe(self, message_class: Type[M], fn: Callable[[M], Any]) -> None:
        """Adds a handler at run time (call from this instance's thread)."""
        table = dict(self._dynamic) if hasattr(self, "_dynamic") else {}
        table[message_class.type_id] = (message_class, fn)
        self._dynamic = table
        self._handle.bind(message_class)
        self._handle.subscribe(message_class.type_id)

    def unsubscribe(self, message_class: Type[Message]) -> None:
        if hasattr(self, "_dynamic"):
            self._dynamic.pop(message_class.type_id, None)
        self._handle.unsubscribe(message_class.type_id)

    def quit(self) -> None:
        """Ends this instance normally (it is not restarted)."""
        self._handle.quit()

    def stats(self) -> Dict[str, int]:
        """The instance's counters: published, delivered, dropped,
        handler_errors, restarts, and its queue (queued, queue_dropped,
        queue_high_water, queue_capacity)."""
        return cast(Dict[str, int], self._handle.stats())

    def loop_stats(self) -> Dict[str, Any]:
        """The counters of the I/O loop that this instance's spinning waits
        run (turns, lends, ...), or {} when they do not run one."""
        return cast(Dict[str, Any], self._handle.lend_stats())

    _dynamic: Dict[int, Tuple[Type[Message], Callable[[Any], Any]]]


def message_of(cls: Type[M], payload: Any) -> M:
    """A delivery's payload as a `cls` object: the object itself when the
    C++ side made it from the struct (the node has the type compiled in,
    docs/python.md section 9), else decoded from its TLV bytes (raises
    DecodeError)."""
    if type(payload) is cls:
        return payload  # narrowed to M by the check
    if type(payload) is not bytes:  # another class of the same type id
        payload = payload.encode()
    return cls.decode(payload)


def request_via(handle: Any, req: Message, reply_class: Type[R], timeout: float) -> R:
    """Request/reply through a runtime handle (shared by services and nodes)."""
    try:
        type_id, payload = handle.request(req.type_id, req.encode(), float(timeout))
    except CoreError as e:
        raise from_core(e) from None
    if type_id != reply_class.type_id:
        raise MyceliumError("the reply to %s is a type id %d, not %s"
                            % (req.type_name, type_id, reply_class.type_name))
    return reply_class.decode(payload)
