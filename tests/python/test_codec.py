"""Generated classes (mycelium-codegen --lang python) against the golden
vectors, the codegen's digests, defaults, equality, repr and encode errors."""

from __future__ import annotations

import builtins
import math
import struct
import subprocess

import pytest

import python_names as pn
import test_messages as tm
import tricky_names as tn
from conftest import env_path, golden
from mycelium import EncodeError, codec


def golden_values() -> dict:
    return {
        "all_scalars.hex": (1, tm.all_scalars(
            a_u8=255, a_u16=65535, a_u32=4294967295, a_u64=18446744073709551615, a_i8=-128,
            a_i16=-32768, a_i32=-2147483648, a_i64=-9223372036854775808, a_f32=1.5, a_f64=-2.25,
            a_bool=True)),
        "texts.hex": (2, tm.texts(name="été", blob=bytes([0, 1, 2, 0xFF]))),
        "collections.hex": (3, tm.collections(levels=[1.0, 2.0, 3.0], ids=[1, 2, 3], flags=[True, False],
                                              side=tm.side.sell)),
        "order.hex": (1, tm.order(leg=tm.leg(venue="XNAS", qty=100), side=tm.side.buy, px=101.25)),
        "order_defaults.hex": (4, tm.order()),
    }


@pytest.mark.parametrize("name", sorted(golden_values()))
def test_golden_encode_is_byte_exact(name: str) -> None:
    seq, value = golden_values()[name]
    assert value.encode_frame(seq) == golden(name)


@pytest.mark.parametrize("name", sorted(golden_values()))
def test_golden_decode_gives_the_values(name: str) -> None:
    seq, value = golden_values()[name]
    header, got = tm.SCHEMA.decode_frame(golden(name))
    assert (header.type_id, header.sequence, header.flags) == (value.type_id, seq, 0)
    assert header.payload_length == len(golden(name)) - 24
    assert type(got) is type(value)
    assert got == value
    assert got.encode_frame(seq) == golden(name)  # and back


def test_order_defaults_are_the_schema_defaults() -> None:
    o = tm.order()
    assert (o.leg.venue, o.leg.qty, o.side, o.px) == ("", 1, tm.side.sell, 1.5)
    assert tm.texts().name == "none" and tm.texts().blob == b""
    c = tm.collections()
    assert c.levels == [0.0, 0.0, 0.0] and c.ids == [] and c.flags == [] and c.side == tm.side.buy
    # an empty payload decodes to the defaults (wire-protocol.md section 8)
    assert tm.order.decode(b"") == tm.order()
    # defaults are per instance: no shared mutable default
    a, b = tm.collections(), tm.collections()
    a.ids.append(1)
    a.levels[0] = 5.0
    assert b.ids == [] and b.levels == [0.0, 0.0, 0.0]


def test_equality_and_repr() -> None:
    a = tm.order(leg=tm.leg(venue="X", qty=2), px=3.5)
    b = tm.order(leg=tm.leg(venue="X", qty=2), px=3.5)
    assert a == b and not (a != b)
    b.leg.qty = 3
    assert a != b
    assert tm.ping(seq=1) != tm.pong(seq=1)  # same fields, other type
    assert repr(a) == "order(leg=leg(venue='X', qty=2), side=side.sell, px=3.5)"
    assert repr(tm.side.buy) == "side.buy"
    with pytest.raises(TypeError):
        hash(a)  # mutable value objects are unhashable
    nan = tm.all_scalars(a_f64=math.nan)
    assert nan != tm.all_scalars(a_f64=math.nan)  # as C++ operator== on doubles


def test_type_ids_enums_and_module_constants() -> None:
    assert [(c.type_id, c.type_name) for c in tm.MESSAGES.values()] == [
        (1, "all_scalars"), (2, "texts"), (3, "collections"), (4, "leg"), (5, "order"), (10, "ping"),
        (11, "pong"), (12, "price_request"), (13, "price_reply"), (14, "fail_now")]
    assert tm.SCHEMA_PACKAGE == "mycelium.test" and tm.SCHEMA.package == "mycelium.test"
    assert int(tm.side.buy) == 1 and int(tm.side.sell) == 2 and tm.side(2) is tm.side.sell
    assert tm.SCHEMA.types[0][:2] == (1, "all_scalars")
    assert tm.order.__doc__ == "A nested message and defaults."


@pytest.mark.parametrize("schema_file,module", [
    ("tests/schemas/test_messages.toml", tm), ("tests/schemas/tricky_names.toml", tn),
    ("tests/python/python_names.toml", pn)])
def test_digests_equal_mycelium_codegen(schema_file: str, module: object) -> None:
    import os
    out = subprocess.run([env_path("MYCELIUM_CODEGEN"), "digest",
                          os.path.join(env_path("MYCELIUM_SOURCE_DIR"), schema_file)],
                         check=True, capture_output=True, text=True, timeout=30).stdout.splitlines()
    schema = module.SCHEMA  # type: ignore[attr-defined]
    assert out[0] == "schema %s %s" % (schema.package, schema.digest.hex())
    expected = ["message %d %s %s" % (tid, name, d.hex()) for tid, name, d in schema.types]
    assert out[1:] == expected
    assert module.SCHEMA_DIGEST == schema.digest  # type: ignore[attr-defined]


def test_documented_order_digest() -> None:
    # docs/schema.md section 7.2
    assert tm.order.digest.hex() == "9c57d02c9acedbeb8357773b82df3fe68b5d7b13a25ebd5e8f4368d18cef4903"


def test_every_field_is_written_in_id_order_even_at_default() -> None:
    p = tm.leg().encode()
    assert p == bytes.fromhex("0c00 00000000 1200 01000000")


def test_scalar_extremes_round_trip() -> None:
    for v in (tm.all_scalars(), tm.all_scalars(a_u64=2**64 - 1, a_i64=-(2**63), a_f32=-0.0,
                                               a_f64=math.inf, a_bool=True)):
        got = tm.all_scalars.decode(v.encode())
        assert got == v
    neg0 = tm.all_scalars.decode(tm.all_scalars(a_f64=-0.0).encode())
    assert math.copysign(1.0, neg0.a_f64) == -1.0
    n = tm.all_scalars.decode(tm.all_scalars(a_f64=math.nan).encode())
    assert math.isnan(n.a_f64)


def test_f32_is_rounded_to_f32() -> None:
    got = tm.all_scalars.decode(tm.all_scalars(a_f32=0.1).encode())
    assert got.a_f32 == struct.unpack("<f", struct.pack("<f", 0.1))[0] != 0.1


def test_string_limits_count_utf8_bytes() -> None:
    assert tm.texts.decode(tm.texts(name="é" * 8).encode()).name == "é" * 8  # 16 bytes
    with pytest.raises(EncodeError, match=r"texts\.name: 18 UTF-8 bytes, the schema allows at most 16"):
        tm.texts(name="é" * 9).encode()
    s = "a\0b"  # U+0000 is allowed
    assert tm.texts.decode(tm.texts(name=s).encode()).name == s


@pytest.mark.parametrize("value,message", [
    (tm.all_scalars(a_u8=256), r"all_scalars\.a_u8: 256 is out of the range of u8 \(0\.\.255\)"),
    (tm.all_scalars(a_i8=-129), r"all_scalars\.a_i8: -129 is out of the range of i8"),
    (tm.all_scalars(a_u64=2**64), r"all_scalars\.a_u64: 18446744073709551616 is out of the range"),
    (tm.all_scalars(a_u32=-1), r"all_scalars\.a_u32: -1 is out of the range of u32"),
    (tm.all_scalars(a_u16="1"), r"all_scalars\.a_u16: u16 expects an int, got str"),  # type: ignore[arg-type]
    (tm.all_scalars(a_bool=1), r"all_scalars\.a_bool: bool expected, got int"),  # type: ignore[arg-type]
    (tm.all_scalars(a_f32=1e300), r"all_scalars\.a_f32: 1e\+300 does not fit in f32"),
    (tm.all_scalars(a_f64="x"), r"all_scalars\.a_f64: f64 expects a float, got str"),  # type: ignore[arg-type]
    (tm.texts(blob=b"123456789"), r"texts\.blob: 9 bytes, the schema allows at most 8"),
    (tm.texts(name="\udc80"), r"texts\.name: not encodable as UTF-8"),
    (tm.collections(levels=[1.0]), r"collections\.levels: array<f64,3> needs exactly 3 elements, got 1"),
    (tm.collections(ids=[1, 2, 3, 4, 5]), r"collections\.ids: 5 elements, the schema allows at most 4"),
    (tm.collections(ids=[1, -2]), r"collections\.ids\[1\]: -2 is out of the range of u32"),
    (tm.collections(flags=[True, 2]), r"collections\.flags\[1\]: bool expected, got int"),  # type: ignore[list-item]
    (tm.collections(side=7), r"collections\.side: 7 is not a value of enum side \(values: buy=1, sell=2\)"),  # type: ignore[arg-type]
    (tm.order(leg=tm.ping()), r"order\.leg: leg expected, got ping"),  # type: ignore[arg-type]
    (tm.order(leg=tm.leg(qty=2**31)), r"order\.leg\.qty: 2147483648 is out of the range of i32"),
])
def test_encode_errors_name_the_field(value: codec.Message, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        value.encode()


def test_enum_fields_accept_declared_numbers() -> None:
    assert tm.collections(side=2).encode() == tm.collections(side=tm.side.sell).encode()  # type: ignore[arg-type]


def test_tricky_names_round_trip() -> None:
    h = tn.holder(other=1, uint32_t=2, kind=tn.kind.class_, class_="k", type_id_=0.5,
                  nested=tn.inner(inner=5))
    assert tn.holder.decode(h.encode()) == h
    assert tn.holder().kind is tn.kind.int and tn.holder().type_id_ == 2.0
    assert tn.inner().inner == -9223372036854775808
    assert tn.holder.type_id == 1  # the class constant is not shadowed by the field


def test_python_keyword_names_are_escaped() -> None:
    x = pn.lambda_()
    assert (x.def_, x.encode_, x.m__secret, x.flavour, x.int, x.list) == (7, 'x"y\\z', -3, pn.flavour.name_,
                                                                          True, [])
    assert x.self_ == struct.unpack("<f", struct.pack("<f", 0.1))[0]  # f32 default widened
    s = pn.SCHEMA_(inner=pn.lambda_(def_=9, flavour=pn.flavour.None_), def_=1, m_T_lambda_=4, _tags_="ab")
    assert (s.def__, s.type_name, s._fields_) == (3, "SCHEMA", 5)
    assert [f.name for f in pn.SCHEMA_._fields][-2:] == ["_fields", "_tags"]  # the class internals intact
    assert pn.SCHEMA_.decode(s.encode()) == s
    assert pn.SCHEMA.messages[2] is pn.SCHEMA_
    # field tables keep the schema names for error paths and digests
    assert [f.name for f in pn.lambda_._fields] == ["def", "encode", "__secret", "flavour", "self", "int", "list"]


def test_stub_and_module_are_generated_side_by_side() -> None:
    import os
    d = env_path("MYCELIUM_PY_GENERATED")
    for stem in ("test_messages", "tricky_names", "python_names", "link_test", "link_test_other"):
        assert os.path.isfile(os.path.join(d, stem + ".py")) and os.path.isfile(os.path.join(d, stem + ".pyi"))


@pytest.mark.parametrize("bits", [0x7F800001, 0xFF800001, 0x7FC00001, 0x7FFFFFFF, 0xFFC00000, 0x7F800000, 0x00000001])
def test_f32_nan_payloads_and_specials_keep_their_bits(bits: int) -> None:
    payload = struct.pack("<HI", 9 << 3 | 2, bits)
    got = tm.all_scalars.decode(payload)
    enc = got.encode()
    i = enc.index(b"\x4a\x00")  # a_f32's tag: field 9, fixed32
    assert enc[i + 2:i + 6] == struct.pack("<I", bits)
    assert codec.f32_bits(codec.f32_from_bits(bits)) == bits
    vec = codec.Vector(codec.F32, 4)
    raw = struct.pack("<I", 8) + struct.pack("<II", bits, 0x3FC00000)
    values, _ = vec.decode(raw, 0, len(raw), codec.SIZED, "v")
    out = bytearray()
    vec.encode(out, values, "v")
    assert bytes(out) == raw and values[1] == 1.5


def test_misspelt_attributes_are_errors() -> None:
    o = tm.order()
    with pytest.raises(AttributeError):
        o.pxx = 1.0  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        tm.order(pxx=1.0)  # type: ignore[call-arg]


def test_messages_named_like_builtins() -> None:
    f = getattr(pn, "str")(b=b"xy")
    assert f.n is getattr(pn, "list").one and f.b == b"xy"
    assert type(f).decode(f.encode()) == f
    b = getattr(pn, "bytes")()
    assert b.str == "b" and type(b).decode(b.encode()) == b
    for cls in (type(f), type(b)):
        assert isinstance(cls.digest, builtins.bytes) and len(cls.digest) == 32
