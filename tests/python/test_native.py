"""A schema's native module in a Python process (docs/python.md section 9):
`mycelium.Node` takes the schema from `<module>_native` (built by
mycelium_add_schema), so its links carry the generated C++ structs and the
Python bridge converts them, without the pure-Python codec. Checked here:
that a node uses it, that values cross between a native node and a codec
node bit for bit in both directions, that the bridge refuses what
`encode()` refuses, and that a missing, stale or foreign native module is
refused (or, by default, warned about and replaced by the codec)."""

from __future__ import annotations

import os
import types
from typing import Any, Iterator, List, Tuple

import pytest

import link_test as lt
import link_test_native
import mycelium
import python_names
import test_messages as tm
import test_messages_native
from mycelium import EncodeError, _core, codec
from mycelium import runtime as rt
from test_bridge import BAD, samples
from test_codec import golden_values


def values() -> List[codec.Message]:
    return [v for _seq, v in golden_values().values()] + samples()


@pytest.fixture
def pair(scratch: str) -> Iterator[Tuple[mycelium.Node, mycelium.Node]]:
    """A native node and a codec node of test_messages, linked over Unix,
    each subscribed to every type."""
    native = mycelium.Node("native", tm)
    plain = mycelium.Node("plain", tm, native=False)
    try:
        assert native.native and not plain.native
        subs = {}
        for n in (native, plain):
            subs[n.name] = {tid: n.subscribe(cls) for tid, cls in tm.MESSAGES.items()}
        lk = native.listen("unix", os.path.join(scratch, "native.sock"))
        lk2 = plain.connect("unix", os.path.join(scratch, "native.sock"))
        assert lk.wait_up(10) and lk2.wait_up(10), (lk.stats(), lk2.stats())
        for cls in tm.MESSAGES.values():
            assert lk.wait_peer_interest(cls, 10) and lk2.wait_peer_interest(cls, 10)
        native.subs = subs["native"]  # type: ignore[attr-defined]
        plain.subs = subs["plain"]  # type: ignore[attr-defined]
        native.lk = lk  # type: ignore[attr-defined]
        plain.lk = lk2  # type: ignore[attr-defined]
        yield native, plain
    finally:
        plain.stop()
        native.stop()


def test_a_process_node_takes_the_schema_from_its_native_module() -> None:
    with mycelium.Node("n", lt) as n:
        assert n.native
        assert rt.native_module(n.schema) is link_test_native
    assert link_test_native.package == lt.SCHEMA_PACKAGE
    assert link_test_native.digest == lt.SCHEMA_DIGEST
    with mycelium.Node("c", lt, native=False) as c:
        assert not c.native


@pytest.mark.parametrize("direction", ["native to codec", "codec to native"])
def test_values_cross_bit_for_bit(pair: Tuple[mycelium.Node, mycelium.Node],
                                  direction: str) -> None:
    native, plain = pair
    src, dst = (native, plain) if direction == "native to codec" else (plain, native)
    sent = values()
    for v in sent:
        assert src.publish(v), v
    for v in sent:
        got = dst.subs[v.type_id].get(timeout=10)  # type: ignore[attr-defined]
        assert type(got) is type(v)
        assert got.encode() == v.encode(), (v, got)  # NaN payloads included
    # Nothing else arrived, nothing was refused.
    for sub in dst.subs.values():  # type: ignore[attr-defined]
        with pytest.raises(TimeoutError):
            sub.get(timeout=0)
    for st in (src.lk.stats(), dst.lk.stats()):  # type: ignore[attr-defined]
        assert st["bad_frames"] == 0 and st["refusals_received"] == 0, st


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_the_native_node_refuses_what_encode_refuses(bad: codec.Message) -> None:
    with mycelium.Node("n", tm) as n:
        assert n.native
        n.subscribe(type(bad))
        with pytest.raises(EncodeError) as native_error:
            n.publish(bad)
    with pytest.raises(EncodeError) as codec_error:
        bad.encode()
    assert str(native_error.value) == str(codec_error.value)


def test_required_native_module_that_is_missing_is_an_error() -> None:
    assert rt.native_module(mycelium.service.schema_of(python_names)) is None
    with pytest.raises(ImportError, match="python_names_native"):
        mycelium.Node("n", python_names, native=True)
    with mycelium.Node("n", python_names) as n:  # auto: the codec, silently
        assert not n.native


def announced(schema: Any) -> List[Tuple[int, str, bytes]]:
    return [(tid, name, dg) for tid, name, dg in schema.types]


def test_a_stale_native_module_is_refused_with_both_digests() -> None:
    s = mycelium.service.schema_of(lt)
    with pytest.raises(ValueError) as e:
        _core.NativeSchema(test_messages_native, s.digest, announced(s))
    text = str(e.value)
    assert "stale" in text and s.digest.hex() in text and tm.SCHEMA_DIGEST.hex() in text
    # The same digest but another type list is refused too.
    types_changed = announced(s)[:-1]
    with pytest.raises(ValueError, match="stale"):
        _core.NativeSchema(link_test_native, s.digest, types_changed)


def test_by_default_an_unusable_native_module_warns_and_the_codec_is_used(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rt, "native_module", lambda schema: test_messages_native)
    with pytest.warns(RuntimeWarning, match="stale"):
        n = mycelium.Node("n", lt)
    try:
        assert not n.native
        sub = n.subscribe(lt.ping)
        assert n.publish(lt.ping(seq=7, payload=b"x"))
        assert sub.get(timeout=5) == lt.ping(seq=7, payload=b"x")
    finally:
        n.stop()
    with pytest.raises(ValueError, match="stale"):
        mycelium.Node("n", lt, native=True)


def test_a_module_without_the_capsule_is_refused() -> None:
    fake = types.ModuleType("fake_native")
    fake.schema = object()  # type: ignore[attr-defined]
    s = mycelium.service.schema_of(lt)
    with pytest.raises(ValueError, match="fake_native: its `schema` is not a mycelium.native_schema"):
        _core.NativeSchema(fake, s.digest, announced(s))


def test_the_environment_chooses_when_the_caller_does_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYCELIUM_NATIVE", "0")
    with mycelium.Node("n", lt) as n:
        assert not n.native
    with mycelium.Node("n", lt, native=True) as n:  # the argument wins
        assert n.native
    monkeypatch.setenv("MYCELIUM_NATIVE", "1")
    with pytest.raises(ImportError, match="python_names_native"):
        mycelium.Node("n", python_names)
    monkeypatch.setenv("MYCELIUM_NATIVE", "yes")
    with pytest.raises(ValueError, match="MYCELIUM_NATIVE='yes'"):
        mycelium.Node("n", lt)
