"""Every decoding check of docs/wire-protocol.md section 4 (H1..H6,
P1..P17), each raising its own exception class with the errc, the field's
path and the C++ decoder's order of checks."""

from __future__ import annotations

import struct
from typing import Type

import pytest

import test_messages as tm
from conftest import golden
from mycelium import errors
from mycelium.codec import DEFAULT_MAX_PAYLOAD, encode_header
from mycelium.errors import DecodeError, Errc


def tag(fid: int, wt: int) -> bytes:
    return struct.pack("<H", fid << 3 | wt)


def sized(fid: int, b: bytes) -> bytes:
    return tag(fid, 4) + struct.pack("<I", len(b)) + b


def u32(fid: int, v: int) -> bytes:
    return tag(fid, 2) + struct.pack("<I", v)


def frame(type_id: int, payload: bytes, flags: int = 0, r0: int = 0, r1: int = 0) -> bytes:
    return struct.pack("<IIQHHI", len(payload), type_id, 1, flags, r0, r1) + payload


def expect(cls: Type[DecodeError], errc: Errc, path: str, data: bytes, decoder: object = None) -> DecodeError:
    with pytest.raises(cls) as info:
        if decoder is None:
            tm.SCHEMA.decode_frame(data)
        else:
            decoder(data)  # type: ignore[operator]
    e = info.value
    assert e.errc == errc and isinstance(e, DecodeError) and isinstance(e, ValueError)
    assert e.path == path, str(e)
    assert str(e).startswith(path + ": ") and str(e).endswith("(%s)" % errc.name)
    return e


# -- header (frame_header::read, decode_frame) -------------------------------------------

def test_h1_fewer_than_24_bytes() -> None:
    expect(errors.TruncatedError, Errc.truncated, "frame header", golden("order.hex")[:23])


@pytest.mark.parametrize("flags,r0,r1", [(2, 0, 0), (0x8001, 0, 0), (0, 1, 0), (0, 0, 1)])
def test_h2_unknown_flags_and_reserved_bits(flags: int, r0: int, r1: int) -> None:
    expect(errors.BadFrameHeaderError, Errc.bad_frame_header, "frame header", frame(5, b"", flags, r0, r1))


def test_h3_payload_over_the_limit_before_reading_it() -> None:
    hdr = encode_header(DEFAULT_MAX_PAYLOAD + 1, 5, 1)  # no payload bytes at all
    e = expect(errors.FrameTooLargeError, Errc.frame_too_large, "frame header", hdr)
    assert "1048577" in str(e)
    data = golden("order.hex")
    expect(errors.FrameTooLargeError, Errc.frame_too_large, "frame header", data,
           lambda d: tm.SCHEMA.decode_frame(d, max_payload=37))
    assert tm.SCHEMA.decode_frame(data, max_payload=38)[1].px == 101.25


def test_h4_payload_cut_short() -> None:
    expect(errors.TruncatedError, Errc.truncated, "frame", golden("order.hex")[:-1])


def test_h5_control_frame_and_h6_unknown_type() -> None:
    expect(errors.UnknownTypeError, Errc.unknown_type, "frame", frame(5, b"", flags=1))
    expect(errors.UnknownTypeError, Errc.unknown_type, "frame", frame(99, b""))
    expect(errors.UnknownTypeError, Errc.unknown_type, "frame", frame(0, b""))


def test_bytes_after_the_frame_are_not_examined() -> None:
    h, m = tm.SCHEMA.decode_frame(golden("order.hex") + b"\xff\xff\xff")
    assert m == tm.order(leg=tm.leg(venue="XNAS", qty=100), side=tm.side.buy, px=101.25)


# -- payload (generated decode_fields, wire::reader) ------------------------------------------

def test_p1_half_a_tag() -> None:
    expect(errors.TruncatedError, Errc.truncated, "leg", b"\x0c", tm.leg.decode)
    expect(errors.TruncatedError, Errc.truncated, "order.leg", sized(1, b"\x0c"), tm.order.decode)


@pytest.mark.parametrize("wt", [5, 6, 7])
def test_p2_wire_types_5_to_7(wt: int) -> None:
    e = expect(errors.BadWireTypeError, Errc.bad_wire_type, "leg", tag(1, wt) + b"\0" * 8, tm.leg.decode)
    assert "wire type %d" % wt in str(e)


def test_p2_comes_before_p3() -> None:
    # field id 0 with wire type 7: the wire type is checked first (as wire::reader::tag)
    expect(errors.BadWireTypeError, Errc.bad_wire_type, "leg", tag(0, 7), tm.leg.decode)


def test_p3_field_id_0() -> None:
    expect(errors.BadFieldIdError, Errc.bad_field_id, "leg", tag(0, 2) + b"\0" * 4, tm.leg.decode)


def test_p4_duplicate_declared_field_and_repeated_unknown_is_fine() -> None:
    expect(errors.DuplicateFieldError, Errc.duplicate_field, "leg.qty", u32(2, 1) + u32(2, 2), tm.leg.decode)
    # the duplicate check comes before the wire-type check (generated `once` first)
    expect(errors.DuplicateFieldError, Errc.duplicate_field, "leg.qty", u32(2, 1) + tag(2, 0) + b"\0",
           tm.leg.decode)
    assert tm.leg.decode(u32(9, 1) + u32(9, 2) + u32(2, 5)).qty == 5


def test_p5_declared_field_with_another_wire_type() -> None:
    e = expect(errors.BadWireTypeError, Errc.bad_wire_type, "leg.qty", tag(2, 3) + b"\0" * 8, tm.leg.decode)
    assert "i32 is sent as 2 (fixed32)" in str(e)
    expect(errors.BadWireTypeError, Errc.bad_wire_type, "leg.venue", u32(1, 0), tm.leg.decode)
    expect(errors.BadWireTypeError, Errc.bad_wire_type, "order.side", tag(2, 3) + b"\0" * 8, tm.order.decode)
    expect(errors.BadWireTypeError, Errc.bad_wire_type, "order.leg", u32(1, 0), tm.order.decode)


def test_p6_fixed_value_cut_short() -> None:
    expect(errors.TruncatedError, Errc.truncated, "leg.qty", tag(2, 2) + b"\0\0\0", tm.leg.decode)
    expect(errors.TruncatedError, Errc.truncated, "all_scalars.a_u64", tag(4, 3) + b"\0" * 7,
           tm.all_scalars.decode)


def test_p7_sized_value_cut_short() -> None:
    expect(errors.TruncatedError, Errc.truncated, "leg.venue", tag(1, 4) + b"\0\0\0", tm.leg.decode)
    expect(errors.TruncatedError, Errc.truncated, "leg.venue", tag(1, 4) + struct.pack("<I", 5) + b"abcd",
           tm.leg.decode)


@pytest.mark.parametrize("where,payload", [
    ("all_scalars.a_bool", tag(11, 0) + b"\x02"),
    ("collections.flags[1]", sized(3, b"\x01\xff")),
])
def test_p8_bool_not_0_or_1(where: str, payload: bytes) -> None:
    cls = tm.all_scalars if where.startswith("all") else tm.collections
    expect(errors.BadBoolError, Errc.bad_bool, where, payload, cls.decode)


def test_p9_undeclared_enum_value() -> None:
    e = expect(errors.BadEnumValueError, Errc.bad_enum_value, "order.side", u32(2, 3), tm.order.decode)
    assert "3 is not a value of enum side" in str(e)
    expect(errors.BadEnumValueError, Errc.bad_enum_value, "collections.side", u32(4, 0), tm.collections.decode)


def test_p10_string_too_long_before_p11_utf8() -> None:
    expect(errors.StringTooLongError, Errc.string_too_long, "leg.venue", sized(1, b"123456789"), tm.leg.decode)
    # 9 bytes of invalid UTF-8: the length check comes first
    expect(errors.StringTooLongError, Errc.string_too_long, "leg.venue", sized(1, b"\xff" * 9), tm.leg.decode)
    assert tm.leg.decode(sized(1, b"12345678")).venue == "12345678"


@pytest.mark.parametrize("bad", [
    b"\x80",                  # continuation byte as lead
    b"\xc0\x80",              # overlong U+0000
    b"\xc1\xbf",              # overlong
    b"\xe0\x80\x80",          # overlong 3-byte
    b"\xf0\x80\x80\x80",      # overlong 4-byte
    b"\xed\xa0\x80",          # surrogate U+D800
    b"\xed\xbf\xbf",          # surrogate U+DFFF
    b"\xf4\x90\x80\x80",      # above U+10FFFF
    b"\xf5\x80\x80\x80",      # lead byte F5
    b"\xf8\x88\x80\x80",      # lead byte F8
    b"\xff",
    b"a\xc3",                 # cut short by the end
    b"\xe2\x82",
    b"\xc3\x28",              # bad continuation
])
def test_p11_invalid_utf8(bad: bytes) -> None:
    expect(errors.InvalidUtf8Error, Errc.invalid_utf8, "texts.name", sized(1, bad), tm.texts.decode)


@pytest.mark.parametrize("good", ["\u0000", "\u007f", "\u0080", "\u07ff", "\u0800", "\ud7ff", "\ue000",
                                  "\uffff", "\U00010000", "\U0010ffff"])
def test_p11_boundaries_that_are_valid(good: str) -> None:
    assert tm.texts.decode(sized(1, good.encode())).name == good


def test_p12_bytes_too_long() -> None:
    expect(errors.BytesTooLongError, Errc.bytes_too_long, "texts.blob", sized(2, b"\0" * 9), tm.texts.decode)


@pytest.mark.parametrize("n", [0, 16, 23, 25, 32])
def test_p13_array_length(n: int) -> None:
    expect(errors.ArrayLengthMismatchError, Errc.array_length_mismatch, "collections.levels",
           sized(1, b"\0" * n), tm.collections.decode)


def test_p14_vector_length_not_a_multiple() -> None:
    expect(errors.BadVectorLengthError, Errc.bad_vector_length, "collections.ids", sized(2, b"\0" * 6),
           tm.collections.decode)


def test_p15_vector_over_max_after_p14() -> None:
    expect(errors.VectorTooLongError, Errc.vector_too_long, "collections.ids", sized(2, b"\0" * 20),
           tm.collections.decode)
    expect(errors.BadVectorLengthError, Errc.bad_vector_length, "collections.ids", sized(2, b"\0" * 21),
           tm.collections.decode)
    expect(errors.VectorTooLongError, Errc.vector_too_long, "collections.flags", sized(3, b"\x05" * 5),
           tm.collections.decode)  # before the elements' bool check


def test_p16_nested_message_bounded_by_its_length() -> None:
    # qty's 4 bytes are outside the nested length of 4 (tag + 2 bytes): truncated inside leg
    inner = tag(2, 2) + b"\x01\x00"
    payload = tag(1, 4) + struct.pack("<I", len(inner)) + inner + b"\x00\x00"
    expect(errors.TruncatedError, Errc.truncated, "order.leg.qty", payload, tm.order.decode)
    expect(errors.StringTooLongError, Errc.string_too_long, "order.leg.venue", sized(1, sized(1, b"x" * 9)),
           tm.order.decode)
    # a nested message starts from its own defaults
    assert tm.order.decode(sized(1, b"")).leg == tm.leg()


@pytest.mark.parametrize("payload", [
    tag(100, 0),                                   # fixed8 without its byte
    tag(100, 1) + b"\0",
    tag(100, 2) + b"\0\0\0",
    tag(100, 3) + b"\0" * 7,
    tag(100, 4) + b"\0\0",                         # no room for L
    tag(100, 4) + struct.pack("<I", 3) + b"ab",    # L past the end
])
def test_p17_unknown_field_cut_short(payload: bytes) -> None:
    expect(errors.TruncatedError, Errc.truncated, "leg", payload, tm.leg.decode)


def test_p17_unknown_fields_are_skipped() -> None:
    payload = (tag(100, 0) + b"\x01" + tag(101, 1) + b"\0\0" + tag(102, 2) + b"\0" * 4 + tag(103, 3)
               + b"\0" * 8 + sized(8191, b"xyz") + u32(2, 9))
    assert tm.leg.decode(payload) == tm.leg(qty=9)


def test_first_failure_decides_in_order_of_appearance() -> None:
    payload = u32(2, 1) + sized(1, b"\xff") + u32(2, 2)  # bad UTF-8 before the duplicate
    expect(errors.InvalidUtf8Error, Errc.invalid_utf8, "leg.venue", payload, tm.leg.decode)


def test_every_decode_error_class_has_its_errc() -> None:
    assert len(errors.DECODE_ERRORS) == 16
    for code, cls in errors.DECODE_ERRORS.items():
        assert cls.errc == code and issubclass(cls, DecodeError)
    assert len({c for c in errors.DECODE_ERRORS.values()}) == 16


def test_errc_numbers_match_the_documented_table() -> None:
    import os
    import re
    from conftest import env_path
    doc = open(os.path.join(env_path("MYCELIUM_SOURCE_DIR"), "docs", "wire-protocol.md")).read()
    doc = doc[doc.index("### 4.1 Error codes"):doc.index("**Unknown codes.**")]
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", doc, re.M)
    assert len(rows) == 36
    assert {name: int(n) for n, name in rows} == {e.name: int(e) for e in Errc}
