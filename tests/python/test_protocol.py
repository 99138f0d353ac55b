"""The control frames and the link protocol core without I/O: the worked
examples of docs/wire-protocol.md byte for byte, the hello rules, and two
protocol cores talking to each other (handshake, authentication, refusals,
sequence numbers, interest, goodbye)."""

from __future__ import annotations

import struct
from typing import List, Optional, Tuple

import pytest

import link_test as lt
import link_test_other as lto
import test_messages as tm
from mycelium import AuthFailed, Errc, HandshakeRefused, LinkClosed, SchemaMismatch, errors, protocol, wire
from mycelium.codec import encode_header
from mycelium.protocol import Identity, LinkProtocol


def hexbytes(s: str) -> bytes:
    return bytes.fromhex(" ".join(s.split()))


def test_documented_refuse_frame() -> None:  # section 7.4
    f = wire.control_frame(wire.REFUSE, 2, wire.Refuse(18, "bye").encode())
    assert f == hexbytes("""0f 00 00 00  02 00 ff ff  02 00 00 00 00 00 00 00  01 00  00 00  00 00 00 00
                            0a 00  12 00 00 00  14 00  03 00 00 00  62 79 65""")
    assert wire.Refuse.decode(f[24:]) == wire.Refuse(18, "bye")


def test_documented_subscribe_frame() -> None:  # section 9.1
    f = wire.control_frame(wire.SUBSCRIBE, 2, wire.encode_interest(5))
    assert f == hexbytes("""06 00 00 00  03 00 ff ff  02 00 00 00 00 00 00 00  01 00  00 00  00 00 00 00
                            0a 00  05 00 00 00""")
    assert wire.decode_interest(f[24:]) == 5


def test_documented_auth_frame() -> None:  # section 9.4
    own = wire.Hello(bytes(range(0x20, 0x40)), "a", "s", 7, [], bytes(range(0x10, 0x20)))
    proof = wire.auth_proof(b"k", bytes(range(16)), own)
    assert proof.hex() == "451dce9dae9dbc60ad13eec41b9cd6cd741f7e6ad60375130b17a1951fdec3a2"
    assert wire.control_frame(wire.AUTH, 2, wire.encode_auth(proof)) == hexbytes(
        """26 00 00 00  08 00 ff ff  02 00 00 00 00 00 00 00  01 00  00 00  00 00 00 00
           0c 00  20 00 00 00
           45 1d ce 9d ae 9d bc 60  ad 13 ee c4 1b 9c d6 cd
           74 1f 7e 6a d6 03 75 13  0b 17 a1 95 1f de c3 a2""")
    assert wire.check_auth_proof(b"k", bytes(range(16)), own, proof)
    assert not wire.check_auth_proof(b"K", bytes(range(16)), own, proof)


def test_hello_layout_and_round_trip() -> None:
    nonce = bytes(range(1, 17))
    h = wire.Hello.for_schema(tm.SCHEMA, "node", "svc", 42, nonce)
    p = h.encode()
    assert p[:16] == hexbytes("0a 00 4d 59 43 4c 11 00 01 00 1c 00 20 00 00 00")
    assert p[16:48] == tm.SCHEMA_DIGEST and p[48:50] == b"\x24\x00"
    assert p.endswith(b"\x4c\x00\x10\x00\x00\x00" + nonce)  # no secret: ends with field 9
    assert wire.Hello.decode(p) == h
    with_secret = wire.Hello.for_schema(tm.SCHEMA, "node", "svc", 42, nonce, wire.AUTH_HMAC_SHA256)
    assert with_secret.encode() == p + b"\x50\x00\x01"
    no_nonce = wire.Hello.for_schema(tm.SCHEMA, "n", "s", 1, bytes(16))
    assert b"\x4c\x00" not in no_nonce.encode()[-22:]


def test_long_names_are_cut_on_a_utf8_boundary() -> None:
    h = wire.Hello(node="é" * 200, service="x" * 300)
    got = wire.Hello.decode(h.encode())
    assert got.node == "é" * 127 and got.service == "x" * 255


def _hello_fields(**drop_or_replace: Optional[bytes]) -> bytes:
    h = wire.Hello.for_schema(tm.SCHEMA, "n", "s", 1, bytes(range(1, 17)))
    parts = {1: struct.pack("<HI", 1 << 3 | 2, h.magic), 2: struct.pack("<HH", 2 << 3 | 1, 1),
             3: struct.pack("<HI", 3 << 3 | 4, 32) + h.schema_digest, 4: struct.pack("<HI", 4 << 3 | 4, 1) + b"n",
             5: struct.pack("<HI", 5 << 3 | 4, 1) + b"s", 6: struct.pack("<HI", 6 << 3 | 2, 1),
             8: struct.pack("<HI", 8 << 3 | 4, 4) + b"\0\0\0\0"}
    for k, v in drop_or_replace.items():
        fid = int(k[1:])
        if v is None:
            del parts[fid]
        else:
            parts[fid] = v
    return b"".join(parts[k] for k in sorted(parts))


@pytest.mark.parametrize("payload,cls,errc", [
    (_hello_fields(f1=None), errors.BadMagicError, Errc.bad_magic),
    (_hello_fields(f1=struct.pack("<HI", 1 << 3 | 2, 0x4C43594E)), errors.BadMagicError, Errc.bad_magic),
    (_hello_fields(f2=None), errors.TruncatedError, Errc.truncated),
    (_hello_fields(f8=None), errors.TruncatedError, Errc.truncated),
    (_hello_fields(f3=struct.pack("<HI", 3 << 3 | 4, 31) + bytes(31)), errors.ArrayLengthMismatchError,
     Errc.array_length_mismatch),
    (_hello_fields(f4=struct.pack("<HI", 4 << 3 | 4, 256) + b"x" * 256), errors.StringTooLongError,
     Errc.string_too_long),
    (_hello_fields(f8=struct.pack("<HI", 8 << 3 | 4, 4) + struct.pack("<I", 65536)), errors.VectorTooLongError,
     Errc.vector_too_long),
    (_hello_fields(f8=struct.pack("<HI", 8 << 3 | 4, 5) + b"\0\0\0\0\0"), errors.BadVectorLengthError,
     Errc.bad_vector_length),
    (_hello_fields(f8=struct.pack("<HI", 8 << 3 | 4, 2) + b"\0\0"), errors.TruncatedError, Errc.truncated),
    (_hello_fields(f8=struct.pack("<HI", 8 << 3 | 4, 4 + 37) + struct.pack("<I", 1) + bytes(36) + b"\x01"),
     errors.TruncatedError, Errc.truncated),
    (_hello_fields(f8=struct.pack("<HI", 8 << 3 | 4, 4 + 38) + struct.pack("<I", 1) + bytes(36) + b"\x01\xff"),
     errors.InvalidUtf8Error, Errc.invalid_utf8),
    (_hello_fields() + struct.pack("<HI", 2 << 3 | 1, 0)[:4], errors.DuplicateFieldError, Errc.duplicate_field),
    (_hello_fields() + struct.pack("<HI", 20 << 3 | 2, 0) * 2, errors.DuplicateFieldError, Errc.duplicate_field),
    (_hello_fields() + struct.pack("<HI", 7 << 3 | 4, 257) + bytes(257), errors.BytesTooLongError,
     Errc.bytes_too_long),
])
def test_hello_decode_rules(payload: bytes, cls: type, errc: Errc) -> None:
    with pytest.raises(cls) as info:
        wire.Hello.decode(payload)
    assert info.value.errc == errc  # type: ignore[attr-defined]


def test_hello_unknown_high_ids_repeat_without_error() -> None:
    p = _hello_fields() + struct.pack("<HI", 40 << 3 | 2, 0) * 2
    assert wire.Hello.decode(p).node == "n"


def test_interest_and_auth_decode_rules() -> None:
    with pytest.raises(errors.TruncatedError):
        wire.decode_interest(b"")
    for bad in (0, 0xFFFF0000, 0xFFFFFFFF):
        with pytest.raises(errors.UnknownTypeError):
            wire.decode_interest(wire.encode_interest(bad))
    with pytest.raises(errors.BadWireTypeError):
        wire.decode_interest(struct.pack("<HQ", 1 << 3 | 3, 5))
    with pytest.raises(errors.DuplicateFieldError):
        wire.decode_interest(wire.encode_interest(5) * 2)
    with pytest.raises(errors.TruncatedError):
        wire.decode_auth(b"")
    with pytest.raises(errors.ArrayLengthMismatchError):
        wire.decode_auth(wire.encode_auth(bytes(31)))


def test_check_hello_texts() -> None:
    a = wire.Hello.for_schema(lt.SCHEMA, "a", "s", 1, bytes(range(16)))
    b = wire.Hello.for_schema(lto.SCHEMA, "b", "t", 2, bytes(range(1, 17)))
    bad = wire.check_hello(a, b)
    assert bad is not None and bad[0] == Errc.schema_mismatch
    assert bad[1].startswith("schema digest mismatch: local node 'a' service 's' (pid 1) has %s, remote node "
                             "'b' service 't' (pid 2) has %s; first differing message type: "
                             % (lt.SCHEMA_DIGEST.hex(), lto.SCHEMA_DIGEST.hex()))
    assert bad[1].endswith(". Rebuild both sides from the same schema file.")
    assert wire.check_hello(a, a) is None
    assert wire.first_difference([(1, "x", b"1")], [(1, "x", b"1"), (2, "y", b"2")]) == \
        "y (id 2) exists only on the remote side"
    assert wire.first_difference([(1, "x", b"1"), (3, "z", b"3")], [(1, "x", b"1")]) == "z (id 3) exists only locally"
    assert wire.first_difference([(1, "x", b"1")], [(1, "w", b"1")]) == "x (id 1), called 'w' remotely"
    assert wire.first_difference([(1, "x", b"1")], [(1, "x", b"1")]) == "none found in the announced type lists"
    v2 = wire.Hello(magic=wire.MAGIC, version=2, node="b")
    got = wire.check_hello(a, v2)
    assert got is not None and got == (Errc.version_mismatch,
                                       "protocol version mismatch: local 1 vs remote 2 from node 'b' service '' (pid 0)")


# -- two cores, bytes passed by hand ----------------------------------------------------------

class Pair:
    def __init__(self, sa: object = lt.SCHEMA, sb: object = lt.SCHEMA, secret_a: Optional[str] = None,
                 secret_b: Optional[str] = None) -> None:
        self.a = LinkProtocol(sa, Identity("a", "sa", 1), secret_a)  # type: ignore[arg-type]
        self.b = LinkProtocol(sb, Identity("b", "sb", 2), secret_b)  # type: ignore[arg-type]
        self.to_b = [self.a.start()]
        self.to_a = [self.b.start()]
        self.ev_a: List[protocol.Event] = []
        self.ev_b: List[protocol.Event] = []

    def pump(self) -> None:
        for _ in range(10):
            if not self.to_a and not self.to_b:
                return
            data_b, self.to_b = b"".join(self.to_b), []
            data_a, self.to_a = b"".join(self.to_a), []
            if data_b:
                self.ev_b += self.b.receive(data_b, self.to_a)
            if data_a:
                self.ev_a += self.a.receive(data_a, self.to_b)


def closed(events: List[protocol.Event]) -> Optional[protocol.Closed]:
    c = [e for e in events if isinstance(e, protocol.Closed)]
    return c[0] if c else None


@pytest.mark.parametrize("secret", [None, "s3cret"])
def test_cores_establish_and_exchange(secret: Optional[str]) -> None:
    p = Pair(secret_a=secret, secret_b=secret)
    p.pump()
    assert p.a.state == p.b.state == LinkProtocol.ESTABLISHED
    assert isinstance(p.ev_a[0], protocol.Established) and p.ev_a[0].peer.node == "b"
    # no interest yet: nothing is sent
    assert p.a.write_message(lt.ping(seq=1)) is None and p.a.stats.not_wanted == 1
    p.to_a.append(p.b.write_interest(lt.ping.type_id, True))
    p.pump()
    assert p.ev_a[-1] == protocol.Interest(lt.ping.type_id, True)
    f = p.a.write_message(lt.ping(seq=7, payload=b"xy"))
    assert f is not None
    first_data_seq = 3 if secret else 2  # section 1.4
    assert struct.unpack_from("<Q", f, 8)[0] == first_data_seq
    # split into single bytes: the core reassembles frames
    for i in range(len(f)):
        p.ev_b += p.b.receive(f[i:i + 1], p.to_a)
    data = [e for e in p.ev_b if isinstance(e, protocol.Data)]
    assert len(data) == 1 and data[0].message == lt.ping(seq=7, payload=b"xy")
    p.to_b.append(p.a.write_goodbye())
    p.pump()
    c = closed(p.ev_b)
    assert c is not None and c.error is None and p.b.state == LinkProtocol.CLOSED


def test_cores_refuse_a_digest_mismatch_on_both_sides() -> None:
    p = Pair(sb=lto.SCHEMA)
    p.pump()
    for ev in (p.ev_a, p.ev_b):
        c = closed(ev)
        assert c is not None and isinstance(c.error, SchemaMismatch)
        assert c.error.errc == Errc.schema_mismatch and "first differing message type" in c.error.text


@pytest.mark.parametrize("sa,sb,text", [
    ("x", "y", "does not match: the two sides use different secrets"),
    ("x", None, "has a shared secret configured (its hello asks for authentication), but none is configured here"),
    (None, "y", "sent no authentication proof (its hello announces no shared secret)"),
])
def test_cores_refuse_secret_mismatches(sa: Optional[str], sb: Optional[str], text: str) -> None:
    p = Pair(secret_a=sa, secret_b=sb)
    p.pump()
    errs = [c.error for c in (closed(p.ev_a), closed(p.ev_b)) if c is not None]
    assert errs and all(isinstance(e, AuthFailed) for e in errs)
    assert any(text in e.text for e in errs if e is not None)


def test_refusal_texts_for_frames_before_the_hello() -> None:
    core = LinkProtocol(lt.SCHEMA, Identity("a", "s", 1))
    core.start()
    out: List[bytes] = []
    ev = core.receive(lt.ping(seq=1).encode_frame(1), out)
    c = closed(ev)
    assert c is not None and isinstance(c.error, HandshakeRefused) and not c.error.by_peer
    assert c.error.text == ("peer sent a data frame of type 1 before its hello: the first frame on a link must "
                            "be a hello (docs/wire-protocol.md section 7.3)")
    assert len(out) == 1 and struct.unpack_from("<IIQH", out[0]) == (len(out[0]) - 24, wire.REFUSE, 2, 1)
    assert wire.Refuse.decode(out[0][24:]).code == Errc.protocol_violation
    core.start()
    out = []
    c = closed(core.receive(wire.control_frame(wire.GOODBYE, 1), out))
    assert c is not None and "control frame goodbye (0xffff0006) before its hello" in str(c.error)


def test_undecodable_hello_and_bad_magic_texts() -> None:
    core = LinkProtocol(lt.SCHEMA, Identity("a", "s", 1))
    core.start()
    out: List[bytes] = []
    c = closed(core.receive(wire.control_frame(wire.HELLO, 1, b"\x0a"), out))
    assert c is not None and c.error is not None and c.error.errc == Errc.truncated
    assert c.error.text.startswith("undecodable hello: truncated; the peer does not speak Mycelium")
    core.start()
    bad = wire.Hello.for_schema(lt.SCHEMA, "x", "y", 9, bytes(range(16)))
    bad.magic = 0x4C43594E
    c = closed(core.receive(wire.control_frame(wire.HELLO, 1, bad.encode()), out))
    assert c is not None and c.error is not None and c.error.errc == Errc.bad_magic
    assert c.error.text == "peer node 'x' service 'y' (pid 9) is not a Mycelium peer (bad magic)"


def _established(secret: Optional[str] = None) -> Tuple[LinkProtocol, LinkProtocol]:
    p = Pair(secret_a=secret, secret_b=secret)
    p.pump()
    assert p.a.state == LinkProtocol.ESTABLISHED
    return p.a, p.b


def test_established_link_closes_on_sequence_gap_and_bad_header() -> None:
    a, _ = _established()
    out: List[bytes] = []
    c = closed(a.receive(encode_header(0, wire.HEARTBEAT, 5, 1), out))
    assert c is not None and isinstance(c.error, LinkClosed) and c.error.errc == Errc.sequence_gap
    assert "expected 2, got 5" in c.error.text and out == []  # closed, not refused, once established
    a, _ = _established()
    c = closed(a.receive(struct.pack("<IIQHHI", 0, wire.HEARTBEAT, 2, 3, 0, 0), out))
    assert c is not None and c.error is not None and c.error.errc == Errc.bad_frame_header


def test_established_link_drops_undecodable_data_and_goes_on() -> None:
    a, _ = _established()
    out: List[bytes] = []
    bad = encode_header(1, lt.ping.type_id, 2) + b"\x00"  # a half tag
    ev = a.receive(bad + encode_header(0, lt.empty.type_id, 3), out)
    assert isinstance(ev[0], protocol.BadFrame) and ev[0].errc == Errc.truncated
    assert isinstance(ev[1], protocol.Data) and ev[1].message == lt.empty()
    assert a.stats.bad_frames == 1 and a.state == LinkProtocol.ESTABLISHED


def test_established_link_closes_on_bad_interest_unknown_control_and_oversized_data() -> None:
    for frame, errc in [
        (wire.control_frame(wire.SUBSCRIBE, 2, b""), Errc.truncated),
        (wire.control_frame(0xFFFF0009, 2), Errc.protocol_violation),
        (wire.control_frame(wire.HELLO, 2), Errc.protocol_violation),
        (wire.control_frame(wire.SHM_ATTACH, 2), Errc.protocol_violation),
        (encode_header((1 << 20) + 1, 1, 2), Errc.frame_too_large),
    ]:
        a, _ = _established()
        c = closed(a.receive(frame, []))
        assert c is not None and c.error is not None and c.error.errc == errc, frame


def test_interest_in_a_foreign_type_is_counted_not_fatal() -> None:
    a, _ = _established()
    ev = a.receive(wire.control_frame(wire.SUBSCRIBE, 2, wire.encode_interest(77)), [])
    assert isinstance(ev[0], protocol.BadFrame) and ev[0].errc == Errc.unknown_type
    assert a.state == LinkProtocol.ESTABLISHED and 77 not in a.peer_interest


def test_refusal_with_an_unknown_code_is_reported_with_the_number() -> None:
    core = LinkProtocol(lt.SCHEMA, Identity("a", "s", 1))
    core.start()
    c = closed(core.receive(wire.control_frame(wire.REFUSE, 1, wire.Refuse(200, "from the future").encode()), []))
    assert c is not None and isinstance(c.error, HandshakeRefused) and c.error.by_peer
    assert c.error.code == 200 and str(c.error) == "refused by peer (unknown code 200): from the future"


def test_publishing_on_a_closed_core_raises() -> None:
    core = LinkProtocol(lt.SCHEMA)
    with pytest.raises(LinkClosed):
        core.write_message(lt.ping())


def test_hello_without_magic_field_is_refused_with_bad_magic() -> None:
    # wire-protocol.md 7.1: "A hello without field 1 -> bad_magic". (The C++
    # link at this commit accepts such a hello: its decoded hello keeps the
    # default magic; reported with this branch.)
    core = LinkProtocol(lt.SCHEMA, Identity("a", "s", 1))
    core.start()
    h = wire.Hello.for_schema(lt.SCHEMA, "x", "y", 9, bytes(range(16)))
    out: List[bytes] = []
    c = closed(core.receive(wire.control_frame(wire.HELLO, 1, h.encode()[6:]), out))
    assert c is not None and c.error is not None and c.error.errc == Errc.bad_magic
    assert c.error.text == "peer node 'x' service 'y' (pid 9) is not a Mycelium peer (bad magic)"
    assert wire.Refuse.decode(out[0][24:]).code == Errc.bad_magic
