"""Control frames and the handshake of docs/wire-protocol.md sections 7 and 9:
hello, refuse, auth, subscribe / unsubscribe, heartbeat, goodbye; the
`check_hello` rules, the authentication rules and the HMAC-SHA256 proof.
Byte for byte what runtime/src/wire/handshake.cpp and
transports/src/link_protocol.cpp write and accept.

Pure functions and immutable values: thread-safe.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from .codec import (FIXED8, FIXED16, FIXED32, FIRST_CONTROL_TYPE_ID, FLAG_CONTROL,
                    SIZED, Buffer, Header, Schema, encode_header, tag_bytes)
from .errors import (ArrayLengthMismatchError, BadMagicError, BadVectorLengthError,
                     BadWireTypeError, BadFieldIdError, BytesTooLongError,
                     DuplicateFieldError, Errc, InvalidUtf8Error, StringTooLongError,
                     TruncatedError, UnknownTypeError, VectorTooLongError)

HELLO, REFUSE, SUBSCRIBE, UNSUBSCRIBE, HEARTBEAT, GOODBYE, SHM_ATTACH, AUTH = range(0xFFFF0001, 0xFFFF0009)
CONTROL_NAMES = {HELLO: "hello", REFUSE: "refuse", SUBSCRIBE: "subscribe",
                 UNSUBSCRIBE: "unsubscribe", HEARTBEAT: "heartbeat", GOODBYE: "goodbye",
                 SHM_ATTACH: "shm_attach", AUTH: "auth"}

MAGIC = 0x4C43594D  # bytes 4D 59 43 4C, "MYCL"
PROTOCOL_VERSION = 1
AUTH_NONE = 0
AUTH_HMAC_SHA256 = 1
AUTH_LABEL = b"mycelium-auth-v2"
MAX_NAME = 255
MAX_TYPES = 65535
MAX_PROOF = 256
MAX_TEXT = 4096

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_FIXED_SIZE = (1, 2, 4, 8)


def describe_frame(h: Header) -> str:
    """``data frame of type 5``, ``control frame goodbye (0xffff0006)`` or
    ``control frame of unknown type 0x...`` (as the C++ texts)."""
    if not h.control:
        return "data frame of type %d" % h.type_id
    name = CONTROL_NAMES.get(h.type_id)
    if name is not None:
        return "control frame %s (0x%08x)" % (name, h.type_id)
    return "control frame of unknown type 0x%08x" % h.type_id


def clip(s: str, n: int) -> bytes:
    """UTF-8 of `s` cut to at most `n` bytes without splitting a sequence."""
    b = s.encode("utf-8", "surrogateescape")
    if len(b) <= n:
        return b
    while n > 0 and (b[n] & 0xC0) == 0x80:
        n -= 1
    return b[:n]


def control_frame(type_id: int, sequence: int, payload: bytes = b"") -> bytes:
    return encode_header(len(payload), type_id, sequence, FLAG_CONTROL) + payload


def _fixed(fid: int, wt: int, fmt: str, v: int) -> bytes:
    return tag_bytes(fid, wt) + struct.pack("<" + fmt, v)


def _sized(fid: int, b: bytes) -> bytes:
    return tag_bytes(fid, SIZED) + _U32.pack(len(b)) + b


# -- reading control payloads ------------------------------------------------------


class _Reader:
    """Fields of a control payload, with the duplicate rule of control frames
    (ids below 32 at most once, known or not)."""

    def __init__(self, what: str, payload: Buffer) -> None:
        self.what = what
        self.buf = payload
        self.pos = 0
        self.end = len(payload)
        self.seen = 0

    def fields(self) -> "_Reader":
        return self

    def __iter__(self) -> "_Reader":
        return self

    def __next__(self) -> Tuple[int, int]:
        if self.pos == self.end:
            raise StopIteration
        if self.end - self.pos < 2:
            raise TruncatedError(self.what, "a tag needs 2 bytes, %d left" % (self.end - self.pos))
        (t,) = _U16.unpack_from(self.buf, self.pos)
        self.pos += 2
        wt, fid = t & 7, t >> 3
        if wt > SIZED:
            raise BadWireTypeError(self.what, "tag 0x%04x has wire type %d" % (t, wt))
        if fid == 0:
            raise BadFieldIdError(self.what, "tag 0x%04x has field id 0" % t)
        if fid < 32:
            if self.seen & (1 << fid):
                raise DuplicateFieldError(self.what, "field %d appears twice" % fid)
            self.seen |= 1 << fid
        return fid, wt

    def has(self, fid: int) -> bool:
        return bool(self.seen & (1 << fid))

    def scalar(self, fid: int, wt: int, want: int) -> int:
        if wt != want:
            raise BadWireTypeError("%s field %d" % (self.what, fid), "wire type %d, expected %d" % (wt, want))
        n = _FIXED_SIZE[want]
        if self.end - self.pos < n:
            raise TruncatedError("%s field %d" % (self.what, fid), "needs %d bytes" % n)
        v = int.from_bytes(self.buf[self.pos:self.pos + n], "little")
        self.pos += n
        return v

    def sized(self, fid: int, wt: int) -> bytes:
        if wt != SIZED:
            raise BadWireTypeError("%s field %d" % (self.what, fid), "wire type %d, expected 4 (sized)" % wt)
        if self.end - self.pos < 4:
            raise TruncatedError("%s field %d" % (self.what, fid), "the length prefix needs 4 bytes")
        (n,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        if self.end - self.pos < n:
            raise TruncatedError("%s field %d" % (self.what, fid), "%d bytes, only %d left"
                                 % (n, self.end - self.pos))
        b = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return b

    def string(self, fid: int, wt: int, max: int) -> str:
        b = self.sized(fid, wt)
        if len(b) > max:
            raise StringTooLongError("%s field %d" % (self.what, fid), "%d bytes, at most %d" % (len(b), max))
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidUtf8Error("%s field %d" % (self.what, fid), "not valid UTF-8") from None

    def exact(self, fid: int, wt: int, n: int) -> bytes:
        b = self.sized(fid, wt)
        if len(b) != n:
            raise ArrayLengthMismatchError("%s field %d" % (self.what, fid), "%d bytes, exactly %d expected"
                                           % (len(b), n))
        return b

    def skip(self, fid: int, wt: int) -> None:
        if wt == SIZED:
            self.sized(fid, wt)
            return
        n = _FIXED_SIZE[wt]
        if self.end - self.pos < n:
            raise TruncatedError(self.what, "unknown field %d: %d bytes, only %d left"
                                 % (fid, n, self.end - self.pos))
        self.pos += n


# -- hello (section 7.1) -------------------------------------------------------------


@dataclass
class Hello:
    """The first frame in each direction (control type 0xFFFF0001)."""

    schema_digest: bytes = bytes(32)
    node: str = ""
    service: str = ""
    pid: int = 0
    types: List[Tuple[int, str, bytes]] = field(default_factory=list)
    nonce: bytes = bytes(16)
    auth_scheme: int = AUTH_NONE
    magic: int = MAGIC
    version: int = PROTOCOL_VERSION
    auth_proof: bytes = b""

    @classmethod
    def for_schema(cls, schema: Schema, node: str, service: str, pid: int, nonce: bytes,
                   auth_scheme: int = AUTH_NONE) -> "Hello":
        return cls(schema.digest, node, service, pid, list(schema.types), nonce, auth_scheme)

    def __repr__(self) -> str:
        return ("Hello(node=%r, service=%r, pid=%d, schema_digest=%s, types=%d, auth_scheme=%d, magic=0x%08x, "
                "version=%d)" % (self.node, self.service, self.pid, self.schema_digest.hex(), len(self.types),
                                 self.auth_scheme, self.magic, self.version))

    def who(self) -> str:
        return "node '%s' service '%s' (pid %d)" % (self.node, self.service, self.pid)

    def encode(self) -> bytes:
        """The payload, fields in the order of the C++ encoder (names cut to
        255 bytes on a UTF-8 boundary)."""
        tl = bytearray(_U32.pack(len(self.types)))
        for tid, name, digest in self.types:
            n = clip(name, MAX_NAME)
            tl += _U32.pack(tid) + digest + bytes((len(n),)) + n
        p = (_fixed(1, FIXED32, "I", self.magic) + _fixed(2, FIXED16, "H", self.version)
             + _sized(3, self.schema_digest) + _sized(4, clip(self.node, MAX_NAME))
             + _sized(5, clip(self.service, MAX_NAME)) + _fixed(6, FIXED32, "I", self.pid)
             + _sized(7, self.auth_proof) + _sized(8, bytes(tl)))
        if self.nonce != bytes(16):
            p += _sized(9, self.nonce)
        if self.auth_scheme != AUTH_NONE:
            p += _fixed(10, FIXED8, "B", self.auth_scheme)
        return p

    @classmethod
    def decode(cls, payload: Buffer) -> "Hello":
        """Decodes with the rules of section 7.1; a bad or missing magic
        raises BadMagicError only after the other fields decoded (the error
        carries the partly decoded hello in `hello`)."""
        h = cls(magic=0)
        r = _Reader("hello", payload)
        for fid, wt in r:
            if fid == 1:
                h.magic = r.scalar(fid, wt, FIXED32)
            elif fid == 2:
                h.version = r.scalar(fid, wt, FIXED16)
            elif fid == 3:
                h.schema_digest = r.exact(fid, wt, 32)
            elif fid == 4:
                h.node = r.string(fid, wt, MAX_NAME)
            elif fid == 5:
                h.service = r.string(fid, wt, MAX_NAME)
            elif fid == 6:
                h.pid = r.scalar(fid, wt, FIXED32)
            elif fid == 7:
                b = r.sized(fid, wt)
                if len(b) > MAX_PROOF:
                    raise BytesTooLongError("hello field 7", "%d bytes, at most %d" % (len(b), MAX_PROOF))
                h.auth_proof = b
            elif fid == 8:
                h.types = _decode_types(r.sized(fid, wt))
            elif fid == 9:
                h.nonce = r.exact(fid, wt, 16)
            elif fid == 10:
                h.auth_scheme = r.scalar(fid, wt, FIXED8)
            else:
                r.skip(fid, wt)
        required = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8)
        if h.magic != MAGIC or not r.has(1):
            e = BadMagicError("hello", "magic 0x%08x is not MYCL" % h.magic)
            e.hello = h  # type: ignore[attr-defined]
            raise e
        if r.seen & required != required:
            missing = [str(i) for i in (2, 3, 4, 5, 6, 8) if not r.has(i)]
            raise TruncatedError("hello", "required field(s) %s missing" % ", ".join(missing))
        return h


def _decode_types(tl: bytes) -> List[Tuple[int, str, bytes]]:
    if len(tl) < 4:
        raise TruncatedError("hello type list", "needs a 4-byte count")
    (count,) = _U32.unpack_from(tl, 0)
    if count > MAX_TYPES:
        raise VectorTooLongError("hello type list", "%d entries, at most %d" % (count, MAX_TYPES))
    pos = 4
    out = []
    for i in range(count):
        if len(tl) - pos < 37:
            raise TruncatedError("hello type list", "entry %d is cut short" % i)
        (tid,) = _U32.unpack_from(tl, pos)
        digest = tl[pos + 4:pos + 36]
        n = tl[pos + 36]
        pos += 37
        if len(tl) - pos < n:
            raise TruncatedError("hello type list", "the name of entry %d is cut short" % i)
        try:
            name = tl[pos:pos + n].decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidUtf8Error("hello type list", "the name of entry %d is not UTF-8" % i) from None
        pos += n
        out.append((tid, name, digest))
    if pos != len(tl):
        raise BadVectorLengthError("hello type list", "%d bytes left after %d entries" % (len(tl) - pos, count))
    return out


# -- refuse (7.2), auth (9.4), interest (9.1) -------------------------------------------


@dataclass
class Refuse:
    code: int = 0
    text: str = ""

    def encode(self) -> bytes:
        return _fixed(1, FIXED32, "I", self.code) + _sized(2, clip(self.text, MAX_TEXT))

    @classmethod
    def decode(cls, payload: Buffer) -> "Refuse":
        x = cls()
        r = _Reader("refuse", payload)
        for fid, wt in r:
            if fid == 1:
                x.code = r.scalar(fid, wt, FIXED32)
            elif fid == 2:
                x.text = r.string(fid, wt, MAX_TEXT)
            else:
                r.skip(fid, wt)
        return x


def encode_auth(proof: bytes) -> bytes:
    return _sized(1, proof)


def decode_auth(payload: Buffer) -> bytes:
    r = _Reader("auth", payload)
    proof: Optional[bytes] = None
    for fid, wt in r:
        if fid == 1:
            proof = r.exact(fid, wt, 32)
        else:
            r.skip(fid, wt)
    if proof is None:
        raise TruncatedError("auth", "field 1 (the proof) is missing")
    return proof


def encode_interest(type_id: int) -> bytes:
    return _fixed(1, FIXED32, "I", type_id)


def decode_interest(payload: Buffer) -> int:
    r = _Reader("interest", payload)
    type_id: Optional[int] = None
    for fid, wt in r:
        if fid == 1:
            type_id = r.scalar(fid, wt, FIXED32)
        else:
            r.skip(fid, wt)
    if type_id is None:
        raise TruncatedError("interest", "field 1 (the type id) is missing")
    if type_id == 0 or type_id >= FIRST_CONTROL_TYPE_ID:
        raise UnknownTypeError("interest", "type id 0x%08x is not a schema type id" % type_id)
    return type_id


# -- the handshake checks (7.3, 9.4) --------------------------------------------------------


def check_hello(local: Hello, remote: Hello) -> Optional[Tuple[Errc, str]]:
    """The rules of section 7.3 in order: None when the link may proceed,
    else (reason, text) with the C++ texts."""
    if remote.magic != MAGIC:
        return Errc.bad_magic, "peer %s is not a Mycelium peer (bad magic)" % remote.who()
    if remote.version != local.version:
        return (Errc.version_mismatch, "protocol version mismatch: local %d vs remote %d from %s"
                % (local.version, remote.version, remote.who()))
    if remote.schema_digest == local.schema_digest:
        return None
    return (Errc.schema_mismatch,
            "schema digest mismatch: local %s has %s, remote %s has %s; first differing message "
            "type: %s. Rebuild both sides from the same schema file."
            % (local.who(), local.schema_digest.hex(), remote.who(), remote.schema_digest.hex(),
               first_difference(local.types, remote.types)))


def first_difference(ours: List[Tuple[int, str, bytes]], theirs: List[Tuple[int, str, bytes]]) -> str:
    mine = {t[0]: t for t in ours}
    other = {t[0]: t for t in theirs}
    for tid in sorted(set(mine) | set(other)):
        a, b = mine.get(tid), other.get(tid)
        if b is None and a is not None:
            return "%s (id %d) exists only locally" % (a[1], tid)
        if a is None and b is not None:
            return "%s (id %d) exists only on the remote side" % (b[1], tid)
        assert a is not None and b is not None
        if a[2] != b[2] or a[1] != b[1]:
            text = "%s (id %d)" % (a[1], tid)
            if a[1] != b[1]:
                text += ", called '%s' remotely" % b[1]
            return text
    return "none found in the announced type lists"


def check_auth_hello(secret: Optional[bytes], local: Hello, remote: Hello) -> Optional[Tuple[Errc, str]]:
    """The authentication rules of section 9.4 on the peer's hello."""
    who = "peer " + remote.who()
    scheme = remote.auth_scheme
    if not secret:
        if scheme == AUTH_NONE:
            return None
        return (Errc.auth_failed, who + " has a shared secret configured (its hello asks for "
                "authentication), but none is configured here: configure the same secret on both sides")
    if scheme == AUTH_NONE:
        return (Errc.auth_failed, who + " sent no authentication proof (its hello announces no shared "
                "secret), but a secret is configured here: configure the same secret on both sides")
    if scheme != AUTH_HMAC_SHA256:
        return (Errc.auth_failed, who + " asks for authentication scheme %d, which this build does not "
                "know (it knows 1, hmac_sha256): run the same Mycelium version on both sides" % scheme)
    if remote.nonce == bytes(16):
        return (Errc.auth_failed, who + " sent no nonce (hello field 9 missing or all zero), so its proof "
                "could be replayed: with a secret, every hello must carry 16 fresh random bytes")
    if remote.nonce == local.nonce:
        return (Errc.auth_failed, who + " sent back the nonce of our own hello: a reflected handshake "
                "is refused")
    return None


def auth_proof(secret: bytes, challenge: bytes, own: Hello) -> bytes:
    """HMAC-SHA256 over label, the peer's nonce (challenge) and the sender's
    own hello fields as sent (section 9.4)."""
    msg = (AUTH_LABEL + challenge + own.nonce + own.schema_digest + clip(own.node, MAX_NAME) + b"\0"
           + clip(own.service, MAX_NAME) + b"\0" + _U32.pack(own.pid))
    return hmac.new(secret, msg, hashlib.sha256).digest()


def check_auth_proof(secret: bytes, challenge: bytes, remote: Hello, proof: bytes) -> bool:
    return hmac.compare_digest(auth_proof(secret, challenge, remote), proof)


__all__ = ["Hello", "Refuse", "check_hello", "check_auth_hello", "auth_proof", "check_auth_proof",
           "describe_frame", "control_frame", "encode_interest", "decode_interest", "encode_auth",
           "decode_auth"]
