"""Mycelium for Python (pure-Python part; see docs/python.md).

- `mycelium.codec`: the TLV codec and frame format; base classes of the
  message classes that ``mycelium-codegen generate --lang python`` emits.
- `mycelium.wire`: the control frames (hello, refuse, auth, interest,
  heartbeat, goodbye) and the handshake checks.
- `mycelium.protocol`: the link protocol core without I/O.
- `mycelium.link`: blocking link clients over Unix sockets and TCP.
- `mycelium.aio`: the same over asyncio.
"""

from .codec import DEFAULT_MAX_PAYLOAD, Enum, Message, Schema
from .errors import (AuthFailed, DecodeError, EncodeError, Errc, HandshakeRefused, LinkClosed,
                     LinkError, MyceliumError, RequestTimeout, SchemaMismatch)

__version__ = "0.1.0"

__all__ = ["DEFAULT_MAX_PAYLOAD", "Enum", "Message", "Schema", "AuthFailed", "DecodeError",
           "EncodeError", "Errc", "HandshakeRefused", "LinkClosed", "LinkError", "MyceliumError",
           "RequestTimeout", "SchemaMismatch", "__version__"]
