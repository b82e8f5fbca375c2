"""Exchange: the simulated KuCoin Futures venue (market + account), pure and single-threaded."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .contracts import ContractSpec
from .events import Event
from .market import Market
from .trading import Trading


class Exchange:
    """The one object the server layer calls; every method runs on the simulator's loop thread."""

    def __init__(self, *, seed: int, now_ms: int, tick_ms: int = 100, vol_scale: float = 1.0,
                 balances: Mapping[str, float] | None = None,
                 contracts: Sequence[ContractSpec] | None = None) -> None:
        self.market = Market(seed=seed, now_ms=now_ms, contracts=contracts, tick_ms=tick_ms,
                             vol_scale=vol_scale)
        self.trading = Trading(self.market, balances=balances)
        self.market.hooks = self.trading
        self.maintenance = False

    def status(self) -> dict[str, Any]:
        if self.maintenance:
            return {"status": "close", "msg": "maintenance"}
        return {"status": "open", "msg": ""}

    def advance(self, now_ms: int) -> None:
        self.market.advance(now_ms)

    def drain_events(self) -> list[Event]:
        return self.market.drain_events()
