"""A rogue Python service for the crash test: once the deployment is ready
it publishes an order that risk never saw (its check is not risk's), which
execution must refuse."""

from __future__ import annotations

import trading_system as ts
from mycelium import Service


class Rogue(Service):
    schema = ts

    def on_ready(self, nodes: int) -> None:
        self.publish(ts.order(order_id=999999, bar_seq=1, symbol="SPX", side=ts.side.buy,
                              qty=1000, limit=1.0, risk_epoch=1, check=12345))
