#!/usr/bin/python3
"""An independent Mycelium wire-protocol client, written from
docs/wire-protocol.md and docs/schema.md alone (standard library only), run
against a real `mycelium-link-peer` over Unix and TCP sockets.

It proves that the documents are enough to talk to the C++ peer:
  - the schema digest and per-message digests, computed from the schema file
    by the canonical form of schema.md section 7, equal the peer's;
  - the handshake (section 7), with and without a shared secret, including
    the challenge-response `auth` frames (section 9.4);
  - interest (section 9.1), TLV data frames of the conformance schema
    (sections 2, 3), the peer's answers and its sequence numbers (1.4);
  - `goodbye` (9.2a);
  - the refusals: a bad magic (with the documented text), a digest mismatch,
    a data frame or a goodbye before the hello, a replayed hello + auth
    frame, a hello without a nonce; and a refusal with a code the peer does
    not know is logged by the peer as "unknown code N".

Every wait is bounded (socket timeouts, a deadline on the peer's output);
the peer processes are killed and reaped in `finally` even when a check
fails. Exit status 0 when every check passed, 1 otherwise.

Usage: doc_client.py --peer PATH/TO/mycelium-link-peer --schema tests/schemas/link_test.toml
"""

import argparse
import hashlib
import hmac
import os
import queue
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tomllib

TIMEOUT = 10.0  # seconds for any single wait

# -- section 1: frames ----------------------------------------------------------

HEADER = struct.Struct("<IIQHHI")  # payload_length, type_id, sequence, flags, reserved0, reserved1
FLAG_CONTROL = 0x0001
HELLO, REFUSE, SUBSCRIBE, UNSUBSCRIBE, HEARTBEAT, GOODBYE, SHM_ATTACH, AUTH = range(0xFFFF0001, 0xFFFF0009)

# section 4.1 (the numbers the checks below need)
ERRC = {"bad_magic": 16, "schema_mismatch": 18, "auth_failed": 19, "protocol_violation": 32}

MAGIC = 0x4C43594D  # bytes 4D 59 43 4C, "MYCL"
VERSION = 1


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def frame(type_id, seq, payload=b"", control=True):
    return HEADER.pack(len(payload), type_id, seq, FLAG_CONTROL if control else 0, 0, 0) + payload


# -- section 2: TLV ---------------------------------------------------------------

FIXED8, FIXED16, FIXED32, FIXED64, SIZED = range(5)
FIXED_SIZE = {FIXED8: 1, FIXED16: 2, FIXED32: 4, FIXED64: 8}


def tag(field_id, wire_type):
    return struct.pack("<H", field_id << 3 | wire_type)


def f_u8(fid, v):
    return tag(fid, FIXED8) + struct.pack("<B", v)


def f_u16(fid, v):
    return tag(fid, FIXED16) + struct.pack("<H", v)


def f_u32(fid, v):
    return tag(fid, FIXED32) + struct.pack("<I", v)


def f_u64(fid, v):
    return tag(fid, FIXED64) + struct.pack("<Q", v)


def f_sized(fid, b):
    return tag(fid, SIZED) + struct.pack("<I", len(b)) + b


def fields(payload):
    """Decodes a TLV payload into {field_id: (wire_type, raw value bytes)}."""
    out = {}
    pos = 0
    while pos < len(payload):
        check(len(payload) - pos >= 2, "truncated tag")
        (t,) = struct.unpack_from("<H", payload, pos)
        pos += 2
        fid, wt = t >> 3, t & 7
        check(wt <= SIZED and fid != 0, "bad tag %#06x" % t)
        if wt == SIZED:
            (n,) = struct.unpack_from("<I", payload, pos)
            pos += 4
        else:
            n = FIXED_SIZE[wt]
        check(pos + n <= len(payload), "field %d runs past the payload" % fid)
        check(fid not in out, "duplicate field %d" % fid)
        out[fid] = (wt, payload[pos:pos + n])
        pos += n
    return out


def uint(f, fid, default=0):
    if fid not in f:
        return default
    return int.from_bytes(f[fid][1], "little")


# -- schema.md section 7: canonical form and digests --------------------------------

SCALARS = {"u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64", "bool"}


def canonical_field(fd):
    t = fd["type"]
    if t in ("u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64"):
        return "%d %s %s default=%d" % (fd["id"], fd["name"], t, fd.get("default", 0))
    if t == "string":
        check("default" not in fd, "doc client: string defaults are not implemented")
        return '%d %s string[%d] default=""' % (fd["id"], fd["name"], fd["max"])
    if t == "bytes":
        return "%d %s bytes[%d]" % (fd["id"], fd["name"], fd["max"])
    raise Failure("doc client: schema type %r is not implemented (the link test "
                  "schema uses integers, strings and bytes only)" % t)


def digests(schema_path):
    """(schema digest, [(type id, name, message digest)], {name: message})."""
    with open(schema_path, "rb") as f:
        doc = tomllib.load(f)
    check(not doc.get("enum"), "doc client: enums are not implemented")
    messages = doc["message"]
    lines = {}
    for name, m in messages.items():
        body = "".join(canonical_field(fd) + ";" for fd in sorted(m.get("fields", []), key=lambda x: x["id"]))
        lines[name] = "message %d %s {%s}\n" % (m["id"], name, body)
    by_id = sorted(messages.items(), key=lambda kv: kv[1]["id"])
    text = "mycelium-schema 1\npackage %s\n" % doc["package"] + "".join(lines[n] for n, _ in by_id)
    types = [(m["id"], n, hashlib.sha256(("mycelium-message 1\n" + lines[n]).encode()).digest())
             for n, m in by_id]
    return hashlib.sha256(text.encode()).digest(), types, messages


# -- section 7.1: hello; 9.4: auth -------------------------------------------------------

def hello_payload(digest, types, node, service, pid, nonce, auth_scheme=0, magic=MAGIC):
    tl = struct.pack("<I", len(types))
    for tid, name, d in types:
        tl += struct.pack("<I", tid) + d + struct.pack("<B", len(name)) + name.encode()
    p = (f_u32(1, magic) + f_u16(2, VERSION) + f_sized(3, digest) + f_sized(4, node.encode())
         + f_sized(5, service.encode()) + f_u32(6, pid) + f_sized(7, b"") + f_sized(8, tl))
    if nonce is not None:
        p += f_sized(9, nonce)
    if auth_scheme:
        p += f_u8(10, auth_scheme)
    return p


def parse_hello(payload):
    f = fields(payload)
    h = {"magic": uint(f, 1), "version": uint(f, 2), "digest": f[3][1], "node": f[4][1].decode(),
         "service": f[5][1].decode(), "pid": uint(f, 6), "nonce": f.get(9, (0, b""))[1],
         "auth_scheme": uint(f, 10)}
    tl = f[8][1]
    (count,) = struct.unpack_from("<I", tl, 0)
    pos, types = 4, []
    for _ in range(count):
        tid = struct.unpack_from("<I", tl, pos)[0]
        d = tl[pos + 4:pos + 36]
        n = tl[pos + 36]
        types.append((tid, tl[pos + 37:pos + 37 + n].decode(), d))
        pos += 37 + n
    check(pos == len(tl), "bytes left after the hello's type list")
    h["types"] = types
    return h


def auth_proof(secret, challenge, own):
    msg = (b"mycelium-auth-v2" + challenge + own["nonce"] + own["digest"] + own["node"].encode()
           + b"\x00" + own["service"].encode() + b"\x00" + struct.pack("<I", own["pid"]))
    return hmac.new(secret.encode(), msg, hashlib.sha256).digest()


# -- the conformance schema's messages (tests/schemas/link_test.toml) ------------------

PING, PONG, DATA, REPORT_REQUEST, REPORT, CHAT, PROBE, COMMAND, EMPTY = range(1, 10)


def fnv1a(b):
    h = 1469598103934665603
    for x in b:
        h ^= x
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


# -- a connection ----------------------------------------------------------------------------

class Conn:
    """One connection to the peer; checks the peer's sequence numbers."""

    def __init__(self, family, address):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(address)
        if family == socket.AF_INET:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rx_seq = 0
        self.tx_seq = 0
        self.sent = b""  # everything written (for replays)

    def close(self):
        self.sock.close()

    def send(self, type_id, payload=b"", control=True):
        self.tx_seq += 1
        data = frame(type_id, self.tx_seq, payload, control)
        self.sent += data
        self.sock.sendall(data)

    def send_raw(self, data):
        self.sent += data
        self.sock.sendall(data)

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                raise Failure("no data from the peer within %.0f s" % TIMEOUT)
            if not chunk:
                return None
            buf += chunk
        return buf

    def recv(self, skip_heartbeats=True):
        """The next frame (header tuple, payload), or None at EOF."""
        while True:
            raw = self._exact(HEADER.size)
            if raw is None:
                return None
            length, type_id, seq, flags, r0, r1 = HEADER.unpack(raw)
            check(flags & ~FLAG_CONTROL == 0 and r0 == 0 and r1 == 0, "peer sent a bad header")
            check(seq == self.rx_seq + 1, "peer's sequence: expected %d, got %d" % (self.rx_seq + 1, seq))
            self.rx_seq = seq
            payload = self._exact(length)
            check(payload is not None, "connection closed inside a frame")
            if skip_heartbeats and flags == FLAG_CONTROL and type_id == HEARTBEAT:
                continue
            return (type_id, seq, flags), payload

    def expect(self, type_id, what):
        got = self.recv()
        check(got is not None, "peer closed the connection, expected %s" % what)
        (tid, seq, flags), payload = got
        if tid == REFUSE and flags == FLAG_CONTROL and type_id != REFUSE:
            f = fields(payload)
            raise Failure("expected %s, peer refused: reason %d: %s"
                          % (what, uint(f, 1), f.get(2, (0, b""))[1].decode()))
        check(tid == type_id, "expected %s, got type %#x" % (what, tid))
        return seq, payload

    def expect_eof(self, what):
        """Reads until the peer closes; only interest may still arrive."""
        while True:
            got = self.recv()
            if got is None:
                return
            (tid, _, flags), _ = got
            if flags == FLAG_CONTROL and tid in (SUBSCRIBE, UNSUBSCRIBE):
                continue
            raise Failure("%s: expected the peer to close, got type %#x" % (what, tid))


# -- the peer process ---------------------------------------------------------------------------

class Peer:
    """A running mycelium-link-peer; its stderr lines are collected by a thread."""

    def __init__(self, exe, kind, listen, secret=None):
        argv = [exe, "--kind", kind, "--listen", listen, "--port", "0",
                "--peer-timeout-ms", "10000", "--name", "doc-peer"]
        if secret:
            argv += ["--secret", secret]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.lines), daemon=True).start()
        self.stdout = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout), daemon=True).start()
        self.port = None

    def wait_ready(self):
        """Waits for "ready port=N" on the peer's stdout."""
        try:
            line = self.stdout.get(timeout=20)
        except queue.Empty:
            raise Failure("the peer printed no 'ready' line within 20 s")
        check(line.startswith("ready port="), "unexpected first line from the peer: %r" % line)
        self.port = int(line.split()[1].split("=")[1])

    @staticmethod
    def _pump(stream, q):
        for raw in iter(stream.readline, b""):
            q.put(raw.decode(errors="replace").rstrip("\n"))
        q.put(None)

    def await_stderr(self, needle):
        deadline = time.monotonic() + TIMEOUT
        for line in self.stderr:
            if needle in line:
                return line
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("the peer never logged %r; its log:\n%s" % (needle, "\n".join(self.stderr)))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise Failure("the peer exited before logging %r" % needle)
            self.stderr.append(line)
            if needle in line:
                return line

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the peer stops at EOF on stdin
                self.proc.wait(timeout=TIMEOUT)
            except (subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# -- the checks --------------------------------------------------------------------------------

class Client:
    def __init__(self, schema):
        self.digest, self.types, self.messages = digests(schema)
        self.pid = os.getpid()

    def hello(self, conn, secret=None, nonce=None, **kw):
        """Reads the peer's hello, sends ours (and the auth frames)."""
        _, payload = conn.expect(HELLO, "the peer's hello")
        peer = parse_hello(payload)
        check(peer["magic"] == MAGIC and peer["version"] == VERSION, "peer's magic or version")
        check(peer["digest"] == self.digest,
              "schema digest: computed %s from schema.md section 7, the peer has %s"
              % (self.digest.hex(), peer["digest"].hex()))
        check(peer["types"] == self.types, "the per-message digests differ from the peer's type list")
        check(len(peer["nonce"]) == 16 and peer["nonce"] != bytes(16), "peer's nonce")
        check(peer["auth_scheme"] == (1 if secret else 0), "peer's auth_scheme field")
        own = {"nonce": os.urandom(16) if nonce is None else nonce, "digest": kw.get("digest", self.digest),
               "node": "doc-client", "service": "python", "pid": self.pid}
        conn.send(HELLO, hello_payload(own["digest"], kw.get("types", self.types), own["node"],
                                       own["service"], own["pid"], own["nonce"] or None,
                                       1 if secret else 0, kw.get("magic", MAGIC)))
        return peer, own

    def authenticate(self, conn, secret, peer, own):
        seq, payload = conn.expect(AUTH, "the peer's auth frame")
        check(seq == 2, "the peer's auth frame has sequence %d, not 2" % seq)
        f = fields(payload)
        check(f[1][0] == SIZED and len(f[1][1]) == 32, "auth proof is not 32 bytes")
        check(hmac.compare_digest(f[1][1], auth_proof(secret, own["nonce"], peer)),
              "the peer's proof does not verify (section 9.4)")
        conn.send(AUTH, f_sized(1, auth_proof(secret, peer["nonce"], own)))

    def expect_refusal(self, conn, reason, text_parts, what):
        while True:
            got = conn.recv()
            check(got is not None, "%s: the peer closed without a refusal" % what)
            (tid, seq, flags), payload = got
            if tid not in (HELLO, AUTH):  # sent before the peer decided to refuse
                break
        check(tid == REFUSE and flags == FLAG_CONTROL, "%s: expected a refuse, got %#x" % (what, tid))
        f = fields(payload)
        text = f.get(2, (0, b""))[1].decode()
        check(uint(f, 1) == reason, "%s: reason %d, expected %d (%s)" % (what, uint(f, 1), reason, text))
        for part in text_parts:
            check(part in text, "%s: refusal text %r lacks %r" % (what, text, part))
        conn.expect_eof(what)
        return text

    def session(self, conn, secret=None):
        peer, own = self.hello(conn, secret)
        if secret:
            self.authenticate(conn, secret, peer, own)
        conn.send(SUBSCRIBE, f_u32(1, PONG))
        conn.send(SUBSCRIBE, f_u32(1, REPORT))
        # The peer announces its interest once established (section 9.1).
        wanted = {PING, DATA, REPORT_REQUEST, EMPTY}
        interest = set()
        while not wanted <= interest:
            seq, payload = conn.expect(SUBSCRIBE, "the peer's subscribe frames")
            check(seq >= (3 if secret else 2), "subscribe before the handshake ended")
            interest.add(uint(fields(payload), 1))
        # ping -> pong with the same content, payloads 0 .. 70000 bytes
        sizes = [0, 1, 7, 8, 1000, 70000]
        sent = {}
        for i, n in enumerate(sizes, 1):
            sent[i] = os.urandom(n)
            conn.send(PING, f_u64(1, i) + f_sized(2, sent[i]), control=False)
        pongs = {}
        while len(pongs) < len(sizes):
            (tid, _, flags), payload = conn.recv() or ((None, 0, 0), b"")
            check(tid is not None, "peer closed before all pongs arrived")
            if flags == FLAG_CONTROL:
                continue  # e.g. more interest
            check(tid == PONG, "unexpected data frame of type %d" % tid)
            f = fields(payload)
            pongs[uint(f, 1)] = f[2][1]
        for i in sent:
            check(pongs[i] == sent[i], "pong %d does not carry the ping's %d bytes" % (i, len(sent[i])))
        # data frames in order with checksums and an empty message; the
        # peer's counters are per process, so compare with a report before.
        before = self.report(conn)
        n_data = 50
        first = uint(before, 6) + 1
        for s in range(first, first + n_data):
            body = bytes((s * 7 + k) & 0xFF for k in range(s % 97 * 13))
            conn.send(DATA, f_u64(1, s) + f_u64(2, fnv1a(body)) + f_sized(3, body), control=False)
        conn.send(EMPTY, b"", control=False)
        r = self.report(conn)
        delta = {k: uint(r, k) - uint(before, k) for k in (2, 4, 5, 6, 9)}
        check(delta == {2: n_data, 4: 0, 5: 0, 6: n_data, 9: 1},
              "report deltas (received, order errors, checksum errors, last_seq, "
              "empties) are %s" % delta)
        conn.send(GOODBYE)
        conn.expect_eof("after goodbye")

    @staticmethod
    def report(conn):
        """Sends a report_request and returns the fields of the matching report."""
        token = int.from_bytes(os.urandom(6), "little")
        conn.send(REPORT_REQUEST, f_u64(1, token), control=False)
        while True:
            (tid, _, flags), payload = conn.recv() or ((None, 0, 0), b"")
            check(tid is not None, "peer closed before the report")
            if flags == 0 and tid == REPORT and uint(fields(payload), 1) == token:
                return fields(payload)

    def refusals(self, connect):
        c = connect()
        self.hello(c, magic=0x4C43594E)  # "NYCL"
        self.expect_refusal(c, ERRC["bad_magic"],
                            ["peer node 'doc-client' service 'python' (pid %d) is not a Mycelium "
                             "peer (bad magic)" % self.pid], "bad magic")
        c.close()
        c = connect()
        other = bytes([self.digest[0] ^ 1]) + self.digest[1:]
        types = [(t, n, d if t != DATA else bytes(32)) for t, n, d in self.types]
        self.hello(c, digest=other, types=types)
        self.expect_refusal(c, ERRC["schema_mismatch"],
                            ["schema digest mismatch", self.digest.hex(), other.hex(),
                             "first differing message type: data (id 3)"], "digest mismatch")
        c.close()
        c = connect()  # a data frame first: refused, never closed silently
        c.send(PING, f_u64(1, 1), control=False)
        self.expect_refusal(c, ERRC["protocol_violation"], ["data frame of type 1", "before its hello"],
                            "data before the hello")
        c.close()
        c = connect()
        c.send(GOODBYE)
        self.expect_refusal(c, ERRC["protocol_violation"], ["goodbye", "before its hello"],
                            "goodbye before the hello")
        c.close()

    def auth_refusals(self, connect, secret):
        # A complete, good handshake whose bytes we keep ...
        c = connect()
        peer, own = self.hello(c, secret)
        self.authenticate(c, secret, peer, own)
        captured = c.sent
        c.send(GOODBYE)
        c.expect_eof("after goodbye")
        c.close()
        # ... replayed on a new connection: the peer's nonce is new.
        c = connect()
        c.expect(HELLO, "the peer's hello")
        c.send_raw(captured)
        self.expect_refusal(c, ERRC["auth_failed"], ["does not match"], "replayed hello + auth")
        c.close()
        c = connect()
        self.hello(c, secret, nonce=b"")  # no field 9
        self.expect_refusal(c, ERRC["auth_failed"], ["sent no nonce"], "hello without a nonce")
        c.close()
        c = connect()
        peer, own = self.hello(c, secret)
        c.expect(AUTH, "the peer's auth frame")
        c.send(AUTH, f_sized(1, auth_proof(secret + "x", peer["nonce"], own)))
        self.expect_refusal(c, ERRC["auth_failed"], ["different secrets"], "wrong secret")
        c.close()
        c = connect()  # no secret on our side
        self.expect_refusal_after_plain_hello(c)
        c.close()

    def expect_refusal_after_plain_hello(self, c):
        _, payload = c.expect(HELLO, "the peer's hello")
        own_nonce = os.urandom(16)
        c.send(HELLO, hello_payload(self.digest, self.types, "doc-client", "python", self.pid, own_nonce))
        self.expect_refusal(c, ERRC["auth_failed"], ["no authentication proof"], "hello without a secret")

    def unknown_refusal(self, connect, peer_proc):
        c = connect()
        self.hello(c)
        c.send(REFUSE, f_u32(1, 200) + f_sized(2, b"from the future"))
        peer_proc.await_stderr("refused by peer (unknown code 200): from the future")
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", required=True)
    ap.add_argument("--schema", required=True)
    args = ap.parse_args()
    client = Client(args.schema)
    secret = "doc-secret"
    failures = []
    peers = []
    tmp = tempfile.TemporaryDirectory(prefix="mycelium-doc-")
    try:
        for kind in ("unix", "tcp"):
            for with_secret in (False, True):
                label = "%s%s" % (kind, " + secret" if with_secret else "")
                path = os.path.join(tmp.name, "peer-%s-%d.sock" % (kind, with_secret))
                try:
                    p = Peer(args.peer, kind, path if kind == "unix" else "127.0.0.1",
                             secret if with_secret else None)
                    peers.append(p)  # stopped in finally, whatever happens next
                    p.wait_ready()
                    if kind == "unix":
                        connect = lambda path=path: Conn(socket.AF_UNIX, path)
                    else:
                        connect = lambda port=p.port: Conn(socket.AF_INET, ("127.0.0.1", port))
                    c = connect()
                    client.session(c, secret if with_secret else None)
                    c.close()
                    if with_secret:
                        client.auth_refusals(connect, secret)
                    else:
                        client.refusals(connect)
                        client.unknown_refusal(connect, p)
                    # the peer still serves a fresh connection after all of it
                    c = connect()
                    client.session(c, secret if with_secret else None)
                    c.close()
                    print("ok   %s" % label)
                except (Failure, OSError) as e:
                    failures.append("%s: %s" % (label, e))
                    print("FAIL %s: %s" % (label, e))
    finally:
        for p in peers:
            rc = p.stop()
            if rc not in (0, None):
                failures.append("peer exited with %s" % rc)
        tmp.cleanup()
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    print("doc client: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
