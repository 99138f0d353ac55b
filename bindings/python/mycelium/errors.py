"""Errors of the Mycelium Python package.

`Errc` mirrors `mycelium::errc` (runtime/include/mycelium/errc.hpp): the
numbers are on the wire (a `refuse` frame carries one) and pinned in
docs/wire-protocol.md section 4.1. Every decoding error has its own
exception class, so that callers can catch exactly one rule; all of them
derive from `DecodeError` and carry the `errc`, the path of the field that
failed (e.g. ``order.leg.venue``) and a text that names both.
"""

from __future__ import annotations

import enum
from typing import Dict, Optional, Type


class Errc(enum.IntEnum):
    """The project's error codes, with the numbers of errc.hpp."""

    none = 0
    truncated = 1
    frame_too_large = 2
    bad_frame_header = 3
    unknown_type = 4
    bad_wire_type = 5
    bad_field_id = 6
    duplicate_field = 7
    bad_enum_value = 8
    bad_bool = 9
    string_too_long = 10
    invalid_utf8 = 11
    bytes_too_long = 12
    vector_too_long = 13
    bad_vector_length = 14
    array_length_mismatch = 15
    bad_magic = 16
    version_mismatch = 17
    schema_mismatch = 18
    auth_failed = 19
    schema_invalid = 20
    schema_incompatible = 21
    no_responder = 22
    request_timeout = 23
    unknown_service = 24
    service_failed = 25
    escalated = 26
    already_registered = 27
    config_invalid = 28
    data_invalid = 29
    peer_lost = 30
    sequence_gap = 31
    protocol_violation = 32
    link_overflow = 33
    address_in_use = 34
    io_failed = 35


def reason_name(code: int) -> str:
    """``schema_mismatch``, or ``unknown code N`` for a number this build does
    not know (as `wire::reason_name` in C++)."""
    try:
        return Errc(code).name
    except ValueError:
        return "unknown code %d" % code


class MyceliumError(Exception):
    """Base of every error this package raises on purpose."""

    errc: Errc = Errc.none


# -- decoding ------------------------------------------------------------------


class DecodeError(MyceliumError, ValueError):
    """Bytes that do not decode. `errc` names the rule (wire-protocol.md
    section 4), `path` the field (``message.field.field``) or the frame."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__("%s: %s (%s)" % (path, detail, self.errc.name))


class TruncatedError(DecodeError):
    errc = Errc.truncated


class FrameTooLargeError(DecodeError):
    errc = Errc.frame_too_large


class BadFrameHeaderError(DecodeError):
    errc = Errc.bad_frame_header


class UnknownTypeError(DecodeError):
    errc = Errc.unknown_type


class BadWireTypeError(DecodeError):
    errc = Errc.bad_wire_type


class BadFieldIdError(DecodeError):
    errc = Errc.bad_field_id


class DuplicateFieldError(DecodeError):
    errc = Errc.duplicate_field


class BadEnumValueError(DecodeError):
    errc = Errc.bad_enum_value


class BadBoolError(DecodeError):
    errc = Errc.bad_bool


class StringTooLongError(DecodeError):
    errc = Errc.string_too_long


class InvalidUtf8Error(DecodeError):
    errc = Errc.invalid_utf8


class BytesTooLongError(DecodeError):
    errc = Errc.bytes_too_long


class VectorTooLongError(DecodeError):
    errc = Errc.vector_too_long


class BadVectorLengthError(DecodeError):
    errc = Errc.bad_vector_length


class ArrayLengthMismatchError(DecodeError):
    errc = Errc.array_length_mismatch


class BadMagicError(DecodeError):
    errc = Errc.bad_magic


DECODE_ERRORS: Dict[Errc, Type[DecodeError]] = {
    c.errc: c
    for c in (TruncatedError, FrameTooLargeError, BadFrameHeaderError, UnknownTypeError,
              BadWireTypeError, BadFieldIdError, DuplicateFieldError, BadEnumValueError,
              BadBoolError, StringTooLongError, InvalidUtf8Error, BytesTooLongError,
              VectorTooLongError, BadVectorLengthError, ArrayLengthMismatchError,
              BadMagicError)
}


# -- encoding ------------------------------------------------------------------


class EncodeError(MyceliumError, ValueError):
    """A value that cannot be encoded: out of its type's range, over its
    schema `max`, the wrong type, not a declared enum value. The text names
    the field (``order.leg.qty``)."""

    errc = Errc.data_invalid

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__("%s: %s" % (path, detail))


# -- links ---------------------------------------------------------------------


class LinkError(MyceliumError):
    """A link failed or was closed. `errc` says why; the text names the peer
    when it is known."""

    def __init__(self, errc: Errc, text: str) -> None:
        self.errc = errc
        self.text = text
        super().__init__("%s: %s" % (errc.name, text))


class HandshakeRefused(LinkError):
    """The handshake failed: refused by the peer (`by_peer` True, with the
    peer's reason number in `code` and its text) or refused here (False)."""

    def __init__(self, errc: Errc, text: str, by_peer: bool, code: Optional[int] = None) -> None:
        self.by_peer = by_peer
        self.code = int(errc) if code is None else code
        super().__init__(errc, text)
        where = "refused by peer" if by_peer else "refused"
        self.args = ("%s (%s): %s" % (where, reason_name(self.code), text),)


class SchemaMismatch(HandshakeRefused):
    """The two sides were built from different schemas (digest mismatch);
    the text names both digests and the first message type that differs."""


class AuthFailed(HandshakeRefused):
    """The shared-secret configuration or proof differs between the sides."""


class LinkClosed(LinkError):
    """The link is closed: by `close()`, a peer's goodbye, a lost peer or a
    broken stream (`errc` tells which)."""


class RequestTimeout(MyceliumError, TimeoutError):
    """No matching reply within the timeout of a request."""

    errc = Errc.request_timeout


def refusal(errc_number: int, text: str, by_peer: bool) -> HandshakeRefused:
    """The exception for a refusal with reason `errc_number`."""
    try:
        errc = Errc(errc_number)
    except ValueError:
        return HandshakeRefused(Errc.protocol_violation, text, by_peer, errc_number)
    cls: Type[HandshakeRefused] = HandshakeRefused
    if errc == Errc.schema_mismatch:
        cls = SchemaMismatch
    elif errc == Errc.auth_failed:
        cls = AuthFailed
    return cls(errc, text, by_peer, errc_number)


class CoreError(MyceliumError):
    """An error of the C++ runtime (the `_mycelium_core` extension, or the
    C++ node that embeds Python), with the text C++ renders for it. `errc`
    is the project error code (`Errc.none` for an error of another
    category, e.g. CAF's own), `code` its raw number (-1 then)."""

    def __init__(self, text: str, code: int = -1) -> None:
        self.code = code
        try:
            self.errc = Errc(code)
        except ValueError:
            self.errc = Errc.none
        super().__init__(text)


class NoResponder(CoreError):
    """A request found no service serving its type on the node."""


def from_core(e: CoreError) -> MyceliumError:
    """The most specific exception for a runtime error: `RequestTimeout`
    for a request without a reply in time, `NoResponder`, or `e` itself."""
    if e.errc == Errc.request_timeout:
        return RequestTimeout(str(e))
    if e.errc == Errc.no_responder:
        return NoResponder(str(e), e.code)
    return e
