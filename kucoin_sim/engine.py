"""The account's trading state and mechanics: orders against the book, fills, positions, wallet.

`Engine` holds one account (balances, positions, orders, fills, waiting stop orders) and knows how
to book a fill, rest or cancel an order and what the account owes in margin. Request parsing and
REST shapes live in trading.py; liquidation and funding in risk.py; stop orders in stops.py.

Matching model (documented departures from a real venue):
- an incoming order takes only market-maker liquidity (`Level.mm`), best price first, respecting
  its limit; the account never trades with its own resting orders;
- a resting order is filled whole, as maker at its own limit price, on the first tick whose new
  market-maker best bid/ask crosses it (`fill_crossed`, called from TickHooks.before_quote).
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import Any

from .account import MarginSummary, available_push, order_margins, wallet_push
from .amounts import contract_value, pnl, price_places
from .contracts import ContractSpec
from .events import PrivateEvent, Side
from .matching import crossed_by_quote, opposite
from .orders import Fill, Order, order_push
from .positions import CROSS, ISOLATED, Position, apply_fill, closable, position_payload, risk_tier

log = logging.getLogger(__name__)

DEFAULT_BALANCES: Mapping[str, float] = {"USDT": 100_000.0, "XBT": 1.0}
DEFAULT_CROSS_LEVERAGE = 5  # KuCoin's classic docs example value; the real default is unverified
ORDER_ID_BASE = 240_000_000_000_000_001  # 18-digit numeric ids like KuCoin's
POSITION_ID_BASE = 500_000_000_000_000_001
COUNTERPARTY_ID_BASE = 900_000_000_000_000_001  # market-maker / liquidation sides of our fills


# The fields of a mark-price position update (classic docs: "Position Change Events Caused by
# Changes in Mark Prices").
MARK_FIELDS = ("markPrice", "markValue", "realLeverage", "unrealisedPnl", "unrealisedRoePcnt", "unrealisedPnlPcnt",
               "delevPercentage", "currentTimestamp", "settleCurrency")

class Engine:
    """One account's orders, fills, positions and balances over a Market."""

    def __init__(self, market: Any, *, balances: Mapping[str, float] | None, user_id: str) -> None:
        self.market = market
        self.user_id = user_id
        self.wallet: dict[str, float] = dict(DEFAULT_BALANCES if balances is None else balances)
        self.positions: dict[str, Position] = {}
        self.margin_modes: dict[str, str] = {}
        self.cross_leverages: dict[str, int] = {}
        # every order ever placed, in creation order; a stop order is a StopOrder (stops.py) until
        # it triggers, then the Order it became takes its place (same id, same position)
        self.orders: dict[str, Any] = {}
        self._active: dict[str, Order] = {}  # the active ones (ticks look here, not at history)
        self.stops: dict[str, dict[str, Any]] = {}  # symbol -> id -> untriggered StopOrder
        self.hedge_mode = False  # positionMode 1; the simulator trades one-way only
        self.fills: list[Fill] = []
        self.funding_records: list[dict[str, Any]] = []
        self._ids = itertools.count(ORDER_ID_BASE)
        self._counterparty_ids = itertools.count(COUNTERPARTY_ID_BASE)
        self._wallet_versions = itertools.count(1)
        self._marks_pushed: dict[str, float] = {}  # symbol -> the mark of its last mark-price position push

    # -- lookups -------------------------------------------------------------------------------
    def next_id(self) -> str:
        return str(next(self._ids))

    def counterparty_id(self) -> str:
        """An id for the other side of a fill (market-maker order, liquidation trade)."""
        return str(next(self._counterparty_ids))

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = Position(symbol, str(POSITION_ID_BASE + len(self.positions)))
            self.positions[symbol] = pos
        return pos

    def margin_mode(self, symbol: str) -> str:
        return self.margin_modes.get(symbol, ISOLATED)

    def cross_leverage(self, symbol: str) -> int:
        return self.cross_leverages.get(symbol, DEFAULT_CROSS_LEVERAGE)

    def active_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self._active.values() if symbol is None or o.symbol == symbol]

    def waiting_stops(self, symbol: str | None = None) -> list[Any]:
        """Untriggered stop orders (of one symbol, or all), oldest first."""
        if symbol is not None:
            return list(self.stops.get(symbol, {}).values())
        every = [stop for by_id in self.stops.values() for stop in by_id.values()]
        return sorted(every, key=lambda stop: int(stop.order_id))  # ids grow with creation

    def client_oid_in_use(self, client_oid: str) -> bool:
        """True when an active order or an untriggered stop already has this clientOid."""
        return any(o.client_oid == client_oid for o in self._active.values()) or any(
            stop.client_oid == client_oid for by_id in self.stops.values() for stop in by_id.values())

    def has_orders_or_position(self, symbol: str | None = None) -> bool:
        """True when `symbol` (or any symbol) has a position, an active order or a waiting stop."""
        positions = self.positions.values() if symbol is None else [self.positions.get(symbol)]
        return (any(p is not None and p.qty for p in positions) or bool(self.active_orders(symbol))
                or bool(self.waiting_stops(symbol)))

    def add_order(self, order: Order) -> None:
        self.orders[order.order_id] = order
        self._active[order.order_id] = order

    def leverage_of(self, order: Order) -> float:
        if order.margin_mode == CROSS:
            return float(self.cross_leverage(order.symbol))
        return order.leverage

    def summary(self, currency: str) -> MarginSummary:
        """Add up wallet, margins and unrealised PnL of every symbol settled in `currency`."""
        totals = dict.fromkeys(("iso_pm", "cross_pm", "iso_om", "cross_om", "iso_u", "cross_u",
                                "cross_maint"), 0.0)
        for symbol, pos in self.positions.items():
            spec = self.market.spec(symbol)
            if spec.settle_currency != currency or not pos.qty:
                continue
            mark = self.market.mark_price(symbol)
            upnl = pnl(spec, pos.qty, pos.entry_price, mark)
            if self.margin_mode(symbol) == CROSS:
                value = contract_value(spec, pos.qty, mark)
                totals["cross_pm"] += value / self.cross_leverage(symbol)
                totals["cross_u"] += upnl
                totals["cross_maint"] += value * risk_tier(spec, value).maintain_margin
            else:
                totals["iso_pm"] += pos.margin
                totals["iso_u"] += upnl
        for symbol in dict.fromkeys(o.symbol for o in self.active_orders()):  # ordered: determinism
            spec = self.market.spec(symbol)
            if spec.settle_currency != currency:
                continue
            key = "cross_om" if self.margin_mode(symbol) == CROSS else "iso_om"
            totals[key] += sum(self.symbol_order_margins(symbol).values())
        return MarginSummary(
            currency, self.wallet.get(currency, 0.0), totals["iso_pm"], totals["cross_pm"],
            totals["iso_om"], totals["cross_om"], totals["iso_u"], totals["cross_u"],
            totals["cross_maint"])

    def symbol_order_margins(self, symbol: str) -> dict[str, float]:
        """Margin held by each active order of `symbol`."""
        orders = self.active_orders(symbol)
        leverages = {o.order_id: self.leverage_of(o) for o in orders}
        pos_qty = self.positions[symbol].qty if symbol in self.positions else 0
        return order_margins(self.market.spec(symbol), pos_qty, orders, leverages)

    def position_data(self, symbol: str, now_ms: int) -> dict[str, Any]:
        spec = self.market.spec(symbol)
        pos = self.position(symbol)
        mark = self.market.mark_price(symbol)
        cross = self.margin_mode(symbol) == CROSS
        pool = 0.0
        if cross and pos.qty:
            pool = self.summary(spec.settle_currency).cross_equity - pnl(spec, pos.qty, pos.entry_price, mark)
        return position_payload(pos, spec, mark=mark, now_ms=now_ms, cross=cross,
                                cross_leverage=self.cross_leverage(symbol), cross_pool=pool,
                                price_places=price_places(spec))

    # -- mechanics -----------------------------------------------------------------------------
    def book_fill(self, order: Order, *, ticks: int, lots: int, liquidity: str, trade_id: str,
                  now_ms: int) -> None:
        """Apply one execution of `order` to its position, the wallet and the fill history."""
        spec = self.market.spec(order.symbol)
        fmt = self.market.fmt(order.symbol)
        price = fmt.to_float(ticks)
        value = contract_value(spec, lots, price)
        rate = spec.taker_fee_rate if liquidity == "taker" else spec.maker_fee_rate
        fee = value * rate
        effect = apply_fill(self.position(order.symbol), spec, side=order.side, qty=lots,
                            price=price, leverage=self.leverage_of(order), fee=fee,
                            isolated=order.margin_mode == ISOLATED, now_ms=now_ms)
        currency = spec.settle_currency
        self.wallet[currency] = self.wallet.get(currency, 0.0) + effect.realised_gross - fee
        open_fee = fee * effect.open_qty / lots
        order.filled_size += lots
        order.filled_value += value
        order.updated_ms = now_ms
        self.fills.append(Fill(
            trade_id=trade_id, order_id=order.order_id, symbol=order.symbol, side=order.side,
            liquidity=liquidity, price=fmt.to_str(ticks), size=lots, value=value, fee_rate=rate,
            open_fee=open_fee, close_fee=fee - open_fee, fee_currency=currency,
            margin_mode=order.margin_mode, order_type=order.type, trade_type="trade", ts_ms=now_ms,
            stop=order.stop.direction if order.stop else ""))
        self.push_order(order, "match", now_ms, matchPrice=fmt.to_str(ticks), matchSize=str(lots),
                        tradeId=trade_id, liquidity=liquidity,
                        feeType="takerFee" if liquidity == "taker" else "makerFee", tradeType="trade")

    def take(self, order: Order, plan: list[tuple[int, int]], now_ms: int) -> int:
        """Execute `order` as taker against the planned market-maker levels; return lots filled."""
        book = self.market.book(order.symbol)
        filled = 0
        for ticks, lots in plan:
            taken = book.take_mm(opposite(order.side), ticks, lots, now_ms)
            if not taken:
                continue
            trade = self.market.record_trade(
                order.symbol, taker_side=order.side, price_ticks=ticks, size=taken,
                maker_order_id=self.counterparty_id(), taker_order_id=order.order_id, now_ms=now_ms)
            self.book_fill(order, ticks=ticks, lots=taken, liquidity="taker",
                           trade_id=trade.trade_id, now_ms=now_ms)
            filled += taken
        return filled

    def rest(self, order: Order, now_ms: int) -> None:
        """Put the remainder of a limit order in the book as the account's size."""
        self.market.book(order.symbol).add_user(order.side, order.price_ticks, order.remaining, now_ms)
        order.resting = True
        self.push_order(order, "open", now_ms)

    def cancel(self, order: Order, now_ms: int, *, lots: int | None = None) -> None:
        """Cancel `lots` of an active order (default all that remains); done when nothing is left."""
        lots = order.remaining if lots is None else lots
        if order.resting and lots:
            self.market.book(order.symbol).remove_user(order.side, order.price_ticks, lots, now_ms)
        old_size = order.remaining
        order.canceled_size += lots
        order.updated_ms = now_ms
        if order.remaining:
            self.push_order(order, "update", now_ms, oldSize=str(old_size))
        else:
            self.finish(order, now_ms)

    def finish(self, order: Order, now_ms: int) -> None:
        """Close an order whose size is all filled or canceled and push its final change."""
        if order.resting:
            order.resting = False  # its book size was removed by the fill or cancel
        order.active = False
        self._active.pop(order.order_id, None)
        order.end_ms = order.updated_ms = now_ms
        self.push_order(order, "canceled" if order.canceled_size else "filled", now_ms)

    def trim_reduce_only(self, symbol: str, now_ms: int) -> None:
        """Cancel the part of active reduce-only orders the position can no longer absorb.

        KuCoin: "If the reduce-only order size exceeds the position size, the extra size will
        be canceled" (docs-new Add Order, reduceOnly).
        """
        pos_qty = self.position(symbol).qty
        left: dict[Side, int] = {"buy": closable(pos_qty, "buy"), "sell": closable(pos_qty, "sell")}
        for order in self.active_orders(symbol):
            if not (order.reduce_only or order.close_order):
                continue
            keep = min(order.remaining, left[order.side])
            left[order.side] -= keep
            if keep < order.remaining:
                self.cancel(order, now_ms, lots=order.remaining - keep)

    def fill_crossed(self, symbol: str, bid_ticks: int, ask_ticks: int, now_ms: int) -> bool:
        """Fill, as maker, every resting order the new best bid/ask crosses; True if any filled."""
        filled = False
        for order in self.active_orders(symbol):
            if not (order.resting and crossed_by_quote(order.side, order.price_ticks, bid_ticks, ask_ticks)):
                continue
            self.trim_reduce_only(symbol, now_ms)
            if not order.active:
                continue
            lots = order.remaining
            self.market.book(symbol).remove_user(order.side, order.price_ticks, lots, now_ms)
            trade = self.market.record_trade(
                symbol, taker_side=opposite(order.side), price_ticks=order.price_ticks, size=lots,
                maker_order_id=order.order_id, taker_order_id=self.counterparty_id(), now_ms=now_ms)
            self.book_fill(order, ticks=order.price_ticks, lots=lots, liquidity="maker",
                           trade_id=trade.trade_id, now_ms=now_ms)
            self.finish(order, now_ms)
            filled = True
        if filled:
            self.trim_reduce_only(symbol, now_ms)
            self.after_position_change(symbol, now_ms)
        return filled

    # -- pushes --------------------------------------------------------------------------------
    def push_order(self, order: Order, change: str, now_ms: int, **extra: Any) -> None:
        data = order_push(order, self.market.fmt(order.symbol), change, now_ms, **extra)
        self.market.emit(PrivateEvent("order", order.symbol, "orderChange", data))

    def after_position_change(self, symbol: str, now_ms: int, reason: str = "positionChange") -> None:
        data = self.position_data(symbol, now_ms)
        data["changeReason"] = reason
        self.market.emit(PrivateEvent("position", symbol, "position.change", data))
        self.push_wallet(self.market.spec(symbol).settle_currency, now_ms)

    def push_position_mark(self, symbol: str, now_ms: int) -> None:
        """A mark-price position update (only the mark fields, no symbol: the per-symbol topic
        names it), when an open position's mark moved. KuCoin documents these updates without a
        frequency; here one follows each 1 s mark update."""
        pos = self.positions.get(symbol)
        if pos is None or not pos.qty:
            return
        mark = self.market.mark_price(symbol)
        if self._marks_pushed.get(symbol) == mark:
            return
        self._marks_pushed[symbol] = mark
        data = self.position_data(symbol, now_ms)
        self.market.emit(PrivateEvent("position", symbol, "position.change",
                                      {k: data[k] for k in MARK_FIELDS if k in data}))

    def push_wallet(self, currency: str, now_ms: int) -> None:
        s = self.summary(currency)
        self.market.emit(PrivateEvent("wallet", None, "walletBalance.change",
                                      wallet_push(s, version=next(self._wallet_versions), now_ms=now_ms)))
        self.market.emit(PrivateEvent("wallet", None, "availableBalance.change",
                                      available_push(s, now_ms=now_ms)))

    def spec(self, symbol: str) -> ContractSpec:
        return self.market.spec(symbol)
