"""The Python bridge (bindings/python/include/mycelium/python/message_bridge.hpp)
against the pure-Python codec: what a C++ node makes of a Python message
object without encoding it, and the Python object it makes of a C++ struct
without decoding. `_mycelium_bridge_probe` is the bridge with the test
schema's C++ types compiled in (tests/python/bridge_probe). The bridge must
accept exactly what `encode()` accepts, refuse the rest with the same
`EncodeError` text, and give objects equal to what `decode()` gives."""

from __future__ import annotations

import math
import struct
from typing import Any, List

import pytest

import _mycelium_bridge_probe as probe
import link_test
import test_messages as tm
from conftest import golden
from mycelium import EncodeError, codec
from test_codec import golden_values


def all_classes() -> List[Any]:
    return list(tm.MESSAGES.values())


@pytest.mark.parametrize("cls", all_classes(), ids=lambda c: c.type_name)
def test_every_class_of_the_schema_is_bridged(cls: Any) -> None:
    assert probe.bridged(cls)


def test_a_class_of_another_schema_is_not_bridged() -> None:
    # Same type id as test_messages.all_scalars, other digest: the codec stays the path.
    assert link_test.ping.type_id == 1
    assert not probe.bridged(link_test.ping)
    assert not probe.bridged(int)


@pytest.mark.parametrize("name", sorted(golden_values()))
def test_golden_values_both_ways(name: str) -> None:
    _seq, value = golden_values()[name]
    payload = golden(name)[24:]
    assert probe.to_cpp(value) == payload
    back = probe.from_cpp(type(value), payload)
    assert type(back) is type(value)
    assert back == value
    assert back.encode() == payload


def samples() -> List[codec.Message]:
    nan_payload = struct.unpack("<f", struct.pack("<I", 0x7F800001))[0]  # signalling NaN
    return [
        tm.all_scalars(),
        tm.all_scalars(a_u8=True, a_i64=2**63 - 1, a_u64=0, a_f32=nan_payload, a_f64=-0.0,
                       a_i16=False, a_bool=False),  # type: ignore[arg-type]
        tm.all_scalars(a_f32=3, a_f64=2**53 + 1),
        tm.all_scalars(a_f32=float("inf"), a_f64=float("-inf")),
        tm.all_scalars(a_f32=3.4028235e38, a_f64=float("nan")),  # rounds to the largest f32
        tm.all_scalars(a_f32=1e-46),  # rounds to 0
        tm.texts(name="", blob=b""),
        tm.texts(name="日本語の名", blob=bytearray(b"\x00\xff")),
        tm.texts(name="x" * 16, blob=memoryview(b"12345678")),  # type: ignore[arg-type]
        tm.collections(levels=(1.5, -0.0, 1e308), ids=(), flags=[True, True, False, True],
                       side=1),  # type: ignore[arg-type]
        tm.collections(ids=[0, 4294967295, 7, 8], side=tm.side.buy),
        tm.order(leg=tm.leg(venue="", qty=-2**31), side=2, px=float("nan")),  # type: ignore[arg-type]
        tm.ping(seq=2**64 - 1),
        tm.price_reply(symbol="ABC", px=1e-300),
    ]


@pytest.mark.parametrize("value", samples(), ids=repr)
def test_to_cpp_writes_what_encode_writes(value: codec.Message) -> None:
    assert probe.to_cpp(value) == value.encode()


@pytest.mark.parametrize("value", samples(), ids=repr)
def test_from_cpp_gives_what_decode_gives(value: codec.Message) -> None:
    payload = value.encode()
    back = probe.from_cpp(type(value), payload)
    decoded = type(value).decode(payload)
    assert type(back) is type(value)
    assert back.encode() == payload  # bit-exact, NaN payloads included
    assert repr(back) == repr(decoded)
    for f in type(value)._fields:
        got, want = getattr(back, f.attr), getattr(decoded, f.attr)
        assert type(got) is type(want), f.name
        if isinstance(want, list) and want:
            assert [type(x) for x in got] == [type(x) for x in want], f.name


def test_nan_payload_survives_both_ways() -> None:
    bits = 0x7FA00001  # a signalling NaN with a payload
    v = tm.all_scalars(a_f32=codec.f32_from_bits(bits))
    back = probe.from_cpp(tm.all_scalars, probe.to_cpp(v))
    assert math.isnan(back.a_f32)
    assert codec.f32_bits(back.a_f32) == bits


BAD = [
    tm.all_scalars(a_u8=256),
    tm.all_scalars(a_i8=-129),
    tm.all_scalars(a_u64=2**64),
    tm.all_scalars(a_u64=-1),
    tm.all_scalars(a_i64=2**63),
    tm.all_scalars(a_i64=-2**63 - 1),
    tm.all_scalars(a_u32=-1),
    tm.all_scalars(a_u16="1"),  # type: ignore[arg-type]
    tm.all_scalars(a_i32=1.0),  # type: ignore[arg-type]
    tm.all_scalars(a_bool=1),  # type: ignore[arg-type]
    tm.all_scalars(a_bool=None),  # type: ignore[arg-type]
    tm.all_scalars(a_f32=1e300),
    tm.all_scalars(a_f32=-1e39),
    tm.all_scalars(a_f64=10**400),
    tm.all_scalars(a_f64="x"),  # type: ignore[arg-type]
    tm.texts(name=b"bytes"),  # type: ignore[arg-type]
    tm.texts(name="x" * 17),
    tm.texts(name="é" * 9),
    tm.texts(name="\udc80"),
    tm.texts(blob=b"123456789"),
    tm.texts(blob="str"),  # type: ignore[arg-type]
    tm.texts(blob=[1, 2]),  # type: ignore[arg-type]
    tm.collections(levels=[1.0]),
    tm.collections(levels=(1.0, 2.0, 3.0, 4.0)),
    tm.collections(levels={1.0, 2.0, 3.0}),  # type: ignore[arg-type]
    tm.collections(levels=[1.0, "2", 3.0]),  # type: ignore[list-item]
    tm.collections(ids=[1, 2, 3, 4, 5]),
    tm.collections(ids=[1, -2]),
    tm.collections(ids=5),  # type: ignore[arg-type]
    tm.collections(flags=[True, 2]),  # type: ignore[list-item]
    tm.collections(side=7),  # type: ignore[arg-type]
    tm.collections(side=True),  # type: ignore[arg-type]
    tm.collections(side="buy"),  # type: ignore[arg-type]
    tm.order(leg=tm.ping()),  # type: ignore[arg-type]
    tm.order(leg=tm.leg(qty=2**31)),
    tm.order(leg=tm.leg(venue="123456789")),
]


@pytest.mark.parametrize("value", BAD, ids=repr)
def test_refuses_what_encode_refuses_with_the_same_text(value: codec.Message) -> None:
    with pytest.raises(EncodeError) as want:
        value.encode()
    with pytest.raises(EncodeError) as got:
        probe.to_cpp(value)
    assert got.value.path == want.value.path
    assert str(got.value) == str(want.value)


def test_a_nested_field_set_to_none_is_refused() -> None:
    v = tm.order()
    v.leg = None  # type: ignore[assignment]
    with pytest.raises(EncodeError) as want:
        v.encode()
    with pytest.raises(EncodeError) as got:
        probe.to_cpp(v)
    assert str(got.value) == str(want.value) == "order.leg: leg expected, got NoneType"


def test_the_bridge_decides_and_the_codec_words_it() -> None:
    # The texts come from encode(), run once on the error path; the bridge's
    # own check decides. A class whose encode() does not raise still gets
    # the bridge's EncodeError.
    class lenient(tm.ping):
        __slots__ = ()

        def encode(self) -> bytes:
            return b""

    assert probe.bridged(lenient)  # a subclass has the generated fields
    with pytest.raises(EncodeError, match=r"^ping\.seq: -1 is out of the range of u64 "
                                          r"\(0\.\.18446744073709551615\)$"):
        probe.to_cpp(lenient(seq=-1))


def test_an_unset_attribute_raises_as_encode_does() -> None:
    v = tm.ping.__new__(tm.ping)
    with pytest.raises(AttributeError):
        v.encode()
    with pytest.raises(AttributeError):
        probe.to_cpp(v)


def test_cpp_values_the_decoder_refuses_are_not_converted() -> None:
    # Over max, not UTF-8, over a vector's max, an undeclared enum value:
    # the runtime hands the bytes over and the decoder names the error.
    *refused, fine = probe.refused(tm.texts, tm.collections)
    assert refused == [None, None, None, None]
    assert fine == tm.texts(name="ok")
