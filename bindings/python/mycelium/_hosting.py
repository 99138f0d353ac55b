"""Runs Python service instances for the C++ runtime (internal).

The C++ side (bindings/python/src/python_host.cpp) calls `run_service`
once per instance, with the instance's type ("python:pkg.module:Class")
and its handle; everything else happens on the instance's own thread:
import, checks, ``__init__``, ``on_start``, the handlers, ``on_stop``.
"""

from __future__ import annotations

import importlib
import logging
import threading
import traceback
from typing import Any, Callable, Dict, Optional, Tuple, Type

from . import _core
from .codec import Message
from .errors import DecodeError
from .service import DEPLOYMENT_READY_TYPE_ID, Service, message_of

_log = logging.getLogger("mycelium")

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


def _make(type_name: str, handle: Any) -> Service:
    cls = resolve(type_name)
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
    svc.on_start()
    return svc


def _serve(type_name: str, handle: Any) -> None:
    try:
        svc = _make(type_name, handle)
    except BaseException:
        handle.started("Python service %r (%s) failed to start:\n%s"
                       % (handle.name, type_name, traceback.format_exc().rstrip()))
        handle.finish()
        return
    handle.started(None)
    cls = type(svc)
    handlers: Dict[int, Tuple[Type[Message], str]] = cls._handlers
    responders: Dict[int, Tuple[Type[Message], str]] = cls._responders
    failed = False
    bad_payloads = 0
    # The service param `spin` (seconds) overrides the class attribute.
    spin = float(handle.params.get("spin", cls.spin))
    while True:
        ev = handle.next(None, spin)
        if ev is None:
            continue
        kind, type_id, request_id, payload, _text = ev
        if kind == _core.EVENT_STOP:
            break
        is_request = kind == _core.EVENT_REQUEST
        if type_id == DEPLOYMENT_READY_TYPE_ID and not failed:
            # Field 1 the node (string), field 2 the node count: its last 4 bytes.
            try:
                svc.on_ready(int.from_bytes(payload[-4:], "little"))
            except Exception:
                text = "Python on_ready of service %r raised:\n%s" % (
                    handle.name, traceback.format_exc().rstrip())
                handle.fail(text)
                failed = True
            continue
        if failed:
            if is_request:
                handle.reply_error(request_id, "service %r has failed" % handle.name)
            continue
        fn: Optional[Callable[[Any], Any]] = None
        mc: Optional[Type[Message]] = None
        entry = (responders if is_request else handlers).get(type_id)
        if entry is not None:
            mc, method = entry
            fn = getattr(svc, method)
        elif not is_request and hasattr(svc, "_dynamic") and type_id in svc._dynamic:
            mc, fn = svc._dynamic[type_id]
        if fn is None or mc is None:
            if is_request:
                handle.reply_error(request_id, "service %r serves no type id %d"
                                   % (handle.name, type_id))
            continue  # unsubscribed meanwhile
        try:
            msg = message_of(mc, payload)
        except DecodeError as e:
            bad_payloads += 1
            _log.warning("service %s: dropped an undecodable %s (%s); %d so far",
                         handle.name, mc.type_name, e, bad_payloads)
            if is_request:
                handle.reply_error(request_id, "undecodable request: %s" % e)
            continue
        try:
            result = fn(msg)
            if is_request:
                if not isinstance(result, Message):
                    raise TypeError("responder %s returned %r, not a message"
                                    % (getattr(fn, "__qualname__", fn), result))
                handle.reply(request_id, result.type_id, result.encode())
        except Exception:
            text = ("Python handler %s(%s) of service %r raised:\n%s"
                    % (getattr(fn, "__qualname__", fn), mc.type_name, handle.name,
                       traceback.format_exc().rstrip()))
            if is_request:
                handle.reply_error(request_id, text)
            handle.fail(text)  # the C++ side logs it and tells the supervisor
            failed = True
    try:
        svc.on_stop()
    except Exception:
        _log.error("service %s: on_stop raised:\n%s", handle.name, traceback.format_exc())
    handle.finish()
