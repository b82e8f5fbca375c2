"""Test helpers for the trading engine: the real Market with a book and mark price a test controls.

PinnedMarket is kucoin_sim.market.Market with one override: a test may pin a symbol's mark
price (to walk a position into liquidation without waiting for the random walk). set_book()
replaces the market maker's levels of one symbol with an exact ladder. Tests that use set_book
drive resting orders through the hooks (`trading.before_quote`) rather than `market.advance`,
which would re-quote the book.
"""
from __future__ import annotations

from typing import Any

from kucoin_sim.contracts import default_contracts
from kucoin_sim.events import PrivateEvent
from kucoin_sim.market import Market
from kucoin_sim.trading import Trading

T0 = 1_760_000_000_000  # 2025-10-09T08:53:20Z
SYMBOLS = ("XBTUSDTM", "ETHUSDTM", "XBTUSDM")

# XBTUSDTM: tick 0.1, 0.001 XBT per lot, fees 0.0002 / 0.0006, tier 1 up to 100000 USDT at 125x
LINEAR_BIDS = (("89999.5", 5), ("89999", 10), ("89998", 100))
LINEAR_ASKS = (("90000", 5), ("90000.5", 10), ("90001", 100))
# XBTUSDM: inverse, 1 USD per lot, settles in XBT
INVERSE_BIDS = (("89999.5", 5000), ("89999", 10000))
INVERSE_ASKS = (("90000", 5000), ("90000.5", 10000))


class PinnedMarket(Market):
    """The real Market whose mark price a test may pin per symbol."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pinned_marks: dict[str, float] = {}

    def mark_price(self, symbol: str) -> float:
        if symbol in self.pinned_marks:
            return self.pinned_marks[symbol]
        return super().mark_price(symbol)


def make_market(*, now_ms: int = T0, seed: int = 7) -> PinnedMarket:
    specs = [s for s in default_contracts(now_ms) if s.symbol in SYMBOLS]
    return PinnedMarket(seed=seed, now_ms=now_ms, contracts=specs)


def set_book(market: Market, symbol: str, *, bids: tuple[tuple[str, int], ...],
             asks: tuple[tuple[str, int], ...], now_ms: int = T0) -> None:
    """Replace the market maker's levels of `symbol` with exactly `bids` and `asks`."""
    book, fmt = market.book(symbol), market.fmt(symbol)
    for side in ("buy", "sell"):
        for ticks in book.prices(side):
            book.set_mm(side, ticks, 0, now_ms)
    for side, levels in (("buy", bids), ("sell", asks)):
        for price, size in levels:
            book.set_mm(side, fmt.to_ticks(price), size, now_ms)
    market.flush(symbol, now_ms)
    market.drain_events()


def make_trading(*, balances: dict[str, float] | None = None, mark: float = 90_000.0,
                 now_ms: int = T0) -> tuple[PinnedMarket, Trading]:
    """A market with the exact XBTUSDTM / XBTUSDM ladders above, marks pinned, no events pending."""
    market = make_market(now_ms=now_ms)
    trading = Trading(market, balances=balances)
    set_book(market, "XBTUSDTM", bids=LINEAR_BIDS, asks=LINEAR_ASKS, now_ms=now_ms)
    set_book(market, "XBTUSDM", bids=INVERSE_BIDS, asks=INVERSE_ASKS, now_ms=now_ms)
    market.pinned_marks.update({"XBTUSDTM": mark, "XBTUSDM": mark})
    return market, trading


def order_body(side: str = "buy", size: int = 1, *, price: str | None = None,
               symbol: str = "XBTUSDTM", client_oid: str = "c-1", leverage: Any = 5,
               **extra: Any) -> dict[str, Any]:
    """A create-order body as ccxt sends it (protocol notes §7.2)."""
    body: dict[str, Any] = {"clientOid": client_oid, "side": side, "symbol": symbol,
                            "type": "limit" if price is not None else "market",
                            "leverage": leverage, "size": size}
    if price is not None:
        body["price"] = price
    body.update(extra)
    return body


def private_events(market: Market) -> list[PrivateEvent]:
    return [e for e in market.drain_events() if isinstance(e, PrivateEvent)]


def book_levels(market: Market, symbol: str, side: str) -> list[tuple[str, int, int]]:
    """(price, market-maker size, account size) of every level on one side, best first."""
    book, fmt = market.book(symbol), market.fmt(symbol)
    return [(fmt.to_str(t), book.mm_at(side, t), book.size_at(side, t) - book.mm_at(side, t))
            for t in book.prices(side)]
