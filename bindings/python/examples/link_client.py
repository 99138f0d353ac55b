#!/usr/bin/python3
"""Example: a typed Python client of a Mycelium node, blocking and asyncio.

Talks to a node with the link conformance services (tests/schemas/
link_test.toml, e.g. `mycelium-link-peer --kind unix --listen /tmp/p.sock`):
sends pings and checks the pongs, streams `data` messages, then asks for the
peer's `report` by request/reply. `link_test` is the module that
`mycelium_add_schema(... PYTHON dir)` generates; put that directory and
bindings/python on PYTHONPATH. `mypy --strict` accepts this file (checked by
tests/python/test_mypy.py).

    link_client.py --unix /tmp/p.sock [--secret S] [--asyncio] [--count N]
    link_client.py --tcp 127.0.0.1:4242
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import List

import link_test as lt
from mycelium import HandshakeRefused, aio, link


def fnv1a(data: bytes) -> int:
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def make_data(seq: int) -> lt.data:
    body = bytes((seq * 7 + k) & 0xFF for k in range(seq % 50))
    return lt.data(seq=seq, checksum=fnv1a(body), payload=body)


def run_blocking(lk: link.Link, count: int) -> lt.report:
    with lk.subscribe(lt.pong) as pongs:
        if not lk.wait_peer_interest(lt.ping, timeout=5):
            raise SystemExit("the peer never subscribed to ping")
        for i in range(1, count + 1):
            lk.publish(lt.ping(seq=i, payload=b"p%d" % i))
            got: lt.pong = pongs.get(timeout=5)
            assert got.seq == i and got.payload == b"p%d" % i
    before = lk.request(lt.report_request(token=1), lt.report, timeout=5, match=lambda r: r.token == 1)
    for s in range(before.last_seq + 1, before.last_seq + 1 + count):
        lk.publish(make_data(s))
    return lk.request(lt.report_request(token=2), lt.report, timeout=5, match=lambda r: r.token == 2)


async def run_async(lk: aio.AsyncLink, count: int) -> lt.report:
    pongs = lk.subscribe(lt.pong)
    if not await lk.wait_peer_interest(lt.ping, timeout=5):
        raise SystemExit("the peer never subscribed to ping")
    for i in range(1, count + 1):
        lk.publish(lt.ping(seq=i, payload=b"a%d" % i))
    seen: List[int] = []
    async for p in pongs:
        seen.append(p.seq)
        if len(seen) == count:
            break
    pongs.close()
    assert seen == list(range(1, count + 1))
    return await lk.request(lt.report_request(token=3), lt.report, timeout=5, match=lambda r: r.token == 3)


async def main_async(args: argparse.Namespace) -> lt.report:
    if args.unix:
        lk = await aio.connect_unix(args.unix, lt.SCHEMA, node="example", secret=args.secret)
    else:
        host, port = args.tcp.rsplit(":", 1)
        lk = await aio.connect_tcp(host, int(port), lt.SCHEMA, node="example", secret=args.secret)
    async with lk:
        return await run_async(lk, args.count)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", help="peer's Unix socket path")
    where.add_argument("--tcp", help="peer's HOST:PORT")
    ap.add_argument("--secret", default=None)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--asyncio", action="store_true")
    args = ap.parse_args()
    try:
        if args.asyncio:
            rep = asyncio.run(main_async(args))
        else:
            if args.unix:
                lk = link.connect_unix(args.unix, lt.SCHEMA, node="example", secret=args.secret)
            else:
                host, port = args.tcp.rsplit(":", 1)
                lk = link.connect_tcp(host, int(port), lt.SCHEMA, node="example", secret=args.secret)
            with lk:
                rep = run_blocking(lk, args.count)
    except HandshakeRefused as e:
        print("refused: %s" % e, file=sys.stderr)
        return 1
    print("report: received=%d order_errors=%d checksum_errors=%d last_seq=%d"
          % (rep.received, rep.order_errors, rep.checksum_errors, rep.last_seq))
    return 0


if __name__ == "__main__":
    sys.exit(main())
