"""Events the simulated exchange emits, for the WebSocket layer to publish.

The core (market + trading) is pure and single-threaded: it produces these values and knows
nothing of sockets. The WebSocket layer maps each event to KuCoin's push format. Prices are
already formatted to the contract's tick size (strings, as KuCoin sends them); sizes are lots.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

Side = Literal["buy", "sell"]


@dataclass(frozen=True, slots=True)
class BookDelta:
    """One level-2 change: the new absolute size at a price (0 removes it); sequence is +1 per change."""

    symbol: str
    sequence: int
    price: str
    side: Side  # "buy" = bids, "sell" = asks
    size: int
    ts_ms: int


@dataclass(frozen=True, slots=True)
class BestQuote:
    """Best bid/ask changed (tickerV2)."""

    symbol: str
    sequence: int
    best_bid_price: str
    best_bid_size: int
    best_ask_price: str
    best_ask_size: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Trade:
    """A public match (execution topic); side is the taker's side."""

    symbol: str
    sequence: int
    trade_id: str
    side: Side
    size: int
    price: str
    maker_order_id: str
    taker_order_id: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class TickerUpdate:
    """Last trade plus best quotes (v1 ticker topic, pushed on matches)."""

    symbol: str
    sequence: int
    side: Side
    size: int
    price: str
    trade_id: str
    best_bid_price: str
    best_bid_size: int
    best_ask_price: str
    best_ask_size: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class CandleUpdate:
    """The in-progress (or just-updated) candle of one granularity; prices as strings."""

    symbol: str
    granularity_min: int
    start_s: int
    open: str
    close: str
    high: str
    low: str
    volume: int  # lots traded in the period
    turnover: float  # quote value traded in the period
    time_ms: int


@dataclass(frozen=True, slots=True)
class MarkIndex:
    """Mark and index price (instrument topic, subject mark.index.price)."""

    symbol: str
    mark_price: float
    index_price: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class FundingRate:
    """Current funding rate (instrument topic, subject funding.rate)."""

    symbol: str
    funding_rate: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class PrivateEvent:
    """A private push, wire-ready: kind picks the topic family, subject and data are KuCoin's.

    kind: "order" (/contractMarket/tradeOrders, subject orderChange),
          "stop" (/contractMarket/advancedOrders, subject stopOrder),
          "position" (/contract/position:{symbol}, subject position.change / position.settlement),
          "wallet" (/contractAccount/wallet, subject walletBalance.change / availableBalance.change).
    symbol is None for account-wide events. msg_id is the message-level "id" where KuCoin's
    example carries one (stopOrder pushes).
    """

    kind: Literal["order", "stop", "position", "wallet"]
    symbol: str | None
    subject: str
    data: dict[str, Any]
    msg_id: str | None = None


Event = Union[BookDelta, BestQuote, Trade, TickerUpdate, CandleUpdate, MarkIndex, FundingRate, PrivateEvent]
