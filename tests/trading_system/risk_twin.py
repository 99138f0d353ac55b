"""A Python twin of the OCaml pre-trade risk service
(bindings/ocaml/examples/trading_system), written from the same rules
(docs/deployment.md): the tests run a deployment with it in place of the
OCaml service and require the same fills, so the OCaml service is checked
against an independent implementation of its specification."""

from __future__ import annotations

import struct
import time
from typing import Dict, List

import trading_system as ts
from mycelium import Service, on


def order_check(key: str, o: ts.order) -> int:
    """FNV-1a 64 over key, order_id, bar_seq, symbol, side, qty, limit, epoch."""
    data = (key.encode() + struct.pack("<QQ", o.order_id, o.bar_seq) + o.symbol.encode()
            + struct.pack("<BIdQ", int(o.side), o.qty, o.limit, o.risk_epoch))
    h = 14695981039346656037
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


class RiskTwin(Service):
    def __init__(self) -> None:
        self.max_position = int(self.params.get("max_position", 1000))
        self.max_notional = float(self.params.get("max_notional", 5e6))
        self.key = str(self.params.get("key", "mycelium-risk-key"))
        self.epoch = int(self.params.get("epoch", time.monotonic_ns()))
        self.committed: Dict[str, int] = {}
        self.next_id = 1
        self.ready = False
        self.queue: List[ts.signal] = []
        self.snapshot: Dict[str, int] = {}
        self.orders = self.rejections = self.signals = 0

    def on_ready(self, nodes: int) -> None:
        self.publish(ts.risk_hello(epoch=self.epoch))

    @on(ts.position_snapshot)
    def snap(self, s: ts.position_snapshot) -> None:
        if s.epoch != self.epoch or self.ready:
            return
        if s.count > 0:
            self.snapshot[s.symbol] = s.position
        if s.count == 0 or len(self.snapshot) == s.count:
            self.committed = dict(self.snapshot)
            self.next_id = s.last_order_id + 1
            self.ready = True
            for q in self.queue:
                self.handle(q)
            self.queue.clear()

    @on(ts.signal)
    def signal(self, s: ts.signal) -> None:
        if not self.ready:
            self.queue.append(s)
            return
        self.handle(s)

    def handle(self, s: ts.signal) -> None:
        t_in = time.monotonic_ns()
        self.signals += 1
        delta = s.target - self.committed.get(s.symbol, 0)
        if delta == 0:
            return
        if abs(s.target) > self.max_position:
            self.rejections += 1
            self.publish(ts.rejection(bar_seq=s.bar_seq, symbol=s.symbol, wanted=s.target,
                                      reason="position limit"))
            return
        if abs(s.target) * s.px > self.max_notional:
            self.rejections += 1
            self.publish(ts.rejection(bar_seq=s.bar_seq, symbol=s.symbol, wanted=s.target,
                                      reason="notional limit"))
            return
        o = ts.order(order_id=self.next_id, bar_seq=s.bar_seq, symbol=s.symbol,
                     side=ts.side.buy if delta > 0 else ts.side.sell, qty=abs(delta),
                     limit=s.px, risk_epoch=self.epoch, t_md=s.t_md,
                     t_signal_in=s.t_signal_in, t_signal_out=s.t_signal_out, t_risk_in=t_in)
        o.check = order_check(self.key, o)
        self.next_id += 1
        self.committed[s.symbol] = s.target
        self.orders += 1
        o.t_risk_out = time.monotonic_ns()
        self.publish(o)

    @on(ts.signals_done)
    def done(self, d: ts.signals_done) -> None:
        self.publish(ts.risk_done(orders=self.orders, rejections=self.rejections,
                                  signals=self.signals))
