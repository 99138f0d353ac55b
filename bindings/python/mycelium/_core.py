"""The C++ runtime module (internal): the embedded module of a C++ node
that hosts Python, or else the `_mycelium_core` extension built by CMake
(target mycelium_python_core)."""

from __future__ import annotations

try:
    from _mycelium_core import (EVENT_MESSAGE, EVENT_REQUEST, EVENT_STOP, Handle, NativeSchema,
                                RawSchema, Runtime, RuntimeSchema, STOP, embedded, node_main, noop)
except ImportError as e:  # pragma: no cover - exercised by the install test
    raise ImportError(
        "the mycelium C++ extension (_mycelium_core) is not importable: %s. Build it "
        "(cmake --build build --target mycelium_python_core) and put its directory on "
        "PYTHONPATH, or install it with cmake --install; the pure-Python parts "
        "(codec, link, aio) work without it" % e) from e

__all__ = ["EVENT_MESSAGE", "EVENT_REQUEST", "EVENT_STOP", "Handle", "NativeSchema", "RawSchema",
           "Runtime", "RuntimeSchema", "STOP", "embedded", "node_main", "noop"]
