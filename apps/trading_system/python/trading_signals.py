"""The model of the trading system (docs/deployment.md): a moving-average
trend follower in Python with numpy, as an ordinary mycelium.Service.

On every bar it updates the symbol's prices and, once it has `slow` of
them, publishes a signal: the target position, +`size` when the `fast`
average is above the `slow` one, -`size` otherwise. The target depends only
on the bars, so every deployment publishes the same signals. Fills update
the model's view of its position and its running P&L (the "model update");
they do not change the next targets, which keeps the run deterministic
whatever the timing of fills.

Params: fast (default 10), slow (30), size (100).
"""

from __future__ import annotations

import time
from typing import Dict, List

import numpy as np

import trading_system as ts
from mycelium import Service, on


class Signals(Service):
    def __init__(self) -> None:
        self.fast = int(self.params.get("fast", 10))
        self.slow = int(self.params.get("slow", 30))
        self.size = int(self.params.get("size", 100))
        if not 0 < self.fast < self.slow:
            raise ValueError("params: need 0 < fast < slow, got fast=%d slow=%d"
                             % (self.fast, self.slow))
        self.prices: Dict[str, List[float]] = {}
        self.signals = 0
        self.bars = 0
        self.position: Dict[str, int] = {}
        self.cash = 0.0
        self.fills = 0

    @on(ts.bar)
    def bar(self, b: ts.bar) -> None:
        t_in = time.monotonic_ns()
        self.bars += 1
        px = self.prices.setdefault(b.symbol, [])
        px.append(b.close)
        if len(px) < self.slow:
            return
        window = np.asarray(px[-self.slow:])
        fast = float(window[-self.fast:].mean())
        slow = float(window.mean())
        target = self.size if fast > slow else -self.size
        self.signals += 1
        s = ts.signal(bar_seq=b.seq, symbol=b.symbol, target=target, px=b.close,
                      t_md=b.t_md, t_signal_in=t_in)
        # Stamped last: the hop is publish -> handler entry, and building the
        # message is the handler's own work.
        s.t_signal_out = time.monotonic_ns()
        self.publish(s)

    @on(ts.fill)
    def fill(self, f: ts.fill) -> None:
        self.fills += 1
        self.position[f.symbol] = f.position
        self.cash += (-1 if f.side == ts.side.buy else 1) * f.qty * f.px

    @on(ts.session_end)
    def session_end(self, e: ts.session_end) -> None:
        self.publish(ts.signals_done(signals=self.signals, bars=self.bars))
