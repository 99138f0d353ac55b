"""The link protocol core without I/O (as transports/src/link_protocol.cpp):
handshake with digest check and optional HMAC-SHA256 authentication,
sequence numbers, interest, heartbeats, goodbye, refusals with the C++
texts, strict frame checks. Transports (mycelium.link, mycelium.aio) only
move bytes in and out of it.

Thread-safety: none; one owner at a time (the link classes hold a lock
around every call).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import List, Optional, Set, Union

from . import wire
from .codec import (DEFAULT_MAX_PAYLOAD, HEADER_SIZE, MAX_CONTROL_PAYLOAD, Header, Message, Schema,
                    encode_header, read_header)
from .errors import DecodeError, Errc, LinkClosed, LinkError, refusal

# -- what `receive` reports ---------------------------------------------------------


@dataclass
class Established:
    """The handshake (and authentication) passed; `peer` is its hello."""

    peer: wire.Hello


@dataclass
class Data:
    """A data frame that decoded."""

    header: Header
    message: Message


@dataclass
class Interest:
    """The peer subscribed (`add`) or unsubscribed a type id."""

    type_id: int
    add: bool


@dataclass
class BadFrame:
    """A data frame (or interest in a foreign type) that was dropped and
    counted; the link goes on."""

    errc: Errc
    text: str


@dataclass
class Closed:
    """The connection is over. `error` is None after the peer's goodbye,
    else why (a refusal, a broken stream, a protocol violation)."""

    error: Optional[LinkError]


Event = Union[Established, Data, Interest, BadFrame, Closed]


@dataclass
class Stats:
    frames_in: int = 0
    frames_out: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bad_frames: int = 0
    not_wanted: int = 0  #: publishes not sent because the peer has no interest
    callback_errors: int = 0  #: subscription callbacks that raised (logged)
    last_error: str = ""


@dataclass
class Identity:
    node: str = "python"
    service: str = "python"
    pid: int = field(default_factory=os.getpid)


def _secret_bytes(secret: Union[str, bytes, None]) -> Optional[bytes]:
    if secret is None or secret == "" or secret == b"":
        return None
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


class LinkProtocol:
    """One connection's protocol state. Feed received bytes to `receive`;
    write whatever it and the `write_*` methods return."""

    AWAITING_HELLO, AWAITING_AUTH, ESTABLISHED, CLOSED = "awaiting_hello", "awaiting_auth", "established", "closed"

    def __init__(self, schema: Schema, identity: Optional[Identity] = None,
                 secret: Union[str, bytes, None] = None, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 nonce: Optional[bytes] = None) -> None:
        self.schema = schema
        self.identity = identity or Identity()
        self.secret = _secret_bytes(secret)
        self.max_payload = max_payload
        self.state = self.CLOSED
        self.stats = Stats()
        self._nonce = nonce
        self.local = wire.Hello()
        self.peer: Optional[wire.Hello] = None
        self.peer_interest: Set[int] = set()
        self._tx = 0
        self._rx = 0
        self._pending = bytearray()
        self.last_rx = 0.0
        self.last_tx = 0.0

    # -- names
    def peer_name(self) -> str:
        return "<no hello yet>" if self.peer is None else self.peer.who()

    # -- output
    def _frame(self, type_id: int, payload: bytes, control: bool) -> bytes:
        self._tx += 1
        self.stats.frames_out += 1
        self.last_tx = time.monotonic()
        return encode_header(len(payload), type_id, self._tx, 1 if control else 0) + payload

    def start(self) -> bytes:
        """Resets the state for a new connection; returns our hello frame."""
        self.state = self.AWAITING_HELLO
        self._tx = self._rx = 0
        self._pending.clear()
        self.peer = None
        self.peer_interest.clear()
        nonce = self._nonce if self._nonce is not None else os.urandom(16)
        self.local = wire.Hello.for_schema(self.schema, self.identity.node, self.identity.service,
                                           self.identity.pid, nonce,
                                           wire.AUTH_HMAC_SHA256 if self.secret else wire.AUTH_NONE)
        self.last_rx = time.monotonic()
        return self._frame(wire.HELLO, self.local.encode(), True)

    def write_message(self, msg: Message) -> Optional[bytes]:
        """The data frame for `msg` if the peer wants its type, else None
        (counted in `stats.not_wanted`). Raises EncodeError for a value the
        schema does not allow and LinkError when it would exceed the link's
        max_payload or the link is not established."""
        if self.state != self.ESTABLISHED:
            raise LinkClosed(Errc.peer_lost if self.state == self.CLOSED else Errc.protocol_violation,
                             "cannot publish %s: the link is %s" % (msg.type_name, self.state))
        if msg.type_id not in self.peer_interest:
            self.stats.not_wanted += 1
            return None
        payload = msg.encode()
        if len(payload) > self.max_payload:
            raise LinkError(Errc.frame_too_large, "%s of %d bytes exceeds max_payload %d"
                            % (msg.type_name, len(payload), self.max_payload))
        self.stats.messages_out += 1
        return self._frame(msg.type_id, payload, False)

    def write_interest(self, type_id: int, add: bool) -> bytes:
        return self._frame(wire.SUBSCRIBE if add else wire.UNSUBSCRIBE, wire.encode_interest(type_id), True)

    def write_heartbeat(self) -> bytes:
        return self._frame(wire.HEARTBEAT, b"", True)

    def write_goodbye(self) -> bytes:
        self.state = self.CLOSED
        return self._frame(wire.GOODBYE, b"", True)

    def heartbeat_due(self, now: float, interval: float) -> bool:
        return self.state == self.ESTABLISHED and now - self.last_tx >= interval

    def peer_timed_out(self, now: float, timeout: float) -> bool:
        return self.state != self.CLOSED and now - self.last_rx >= timeout

    # -- input
    def receive(self, data: bytes, out: List[bytes]) -> List[Event]:
        """Consumes received bytes; appends frames to send (refusals, the
        auth frame) to `out` and returns what happened, in order. After a
        `Closed` event nothing more is consumed."""
        events: List[Event] = []
        if self.state == self.CLOSED:
            return events
        self.last_rx = time.monotonic()
        self._pending += data
        buf = self._pending
        used = 0
        while len(buf) - used >= HEADER_SIZE and self.state != self.CLOSED:
            try:
                h = read_header(memoryview(buf)[used:used + HEADER_SIZE],
                                max(self.max_payload, MAX_CONTROL_PAYLOAD), need_payload=False)
            except DecodeError as e:
                self._reject(e.errc, "bad frame header from %s: %s" % (self.peer_name(), e.errc.name),
                             out, events)
                break
            if not h.control and h.payload_length > self.max_payload:
                self._reject(Errc.frame_too_large, "frame of %d bytes from %s exceeds max_payload %d; "
                             "configure the same max_payload on both sides"
                             % (h.payload_length, self.peer_name(), self.max_payload), out, events)
                break
            if len(buf) - used - HEADER_SIZE < h.payload_length:
                break
            if h.sequence != self._rx + 1:
                self._reject(Errc.sequence_gap, "sequence gap from %s: expected %d, got %d"
                             % (self.peer_name(), self._rx + 1, h.sequence), out, events)
                break
            self._rx = h.sequence
            self.stats.frames_in += 1
            start = used + HEADER_SIZE
            payload = bytes(buf[start:start + h.payload_length])
            used = start + h.payload_length
            self._handle(h, payload, out, events)
        del buf[:used]
        if self.state == self.CLOSED:
            self._pending.clear()
        return events

    def _close(self, events: List[Event], error: Optional[LinkError]) -> None:
        self.state = self.CLOSED
        if error is not None:
            self.stats.last_error = str(error)
        events.append(Closed(error))

    def _refuse(self, errc: Errc, text: str, out: List[bytes], events: List[Event]) -> None:
        out.append(self._frame(wire.REFUSE, wire.Refuse(int(errc), text).encode(), True))
        self._close(events, refusal(int(errc), text, by_peer=False))

    def _reject(self, errc: Errc, text: str, out: List[bytes], events: List[Event]) -> None:
        if self.state == self.ESTABLISHED:
            self._close(events, LinkClosed(errc, text))
        else:
            self._refuse(errc, text, out, events)

    def _handle(self, h: Header, payload: bytes, out: List[bytes], events: List[Event]) -> None:
        if h.control and h.type_id == wire.REFUSE:
            try:
                r = wire.Refuse.decode(payload)
            except DecodeError as e:
                self._close(events, LinkClosed(e.errc, "undecodable refusal from peer: " + e.errc.name))
                return
            self._close(events, refusal(r.code, r.text, by_peer=True))
            return
        if self.state == self.AWAITING_HELLO:
            self._handle_hello(h, payload, out, events)
        elif self.state == self.AWAITING_AUTH:
            self._handle_auth(h, payload, out, events)
        elif not h.control:
            try:
                msg = self.schema.decode_payload(h.type_id, payload)
            except DecodeError as e:
                self.stats.bad_frames += 1
                events.append(BadFrame(e.errc, "undecodable frame of type %d (sequence %d) from %s: %s"
                                       % (h.type_id, h.sequence, self.peer_name(), e)))
                return
            self.stats.messages_in += 1
            events.append(Data(h, msg))
        elif h.type_id in (wire.SUBSCRIBE, wire.UNSUBSCRIBE):
            try:
                tid = wire.decode_interest(payload)
            except DecodeError as e:
                self._close(events, LinkClosed(e.errc, "bad interest frame from %s: %s"
                                               % (self.peer_name(), e.errc.name)))
                return
            if tid not in self.schema.messages:
                self.stats.bad_frames += 1
                events.append(BadFrame(Errc.unknown_type, "peer %s subscribed to unknown type id %d"
                                       % (self.peer_name(), tid)))
                return
            add = h.type_id == wire.SUBSCRIBE
            if add:
                self.peer_interest.add(tid)
            else:
                self.peer_interest.discard(tid)
            events.append(Interest(tid, add))
        elif h.type_id == wire.HEARTBEAT:
            return
        elif h.type_id == wire.GOODBYE:
            self._close(events, None)
        elif h.type_id == wire.SHM_ATTACH:
            self._close(events, LinkClosed(Errc.protocol_violation,
                                           "the peer offered shared memory on a link that is not a "
                                           "shared-memory link: configure the same link kind on both sides"))
        else:
            self._close(events, LinkClosed(Errc.protocol_violation, "unexpected %s from %s on an established link"
                                           % (wire.describe_frame(h), self.peer_name())))

    def _handle_hello(self, h: Header, payload: bytes, out: List[bytes], events: List[Event]) -> None:
        if not h.control or h.type_id != wire.HELLO:
            self._refuse(Errc.protocol_violation, "peer sent a %s before its hello: the first frame on a "
                         "link must be a hello (docs/wire-protocol.md section 7.3)" % wire.describe_frame(h),
                         out, events)
            return
        try:
            remote = wire.Hello.decode(payload)
        except DecodeError as e:
            partial = getattr(e, "hello", None)
            if partial is None:
                self._refuse(e.errc, "undecodable hello: %s; the peer does not speak Mycelium wire protocol "
                             "version %d or sent a corrupt hello" % (e.errc.name, wire.PROTOCOL_VERSION),
                             out, events)
                return
            remote = partial
        self.peer = remote
        bad = wire.check_hello(self.local, remote) or wire.check_auth_hello(self.secret, self.local, remote)
        if bad is not None:
            self._refuse(bad[0], bad[1], out, events)
            return
        if not self.secret:
            self.state = self.ESTABLISHED
            events.append(Established(remote))
            return
        out.append(self._frame(wire.AUTH, wire.encode_auth(wire.auth_proof(self.secret, remote.nonce,
                                                                            self.local)), True))
        self.state = self.AWAITING_AUTH

    def _handle_auth(self, h: Header, payload: bytes, out: List[bytes], events: List[Event]) -> None:
        if not h.control or h.type_id != wire.AUTH:
            self._refuse(Errc.protocol_violation, "peer %s sent a %s before its authentication proof: with a "
                         "shared secret, the frame after the hello must be an auth frame "
                         "(docs/wire-protocol.md section 9.4)" % (self.peer_name(), wire.describe_frame(h)),
                         out, events)
            return
        try:
            proof = wire.decode_auth(payload)
        except DecodeError as e:
            self._refuse(e.errc, "undecodable auth frame from %s: %s; the proof must be 32 bytes in field 1"
                         % (self.peer_name(), e.errc.name), out, events)
            return
        assert self.peer is not None and self.secret is not None
        if not wire.check_auth_proof(self.secret, self.local.nonce, self.peer, proof):
            self._refuse(Errc.auth_failed, "authentication proof of peer %s does not match: the two sides "
                         "use different secrets (or the proof was replayed from another connection)"
                         % self.peer_name(), out, events)
            return
        self.state = self.ESTABLISHED
        events.append(Established(self.peer))


__all__ = ["LinkProtocol", "Identity", "Stats", "Established", "Data", "Interest", "BadFrame", "Closed",
           "Event"]
