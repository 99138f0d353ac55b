"""The TLV codec and frame format of docs/wire-protocol.md, in pure Python.

Generated modules (``mycelium-codegen generate --lang python``) declare their
message classes with a field table; this module encodes them to the exact
bytes the C++ encoder writes (every field, ascending field id) and decodes
them with every check of the C++ decoder, in the same order (wire-protocol.md
section 4, rules H1..H6 and P1..P18), each failure raising its own
`DecodeError` subclass that names the field.

Thread-safety: message objects are plain mutable objects (one thread at a
time); the field tables and `Schema` objects are immutable after import and
may be shared.
"""

from __future__ import annotations

import enum
import struct
from typing import (Any, ClassVar, Dict, Iterable, List, Mapping, NamedTuple,
                    Sequence, Tuple, Type, TypeVar, Union)

from .errors import (ArrayLengthMismatchError, BadBoolError, BadEnumValueError,
                     BadFieldIdError, BadFrameHeaderError, BadVectorLengthError,
                     BadWireTypeError, BytesTooLongError, DuplicateFieldError, EncodeError,
                     FrameTooLargeError, InvalidUtf8Error, StringTooLongError, TruncatedError,
                     UnknownTypeError, VectorTooLongError)

Buffer = Union[bytes, bytearray, memoryview]

# -- section 1: frames --------------------------------------------------------

HEADER = struct.Struct("<IIQHHI")  # payload_length, type_id, sequence, flags, reserved0, reserved1
HEADER_SIZE = 24
FLAG_CONTROL = 0x0001
#: Default largest payload of a link (wire-protocol.md section 1.3).
DEFAULT_MAX_PAYLOAD = 1 << 20
#: Control payloads may be this long whatever a link's max_payload is.
MAX_CONTROL_PAYLOAD = 1 << 20
FIRST_CONTROL_TYPE_ID = 0xFFFF0000
#: Schema type ids stay below this (ids from here are node-local or control).
FIRST_LOCAL_TYPE_ID = 0xFFFE0000


class Header(NamedTuple):
    """A validated frame header."""

    payload_length: int
    type_id: int
    sequence: int
    flags: int

    @property
    def control(self) -> bool:
        return bool(self.flags & FLAG_CONTROL)


def encode_header(payload_length: int, type_id: int, sequence: int, flags: int = 0) -> bytes:
    return HEADER.pack(payload_length, type_id, sequence, flags, 0, 0)


def read_header(data: Buffer, max_payload: int = DEFAULT_MAX_PAYLOAD,
                need_payload: bool = True) -> Header:
    """Parses and checks a header (rules H1..H4). With `need_payload` False
    only the 24 header bytes are required (a stream reader checks the header
    before it reads the payload)."""
    if len(data) < HEADER_SIZE:
        raise TruncatedError("frame header", "needs 24 bytes, %d available" % len(data))
    length, type_id, seq, flags, r0, r1 = HEADER.unpack_from(data, 0)
    if flags & ~FLAG_CONTROL:
        raise BadFrameHeaderError("frame header", "unknown flag bits 0x%04x" % (flags & ~FLAG_CONTROL))
    if r0 or r1:
        raise BadFrameHeaderError("frame header", "reserved fields must be 0 (reserved0 %d, reserved1 %d)"
                                  % (r0, r1))
    if length > max_payload:
        raise FrameTooLargeError("frame header", "payload_length %d exceeds the limit of %d bytes"
                                 % (length, max_payload))
    if need_payload and len(data) - HEADER_SIZE < length:
        raise TruncatedError("frame", "payload_length %d but only %d payload bytes available"
                             % (length, len(data) - HEADER_SIZE))
    return Header(length, type_id, seq, flags)


# -- section 2: TLV -------------------------------------------------------------

FIXED8, FIXED16, FIXED32, FIXED64, SIZED = range(5)
WIRE_TYPE_NAMES = ("fixed8", "fixed16", "fixed32", "fixed64", "sized")
_FIXED_SIZE = (1, 2, 4, 8)
MAX_FIELD_ID = 8191
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


def tag_bytes(field_id: int, wire_type: int) -> bytes:
    return _U16.pack(field_id << 3 | wire_type)


def _wt_name(wt: int) -> str:
    return "%d (%s)" % (wt, WIRE_TYPE_NAMES[wt])


class Kind:
    """How one schema type is encoded and decoded (section 3)."""

    wire_type: int = SIZED
    spelling: str = "?"

    def encode(self, out: bytearray, value: Any, path: str) -> None:
        raise NotImplementedError

    def decode(self, buf: Buffer, pos: int, end: int, wt: int, path: str) -> Tuple[Any, int]:
        raise NotImplementedError

    def _sized(self, buf: Buffer, pos: int, end: int, wt: int, path: str) -> Tuple[int, int]:
        """Checks P5 and P7 for a sized value: returns (start, length)."""
        if wt != SIZED:
            raise BadWireTypeError(path, "wire type %s, but %s is sent as 4 (sized)"
                                   % (_wt_name(wt), self.spelling))
        if end - pos < 4:
            raise TruncatedError(path, "the length prefix needs 4 bytes, %d left" % (end - pos))
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
        if end - pos < n:
            raise TruncatedError(path, "a sized value of %d bytes, only %d left" % (n, end - pos))
        return pos, n


class Scalar(Kind):
    """u8 .. f64 and bool: a fixed-width value."""

    def __init__(self, spelling: str, code: str, wire_type: int) -> None:
        self.spelling = spelling
        self.code = code
        self.wire_type = wire_type
        self.struct = struct.Struct("<" + code)
        self.size = self.struct.size
        self.is_bool = spelling == "bool"
        self.is_float = spelling in ("f32", "f64")
        if not self.is_float and not self.is_bool:
            bits = 8 * self.size
            signed = spelling.startswith("i")
            self.lo = -(1 << (bits - 1)) if signed else 0
            self.hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    def check(self, value: Any, path: str) -> None:
        if self.is_bool:
            if not isinstance(value, bool):
                raise EncodeError(path, "bool expected, got %s" % type(value).__name__)
        elif self.is_float:
            if not isinstance(value, (float, int)):
                raise EncodeError(path, "%s expects a float, got %s" % (self.spelling, type(value).__name__))
        else:
            if not isinstance(value, int):
                raise EncodeError(path, "%s expects an int, got %s" % (self.spelling, type(value).__name__))
            if not self.lo <= value <= self.hi:
                raise EncodeError(path, "%d is out of the range of %s (%d..%d)"
                                  % (value, self.spelling, self.lo, self.hi))

    def encode(self, out: bytearray, value: Any, path: str) -> None:
        self.check(value, path)
        try:
            out += self.struct.pack(value)
        except (OverflowError, struct.error) as e:
            raise EncodeError(path, "%r does not fit in %s: %s" % (value, self.spelling, e)) from None

    def decode(self, buf: Buffer, pos: int, end: int, wt: int, path: str) -> Tuple[Any, int]:
        if wt != self.wire_type:
            raise BadWireTypeError(path, "wire type %s, but %s is sent as %s"
                                   % (_wt_name(wt), self.spelling, _wt_name(self.wire_type)))
        if end - pos < self.size:
            raise TruncatedError(path, "%s needs %d bytes, %d left" % (self.spelling, self.size, end - pos))
        (v,) = self.struct.unpack_from(buf, pos)
        if self.is_bool:
            if v > 1:
                raise BadBoolError(path, "bool byte 0x%02x (only 00 and 01 are allowed)" % v)
            v = v == 1
        return v, pos + self.size


_F64_BITS = struct.Struct("<Q")
_F64 = struct.Struct("<d")


def f32_from_bits(bits: int) -> float:
    """The f32 `bits` as a Python float. NaNs keep sign and payload
    (including the signalling bit), which a C float-to-double conversion
    would quiet: so a decoded NaN re-encodes to its exact bits."""
    if bits & 0x7F800000 == 0x7F800000 and bits & 0x7FFFFF:
        d = (bits >> 31) << 63 | 0x7FF << 52 | (bits & 0x7FFFFF) << 29
        return float(_F64.unpack(_F64_BITS.pack(d))[0])
    return float(struct.unpack("<f", struct.pack("<I", bits))[0])


def f32_bits(value: float) -> int:
    """The f32 bit pattern of `value` (rounded to nearest), NaN payloads
    kept as `f32_from_bits` stores them."""
    if value != value:  # NaN
        (d,) = _F64_BITS.unpack(_F64.pack(value))
        mantissa = (d >> 29) & 0x7FFFFF or 0x400000
        return int((d >> 63) << 31 | 0xFF << 23 | mantissa)
    return int(struct.unpack("<I", struct.pack("<f", value))[0])


class _F32(Scalar):
    """f32 with bit-exact NaNs (wire-protocol.md section 3: NaNs are
    preserved)."""

    def encode(self, out: bytearray, value: Any, path: str) -> None:
        self.check(value, path)
        if value != value:
            out += _U32.pack(f32_bits(value))
            return
        super().encode(out, value, path)

    def decode(self, buf: Buffer, pos: int, end: int, wt: int, path: str) -> Tuple[Any, int]:
        v, pos = super().decode(buf, pos, end, wt, path)
        if v != v:
            v = f32_from_bits(_U32.unpack_from(buf, pos - 4)[0])
        return v, pos


U8 = Scalar("u8", "B", FIXED8)
U16 = Scalar("u16", "H", FIXED16)
U32 = Scalar("u32", "I", FIXED32)
U64 = Scalar("u64", "Q", FIXED64)
I8 = Scalar("i8", "b", FIXED8)
I16 = Scalar("i16", "h", FIXED16)
I32 = Scalar("i32", "i", FIXED32)
I64 = Scalar("i64", "q", FIXED64)
F32 = _F32("f32", "f", FIXED32)
F64 = Scalar("f64", "d", FIXED64)
BOOL = Scalar("bool", "B", FIXED8)


class String(Kind):
    def __init__(self, max: int) -> None:
        self.max = max
        self.spelling = "string[%d]" % max

    def encode(self, out: bytearray, value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise EncodeError(path, "str expected, got %s" % type(value).__name__)
        try:
            b = value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise EncodeError(path, "not encodable as UTF-8: %s" % e) from None
        if len(b) > self.max:
            raise EncodeError(path, "%d UTF-8 bytes, the schema allows at most %d" % (len(b), self.max))
        out += _U32.pack(len(b))
        out += b

    def decode(self, buf: Buffer, pos: int, end: int, wt: int, path: str) -> Tuple[Any, int]:
        start, n = self._sized(buf, pos, end, wt, path)
        if n > self.max:
            raise StringTooLongError(path, "%d bytes, the schema allows at most %d" % (n, self.max))
        try:
            s = bytes(buf[start:start + n]).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidUtf8Error(path, "not valid UTF-8 at byte %d of the string" % e.start) from None
        return s, start + n


class Bytes(Kind):
    def __init__(self, max: int) -> None:
        self.max = max
        self.spelling = "bytes[%d]" % max

    def encode(self, out: bytearray, value: Any, path: str) -> None:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(path, "bytes expected, got %s" % type(value).__name__)
        if len(value) > self.max:
            raise EncodeError(path, "%d bytes, the schema allows at most %d" % (len(value), self.max))
        out += _U32.pack(len(value))
        out += value

    def decode(self, buf: Buffer, pos: int, end: int, wt: int, path: str) -> Tuple[Any, int]:
        start, n = self._sized(buf, pos, end, wt, path)
        if n > self.max:
            raise BytesTooLongError(path, "%d bytes, the schema allows at most %d" % (n, self.max))
        return bytes(buf[start:start + n]), start + n


class _Packed(Kind):
    """Shared by arrays and vectors: packed scalars without tags."""

    element: Scalar

    def _pack(self, out: bytearray, values: Any, path: str) -> None:
        if not isinstance(values, (list, tuple)):
            raise EncodeError(path, "%s expects a list, got %s" % (self.spelling, type(values).__name__))
        e = self.element
        for i, v in enumerate(values):
            e.check(v, "%s[%d]" % (path, i))
        code = "B" if e.is_bool else e.code
        if e is F32 and any(v != v for v in values):
            values = [f32_bits(v) for v in values]
            code = "I"
        out += _U32.pack(len(values) * e.size)
        try:
            out += struct.pack("<%d%s" % (len(values), code), *values)
        except (OverflowError, struct.error) as x:
            raise EncodeError(path, "elements do not fit in %s: %s" % (e.spelling, x)) from None

    def _unpack(self, buf: Buffer, start: int, count: int, path: str) -> List[Any]:
        e = self.element
        values = list(struct.unpack_from("<%d%s" % (count, e.code), buf, start))
        if e.is_bool:
            for i, v in enumerate(values):
                if v > 1:
                    raise BadBoolError("%s[%d]" % (path, i), "bool byte 0x%02x (only 00 and 01 are allowed)" % v)
            return [v == 1 for v in values]
        if e is F32 and any(v != v for v in values):
            bits = struct.unpack_from("<%dI" % count, buf, start)
            return [f32_from_bits(b) if v != v else v for v, b in zip(values, bits)]
        return values


class Array(_Packed):
    def __init__(self, element: Scalar, count: int) -> None:
        self.element = element
        self.count = count
        self.spelling = "array<%s,%d>" % (element.spelling, count)

    def encode(self, out: bytearray, value: Any, path: str) -> None:
        if isinstance(value, (list, tuple)) and len(value) != self.count:
            raise EncodeError(path, "%s needs exactly %d elements, got %d"
                              % (self.spelling, self.count, len(value)))
        self._pack(out, value, path)

    def decode(self, buf: Buffer, pos: int, end: int, wt: int, path: str) -> Tuple[Any, int]:
        start, n = self._sized(buf, pos, end, wt, path)
        if n != self.count * self.element.size:
            raise ArrayLengthMismatchError(path, "%d bytes, %s is exactly %d"
                                           % (n, self.spelling, self.count * self.element.size))
        return self._unpack(buf, start, self.count, path), start + n


class Vector(_Packed):
    def __init__(self, element: Scalar, max: int) -> None:
        self.element = element
        self.max = max
        self.spelling = "vector<%s>[%d]" % (element.spelling, max)

    def encode(self, out: bytearray, value: Any, path: str) -> None:
        if isinstance(value, (list, tuple)) and len(value) > self.max:
            raise EncodeError(path, "%d elements, the schema allows at most %d" % (len(value), self.max))
        self._pack(out, value, path)

    def decode(self, buf: Buffer, pos: int, end: int, wt: int, path: str) -> Tuple[Any, int]:
        start, n = self._sized(buf, pos, end, wt, path)
        size = self.element.size
        if n % size:
            raise BadVectorLengthError(path, "%d bytes is not a multiple of the element size %d" % (n, size))
        if n // size > self.max:
            raise VectorTooLongError(path, "%d elements, the schema allows at most %d" % (n // size, self.max))
        return self._unpack(buf, start, n // size, path), start + n


class Enum(enum.IntEnum):
    """Base of generated enums: a value is its number on the wire."""

    def __repr__(self) -> str:
        return "%s.%s" % (type(self).__name__, self.name)


class EnumKind(Kind):
    wire_type = FIXED32

    def __init__(self, cls: Type[Enum]) -> None:
        self.cls = cls
        self.spelling = "enum " + cls.__name__
        self.values: Mapping[int, Enum] = {int(m): m for m in cls}

    def encode(self, out: bytearray, value: Any, path: str) -> None:
        if isinstance(value, self.cls):
            out += _U32.pack(int(value))
            return
        if isinstance(value, int) and not isinstance(value, bool) and value in self.values:
            out += _U32.pack(value)
            return
        raise EncodeError(path, "%r is not a value of enum %s (values: %s)"
                          % (value, self.cls.__name__, ", ".join("%s=%d" % (m.name, m) for m in self.cls)))

    def decode(self, buf: Buffer, pos: int, end: int, wt: int, path: str) -> Tuple[Any, int]:
        if wt != FIXED32:
            raise BadWireTypeError(path, "wire type %s, but %s is sent as 2 (fixed32)"
                                   % (_wt_name(wt), self.spelling))
        if end - pos < 4:
            raise TruncatedError(path, "%s needs 4 bytes, %d left" % (self.spelling, end - pos))
        (v,) = _U32.unpack_from(buf, pos)
        m = self.values.get(v)
        if m is None:
            raise BadEnumValueError(path, "%d is not a value of enum %s" % (v, self.cls.__name__))
        return m, pos + 4


class Nested(Kind):
    def __init__(self, cls: Type["Message"]) -> None:
        self.cls = cls
        self.spelling = "message " + cls.type_name

    def encode(self, out: bytearray, value: Any, path: str) -> None:
        if type(value) is not self.cls:
            raise EncodeError(path, "%s expected, got %s" % (self.cls.type_name, type(value).__name__))
        mark = len(out)
        out += b"\0\0\0\0"
        value._encode_into(out, path)
        _U32.pack_into(out, mark, len(out) - mark - 4)

    def decode(self, buf: Buffer, pos: int, end: int, wt: int, path: str) -> Tuple[Any, int]:
        start, n = self._sized(buf, pos, end, wt, path)
        sub = self.cls()
        sub._decode_into(buf, start, start + n, path)
        return sub, start + n


class Field(NamedTuple):
    """One field of a generated message: schema id, Python attribute, schema
    name and kind."""

    id: int
    attr: str
    name: str
    kind: Kind


def _skip(buf: Buffer, pos: int, end: int, wt: int, path: str, fid: int) -> int:
    """Skips an unknown field (P17)."""
    n: int
    if wt == SIZED:
        if end - pos < 4:
            raise TruncatedError(path, "unknown field %d: the length prefix needs 4 bytes, %d left"
                                 % (fid, end - pos))
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
    else:
        n = _FIXED_SIZE[wt]
    if end - pos < n:
        raise TruncatedError(path, "unknown field %d: %d bytes, only %d left" % (fid, n, end - pos))
    return pos + n


M = TypeVar("M", bound="Message")


class Message:
    """Base of generated message classes: equality, repr, encoding and
    strict decoding from the class's field table."""

    __slots__ = ()
    type_id: ClassVar[int]
    type_name: ClassVar[str]
    digest: ClassVar[bytes]
    _fields: ClassVar[Tuple[Field, ...]] = ()
    _by_id: ClassVar[Dict[int, Tuple[int, Field]]] = {}
    # Mutable value objects: not hashable, like a dataclass with eq.
    __hash__: ClassVar[None]  # type: ignore[assignment]

    @classmethod
    def _set_fields(cls, fields: Sequence[Field]) -> None:
        cls._fields = tuple(fields)
        cls._by_id = {f.id: (1 << i, f) for i, f in enumerate(fields)}
        cls._tags = tuple(tag_bytes(f.id, f.kind.wire_type) for f in fields)  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f.attr) == getattr(other, f.attr) for f in self._fields)

    def __repr__(self) -> str:
        return "%s(%s)" % (self.type_name, ", ".join(
            "%s=%r" % (f.attr, getattr(self, f.attr)) for f in self._fields))

    # -- encoding
    def encode(self) -> bytes:
        """The TLV payload: every field, ascending field id (section 2.3).
        Raises EncodeError for a value the schema does not allow."""
        out = bytearray()
        self._encode_into(out, self.type_name)
        return bytes(out)

    def encode_frame(self, sequence: int) -> bytes:
        """A complete data frame (header + payload) with this sequence number."""
        payload = self.encode()
        return encode_header(len(payload), self.type_id, sequence) + payload

    def _encode_into(self, out: bytearray, path: str) -> None:
        tags: Tuple[bytes, ...] = self._tags  # type: ignore[attr-defined]
        for f, t in zip(self._fields, tags):
            out += t
            f.kind.encode(out, getattr(self, f.attr), path + "." + f.name)

    # -- decoding
    @classmethod
    def decode(cls: Type[M], data: Buffer) -> M:
        """Decodes a TLV payload (checks P1..P18); raises a DecodeError
        subclass naming the field on the first violation."""
        obj = cls()
        obj._decode_into(data, 0, len(data), cls.type_name)
        return obj

    def _decode_into(self, buf: Buffer, pos: int, end: int, path: str) -> None:
        by_id = self._by_id
        seen = 0
        while pos != end:
            if end - pos < 2:
                raise TruncatedError(path, "a tag needs 2 bytes, %d left" % (end - pos))
            t = buf[pos] | buf[pos + 1] << 8
            pos += 2
            wt = t & 7
            fid = t >> 3
            if wt > SIZED:
                raise BadWireTypeError(path, "tag 0x%04x (field %d) has wire type %d; only 0..4 exist"
                                       % (t, fid, wt))
            if fid == 0:
                raise BadFieldIdError(path, "tag 0x%04x has field id 0" % t)
            entry = by_id.get(fid)
            if entry is None:
                pos = _skip(buf, pos, end, wt, path, fid)
                continue
            bit, f = entry
            if seen & bit:
                raise DuplicateFieldError(path + "." + f.name, "field id %d appears twice" % fid)
            seen |= bit
            value, pos = f.kind.decode(buf, pos, end, wt, path + "." + f.name)
            setattr(self, f.attr, value)


class Schema:
    """The type-erased view of one generated module: what a link needs to
    build a hello and decode any data frame of the schema."""

    def __init__(self, package: str, digest: bytes, messages: Mapping[int, Type[Message]]) -> None:
        self.package = package
        self.digest = digest
        self.messages: Dict[int, Type[Message]] = dict(sorted(messages.items()))
        #: (type id, name, message digest) in ascending type id: the hello's type list.
        self.types: List[Tuple[int, str, bytes]] = [
            (tid, cls.type_name, cls.digest) for tid, cls in self.messages.items()]
        self.by_name: Dict[str, Type[Message]] = {c.type_name: c for c in self.messages.values()}

    def __repr__(self) -> str:
        return "Schema(%r, %s, %d messages)" % (self.package, self.digest.hex(), len(self.messages))

    def decode_payload(self, type_id: int, payload: Buffer) -> Message:
        """Decodes a payload of `type_id` (H6, then P1..P18)."""
        cls = self.messages.get(type_id)
        if cls is None:
            raise UnknownTypeError("frame", "type id %d is not a message of schema %s"
                                   % (type_id, self.package))
        return cls.decode(payload)

    def decode_frame(self, data: Buffer, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Tuple[Header, Message]:
        """Decodes one complete data frame (H1..H6, P1..P18, section 4).
        Bytes after the frame are not examined."""
        h = read_header(data, max_payload)
        if h.control:
            raise UnknownTypeError("frame", "control frame 0x%08x given to the data decoder" % h.type_id)
        cls = self.messages.get(h.type_id)
        if cls is None:
            raise UnknownTypeError("frame", "type id %d is not a message of schema %s"
                                   % (h.type_id, self.package))
        obj = cls()
        obj._decode_into(data, HEADER_SIZE, HEADER_SIZE + h.payload_length, cls.type_name)
        return h, obj


def frames(data: Buffer) -> Iterable[Tuple[int, int]]:
    """(start, end) of each complete frame in `data`, for readers of
    recorded streams; stops at the first incomplete frame."""
    pos = 0
    while len(data) - pos >= HEADER_SIZE:
        (n,) = _U32.unpack_from(data, pos)
        if len(data) - pos - HEADER_SIZE < n:
            return
        yield pos, pos + HEADER_SIZE + n
        pos += HEADER_SIZE + n


__all__ = ["Message", "Enum", "Schema", "Field", "Header", "read_header", "encode_header",
           "HEADER_SIZE", "FLAG_CONTROL", "DEFAULT_MAX_PAYLOAD"]
