"""Mycelium for Python (pure-Python part; see docs/python.md).

- `mycelium.codec`: the TLV codec and frame format; base classes of the
  message classes that ``mycelium-codegen generate --lang python`` emits.
- `mycelium.wire`: the control frames (hello, refuse, auth, interest,
  heartbeat, goodbye) and the handshake checks.
- `mycelium.protocol`: the link protocol core without I/O.
- `mycelium.link`: blocking link clients over Unix sockets and TCP.
- `mycelium.aio`: the same over asyncio.
- `mycelium.Service`, `on`, `serves`: Python services (`mycelium.service`).
- `mycelium.Node`: the C++ runtime inside this process, with shared-memory,
  Unix and TCP links (`mycelium.runtime`; needs the `_mycelium_core`
  extension, imported on first use).
"""

from .codec import DEFAULT_MAX_PAYLOAD, Enum, Message, Schema
from .errors import (AuthFailed, CoreError, DecodeError, EncodeError, Errc, HandshakeRefused,
                     LinkClosed, LinkError, MyceliumError, NoResponder, RequestTimeout,
                     SchemaMismatch)
from .service import Service, on, serves

__version__ = "0.1.0"

__all__ = ["DEFAULT_MAX_PAYLOAD", "Enum", "Message", "Schema", "AuthFailed", "CoreError",
           "DecodeError", "EncodeError", "Errc", "HandshakeRefused", "LinkClosed", "LinkError",
           "MyceliumError", "NoResponder", "RequestTimeout", "SchemaMismatch", "Service", "on",
           "serves", "Node", "Subscription", "Link", "__version__"]


def __getattr__(name: str) -> object:
    # The runtime needs the C++ extension: imported when first used, so the
    # pure-Python parts work without it.
    if name in ("Node", "Subscription", "Link"):
        from . import runtime
        return getattr(runtime, name)
    raise AttributeError("module 'mycelium' has no attribute %r" % name)
