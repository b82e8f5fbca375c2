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

    def resume(self, now_ms: int) -> None:
        self.market.resume(now_ms)

    def drain_events(self) -> list[Event]:
        return self.market.drain_events()

    # -- test hooks (Simulator methods and /sim/ routes; no KuCoin counterpart) ------------------
    def move_price(self, symbol: str, price: float, now_ms: int,
                   only: str | None = None) -> dict[str, float]:
        """Move a symbol's price through a level now (Market.move_price); stops trigger at once."""
        return self.market.move_price(symbol, price, now_ms, only=only)

    def set_account_mode(self, mode: str) -> None:
        self.trading.set_account_mode(mode)

    def set_position_mode(self, hedge: bool, now_ms: int) -> None:
        self.trading.switch_position_mode({"positionMode": "1" if hedge else "0"}, now_ms)

    def deleverage(self, symbol: str, now_ms: int, lots: int | None = None) -> None:
        self.trading.risk.deleverage(symbol, now_ms, lots)

    def settle_funding(self, symbol: str, now_ms: int) -> None:
        self.trading.risk.settle_funding_now(symbol, now_ms)

