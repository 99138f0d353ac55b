"""The Python decoder against the C++ decoder on the same bytes: the golden
frames, random valid messages of every type and many deterministic
mutations of them (flipped, cut, inserted and spliced bytes, header
changes, payloads decoded as another type). For each frame both must agree:
the same errc, or both decode and re-encode to the same bytes. The C++ side
is decode_oracle.cpp (target mycelium-py-decode-oracle)."""

from __future__ import annotations

import random
import struct
import subprocess
from typing import Any, Callable, Dict, List, Tuple

import test_messages as tm
from conftest import env_path, golden
from mycelium import DecodeError
from mycelium.codec import Message

SEED = 20261201
CASES_PER_SEED_FRAME = 200


def rand_text(r: random.Random, max_bytes: int) -> str:
    alphabet = "aZ09 _-\u00e9\u00fc\u4e2d\U0001f600\u0000"
    while True:
        s = "".join(r.choice(alphabet) for _ in range(r.randint(0, max_bytes)))
        if len(s.encode()) <= max_bytes:
            return s


def rand_f32(r: random.Random) -> float:
    return float(struct.unpack("<f", struct.pack("<f", r.uniform(-1e6, 1e6)))[0])


def random_message(r: random.Random) -> Message:
    makers: List[Callable[[], Message]] = [
        lambda: tm.all_scalars(a_u8=r.randint(0, 255), a_u16=r.randint(0, 65535), a_u32=r.randint(0, 2**32 - 1),
                               a_u64=r.randint(0, 2**64 - 1), a_i8=r.randint(-128, 127),
                               a_i16=r.randint(-32768, 32767), a_i32=r.randint(-2**31, 2**31 - 1),
                               a_i64=r.randint(-2**63, 2**63 - 1), a_f32=rand_f32(r),
                               a_f64=r.choice([r.uniform(-1e300, 1e300), 0.0, -0.0, float("inf")]),
                               a_bool=r.random() < 0.5),
        lambda: tm.texts(name=rand_text(r, 16), blob=bytes(r.randint(0, 255) for _ in range(r.randint(0, 8)))),
        lambda: tm.collections(levels=[r.uniform(-10, 10) for _ in range(3)],
                               ids=[r.randint(0, 2**32 - 1) for _ in range(r.randint(0, 4))],
                               flags=[r.random() < 0.5 for _ in range(r.randint(0, 4))],
                               side=r.choice(list(tm.side))),
        lambda: tm.leg(venue=rand_text(r, 8), qty=r.randint(-2**31, 2**31 - 1)),
        lambda: tm.order(leg=tm.leg(venue=rand_text(r, 8), qty=r.randint(-5, 5)), side=r.choice(list(tm.side)),
                         px=r.uniform(0, 1000)),
        lambda: tm.ping(seq=r.randint(0, 2**64 - 1)),
        lambda: tm.price_reply(symbol=rand_text(r, 16), px=r.uniform(0, 1)),
        lambda: tm.fail_now(reason=rand_text(r, 64)),
    ]
    return r.choice(makers)()


def with_payload(frame: bytes, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + frame[4:24] + payload


def mutate(r: random.Random, frame: bytes) -> bytes:
    payload = bytearray(frame[24:])
    kind = r.randrange(9)
    if kind == 0 and payload:  # flip a byte
        payload[r.randrange(len(payload))] ^= 1 << r.randrange(8)
    elif kind == 1 and payload:  # set a byte to an extreme
        payload[r.randrange(len(payload))] = r.choice([0, 1, 2, 0x7F, 0x80, 0xC0, 0xED, 0xF4, 0xFF])
    elif kind == 2:  # cut the payload
        del payload[r.randrange(len(payload) + 1):]
    elif kind == 3:  # insert random bytes
        at = r.randrange(len(payload) + 1)
        payload[at:at] = bytes(r.randrange(256) for _ in range(r.randint(1, 6)))
    elif kind == 4:  # splice a field with a random tag
        at = r.randrange(len(payload) + 1)
        fid, wt = r.choice([0, 1, 2, 3, 4, 5, 11, 100, 8191]), r.randrange(8)
        value = bytes(r.randrange(256) for _ in range(r.choice([0, 1, 2, 4, 8])))
        if wt == 4:
            value = struct.pack("<I", r.choice([0, len(value), len(value) + 1, 2**32 - 1])) + value
        payload[at:at] = struct.pack("<H", fid << 3 | wt) + value
    elif kind == 5:  # change a length prefix-ish u32 somewhere
        if len(payload) >= 6:
            at = r.randrange(len(payload) - 3)
            payload[at:at + 4] = struct.pack("<I", r.choice([0, 1, 3, 4, 8, 9, 16, 17, 24, 25, 2**31]))
    elif kind == 6:  # decode as another type of the schema (or none)
        tid = r.choice([1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 6, 0, 0xFFFF0001])
        return frame[:4] + struct.pack("<I", tid) + frame[8:24] + bytes(payload)
    elif kind == 7:  # header bits
        flags, r0, r1 = r.choice([(1, 0, 0), (2, 0, 0), (0, 1, 0), (0, 0, 1 << 31)])
        return frame[:16] + struct.pack("<HHI", flags, r0, r1) + bytes(payload)
    else:  # payload_length that disagrees with the bytes
        n = len(payload) + r.choice([-3, -1, 1, 5, 2**20])
        return struct.pack("<I", max(n, 0)) + frame[4:] 
    return with_payload(frame, bytes(payload))


def python_answer(frame: bytes) -> str:
    try:
        h, msg = tm.SCHEMA.decode_frame(frame)
    except DecodeError as e:
        return "error " + e.errc.name
    return "ok " + msg.encode_frame(h.sequence).hex()


def test_python_and_cpp_decoders_agree() -> None:
    r = random.Random(SEED)
    seeds = [golden(n) for n in ("all_scalars.hex", "texts.hex", "collections.hex", "order.hex",
                                 "order_defaults.hex")]
    seeds += [random_message(r).encode_frame(r.randint(1, 2**40)) for _ in range(300)]
    # NaNs with payloads, signalling ones included, must keep their bits
    for bits32, bits64 in ((0x7F800001, 0x7FF0000000000001), (0xFFBFFFFF, 0xFFF8000000000001),
                           (0x7FC00000, 0x7FF8000000000000)):
        f = bytearray(tm.all_scalars().encode_frame(3))
        i = bytes(f).index(b"\x4a\x00")  # field 9 (a_f32), fixed32
        f[i + 2:i + 6] = struct.pack("<I", bits32)
        j = bytes(f).index(b"\x53\x00")  # field 10 (a_f64), fixed64
        f[j + 2:j + 10] = struct.pack("<Q", bits64)
        seeds.append(bytes(f))
        seeds.append(with_payload(tm.collections().encode_frame(4),
                                  struct.pack("<HI", 1 << 3 | 4, 24) + struct.pack("<QQQ", bits64, 1, bits64 ^ 1)))
    # hand-made frames one step outside the schema's bounds, to mutate too
    blob9 = struct.pack("<HI", 2 << 3 | 4, 9) + bytes(9)
    seeds.append(with_payload(tm.texts().encode_frame(1), blob9))
    ids5 = struct.pack("<HI", 2 << 3 | 4, 20) + bytes(20)
    seeds.append(with_payload(tm.collections().encode_frame(2), ids5))
    frames: List[bytes] = list(seeds)
    for f in seeds:
        for _ in range(CASES_PER_SEED_FRAME):
            g = f
            for _ in range(r.randint(1, 3)):
                g = mutate(r, g)
            frames.append(g)
    frames.append(b"")  # H1
    frames.append(bytes(23))
    cpp = subprocess.run([env_path("MYCELIUM_DECODE_ORACLE")], input="".join("frame %s\n" % f.hex() for f in frames),
                         capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()
    assert len(cpp) == len(frames)
    disagreements = [(f.hex(), c, p) for f, c in zip(frames, cpp) if c != (p := python_answer(f))]
    assert disagreements == [], "%d of %d frames disagree, first: %s" % (len(disagreements), len(frames),
                                                                        disagreements[:3])
    # the corpus reaches every outcome the schema allows
    outcomes: Dict[str, int] = {}
    for c in cpp:
        key = c.split()[0] if c.startswith("ok") else c
        outcomes[key] = outcomes.get(key, 0) + 1
    expected = {"ok", "error truncated", "error frame_too_large", "error bad_frame_header", "error unknown_type",
                "error bad_wire_type", "error bad_field_id", "error duplicate_field", "error bad_enum_value",
                "error bad_bool", "error string_too_long", "error invalid_utf8", "error bytes_too_long",
                "error vector_too_long", "error bad_vector_length", "error array_length_mismatch"}
    assert set(outcomes) == expected, sorted(outcomes.items())


# -- control payloads: hello, refuse, auth, interest -----------------------------------------

def control_seeds(r: random.Random) -> List[Tuple[str, bytes]]:
    import link_test as lt
    from mycelium import wire
    out: List[Tuple[str, bytes]] = []
    for schema in (tm.SCHEMA, lt.SCHEMA):
        for _ in range(40):
            nonce = bytes(16) if r.random() < 0.2 else bytes(r.randrange(256) for _ in range(16))
            h = wire.Hello.for_schema(schema, rand_text(r, 20), rand_text(r, 20), r.randint(0, 2**32 - 1),
                                      nonce, r.choice([0, 0, 1, 7]))
            if r.random() < 0.2:
                h.auth_proof = bytes(r.randint(0, 40))
            out.append(("hello", h.encode()))
    # a node name of 256 bytes (the encoder would cut it to 255)
    long_node = wire.Hello.for_schema(tm.SCHEMA, "n", "s", 1, bytes(range(16))).encode().replace(
        b"\x24\x00\x01\x00\x00\x00n", b"\x24\x00\x00\x01\x00\x00" + b"n" * 256)
    out.append(("hello", long_node))
    for _ in range(40):
        out.append(("refuse", wire.Refuse(r.choice([0, 18, 35, 200, 255, 256, 2**32 - 1]), rand_text(r, 60)).encode()))
        out.append(("auth", wire.encode_auth(bytes(r.randrange(256) for _ in range(32)))))
        out.append(("interest", wire.encode_interest(r.choice([1, 5, 14, 99, 0xFFFEFFFF]))))
    return out


def python_control(kind: str, payload: bytes) -> str:
    from mycelium import wire
    try:
        if kind == "hello":
            return "ok " + wire.Hello.decode(payload).encode().hex()
        if kind == "refuse":
            return "ok " + wire.Refuse.decode(payload).encode().hex()
        if kind == "auth":
            return "ok " + wire.encode_auth(wire.decode_auth(payload)).hex()
        return "ok " + wire.encode_interest(wire.decode_interest(payload)).hex()
    except DecodeError as e:
        return "error " + e.errc.name


def test_python_and_cpp_control_decoders_agree() -> None:
    r = random.Random(SEED + 1)
    seeds = control_seeds(r)
    cases: List[Tuple[str, bytes]] = list(seeds)
    for kind, p in seeds:
        for _ in range(40):
            g = bytes(24) + p  # reuse the data-frame mutations on the payload
            for _ in range(r.randint(1, 3)):
                g = mutate(r, g)
            cases.append((kind, g[24:]))
    cases += [("hello", b""), ("refuse", b""), ("auth", b""), ("interest", b"")]
    cpp = subprocess.run([env_path("MYCELIUM_DECODE_ORACLE")],
                         input="".join("%s %s\n" % (k, p.hex()) for k, p in cases),
                         capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()
    assert len(cpp) == len(cases)
    disagreements = [(k, p.hex(), c, py) for (k, p), c in zip(cases, cpp) if c != (py := python_control(k, p))]
    assert disagreements == [], "%d of %d disagree, first: %s" % (len(disagreements), len(cases), disagreements[:3])
    seen = {(k, c.split()[0] if c.startswith("ok") else c) for (k, _), c in zip(cases, cpp)}
    for kind in ("hello", "refuse", "auth", "interest"):
        assert (kind, "ok") in seen and (kind, "error truncated") in seen
    for errc in ("bad_magic", "duplicate_field", "bad_wire_type", "bad_field_id", "string_too_long",
                 "invalid_utf8", "array_length_mismatch", "bad_vector_length"):
        assert ("hello", "error " + errc) in seen, errc
    assert ("interest", "error unknown_type") in seen
