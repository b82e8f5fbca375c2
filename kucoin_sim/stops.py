"""Stop orders: they wait here, off the book and holding no margin, until the price they watch
crosses their stopPrice; then they become normal orders with the same id.

KuCoin's documented behaviour (protocol notes §17; docs-new "Add Order", "Get Stop Order List",
"Cancel All Stop orders"), as modelled:
- `stop` down triggers when the watched price (stopPriceType TP: last trade, MP: mark, IP: index)
  is at or below stopPrice, `up` when at or above; a stop whose condition already holds when it
  is placed is accepted and triggers at once (what ccxt#14956 ran into);
- nothing is frozen while a stop waits; when it triggers, the order is placed like any other
  (`placement.prepare`): one that cannot be placed then (balance, nothing to close, no liquidity)
  is canceled, and a reduce-only stop with nothing to reduce is canceled at once, as any
  reduce-only order is;
- at most 50 untriggered stops per contract (300004); a symbol's stops are canceled when its
  position is liquidated;
- pushes: /contractMarket/advancedOrders, subject stopOrder, type open | triggered | cancel; a
  trigger that could not place its order is pushed as triggered with triggerSuccess false and
  `error`, then cancel (the classic docs show both fields; the pair of pushes is unverified).
POST /api/v1/st-orders arms a Bracket on its entry order: after the entry's first fill, a
take-profit (triggerStopUpPrice) and/or stop-loss (triggerStopDownPrice) stop is created
(market, reduce-only, the entry's size, the opposite side; for a short the take-profit triggers
down and the stop-loss up), and when one of the two triggers the other is canceled. The docs
name the fields "Take profit price" / "Stop loss price"; the rest is unverified (README).
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

from .amounts import contract_value, leverage_str, num_str
from .book import PriceFormat
from .contracts import ContractSpec
from .engine import Engine
from .errors import SimError, bad_param
from .events import PrivateEvent, Side
from .matching import opposite
from .orders import (
    BUSINESS_HTTP, STOP_PRICE_TYPES, Order, OrderRequest, StopSpec, price_ticks, stop_fields,
)
from .placement import admit, execute, prepare, resolve_leverage

log = logging.getLogger(__name__)

MAX_STOPS_PER_SYMBOL = 50  # untriggered stops per contract; 300004 beyond
MSG_TOO_MANY_STOPS = "The number of stop orders exceeds the limit."  # 300004; wording unverified
PUSH_ID_BASE = 0x6720AB1EA52A9B0000000000  # stopOrder message ids: 24 hex digits like KuCoin's


@dataclass(slots=True)
class StopOrder:
    """A stop order that has not become an order: waiting, canceled, or failed at its trigger."""

    order_id: str
    req: OrderRequest  # the validated body; closeOrder / valueQty sizes resolve at the trigger
    side: Side | None  # the body's side; for a closeOrder sent without one, the closing side then
    leverage: float
    margin_mode: str
    settle_currency: str
    created_ms: int
    updated_ms: int
    end_ms: int | None = None
    active: bool = True  # waiting for its trigger
    trigger_error: str | None = None  # set when it triggered but its order could not be placed
    sibling_id: str | None = None  # the other stop of a TP/SL pair (one cancels the other)

    @property
    def symbol(self) -> str:
        return self.req.symbol

    @property
    def client_oid(self) -> str:
        return self.req.client_oid

    @property
    def type(self) -> str:
        return self.req.type


@dataclass(frozen=True, slots=True)
class Bracket:
    """The TP/SL of a POST /api/v1/st-orders entry, created once the entry fills."""

    take_profit_ticks: int | None  # triggerStopUpPrice
    stop_loss_ticks: int | None  # triggerStopDownPrice
    price_type: str


def parse_bracket(params: dict[str, Any], spec: ContractSpec, fmt: PriceFormat) -> Bracket | None:
    """The TP/SL fields of an st-orders body (None when neither price is given)."""
    legs = []
    for name in ("triggerStopUpPrice", "triggerStopDownPrice"):
        value = params.get(name)
        legs.append(None if value in (None, "") else price_ticks(value, spec, fmt, name))
    if legs == [None, None]:
        return None
    price_type = params.get("stopPriceType")
    if price_type not in STOP_PRICE_TYPES:
        raise bad_param("stopPriceType must be TP, MP or IP")
    return Bracket(legs[0], legs[1], price_type)


def stop_payload(stop: StopOrder, spec: ContractSpec, fmt: PriceFormat) -> dict[str, Any]:
    """KuCoin's order object for a stop that is not (yet) an order (GET /api/v1/stopOrders item).

    Same keys as an order object: isActive true / status "open" while it waits, cancelExist true
    once canceled; price "0" for a stop-market; size 0 when the body gave none (closeOrder).
    """
    req = stop.req
    size = req.size or 0
    value = contract_value(spec, size, fmt.to_float(req.price_ticks)) if req.price_ticks and size else 0.0
    return {
        "id": stop.order_id, "symbol": stop.symbol, "type": req.type, "side": stop.side or "",
        "price": _price_str(req, fmt), "size": size, "value": num_str(value), "dealValue": "0",
        "dealSize": 0, "stp": "", **stop_fields(req.stop, fmt, triggered=stop.trigger_error is not None),
        "timeInForce": req.time_in_force, "postOnly": req.post_only, "hidden": False,
        "iceberg": False, "leverage": leverage_str(stop.leverage), "forceHold": False,
        "closeOrder": req.close_order, "visibleSize": 0, "clientOid": req.client_oid or None,
        "remark": req.remark, "tags": "", "isActive": stop.active, "cancelExist": not stop.active,
        "createdAt": stop.created_ms, "updatedAt": stop.updated_ms, "endAt": stop.end_ms,
        "orderTime": stop.created_ms * 1_000_000, "settleCurrency": stop.settle_currency,
        "marginMode": stop.margin_mode, "avgDealPrice": "0", "filledSize": 0, "filledValue": "0",
        "status": "open" if stop.active else "done", "reduceOnly": req.reduce_only,
    }


def stop_push(stop: StopOrder, fmt: PriceFormat, change: str, now_ms: int, **extra: Any) -> dict[str, Any]:
    """The data of a stopOrder push (docs-new advancedOrders: size an integer, ts ns, createdAt ms)."""
    req = stop.req
    assert req.stop is not None
    data: dict[str, Any] = {
        "createdAt": stop.created_ms, "marginMode": stop.margin_mode, "orderId": stop.order_id,
        "orderPrice": _price_str(req, fmt), "orderType": "stop", "side": stop.side or "",
        "size": req.size or 0, "stop": req.stop.direction,
        "stopPrice": fmt.to_str(req.stop.price_ticks), "stopPriceType": req.stop.price_type,
        "symbol": stop.symbol, "ts": now_ms * 1_000_000, "type": change,
    }
    data.update(extra)
    return data


def _price_str(req: OrderRequest, fmt: PriceFormat) -> str:
    return "0" if req.price_ticks is None else fmt.to_str(req.price_ticks)


class StopDesk:
    """Places, cancels and triggers one account's stop orders (called from TickHooks.after_tick)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._brackets: dict[str, dict[str, Bracket]] = {}  # symbol -> entry id -> armed TP/SL
        self._push_ids = itertools.count(PUSH_ID_BASE)

    # -- placing -------------------------------------------------------------------------------
    def check(self, req: OrderRequest) -> tuple[str, float]:
        """Checks a stop passes when placed; return its margin mode and leverage."""
        engine = self._engine
        mode = admit(engine, req)
        leverage = resolve_leverage(engine, req, mode)
        if len(engine.stops.get(req.symbol, {})) >= MAX_STOPS_PER_SYMBOL:
            raise SimError(BUSINESS_HTTP, "300004", MSG_TOO_MANY_STOPS)
        return mode, leverage

    def place(self, req: OrderRequest, now_ms: int) -> StopOrder:
        """Accept a stop order; it triggers at once when its condition already holds."""
        mode, leverage = self.check(req)
        stop = self._open(req, mode, leverage, now_ms)
        self._trigger_if_due(stop, now_ms)
        return stop

    def attach(self, entry: Order, bracket: Bracket, now_ms: int) -> None:
        """Arm the TP/SL of an st-orders entry (created at once if the entry already filled)."""
        self._brackets.setdefault(entry.symbol, {})[entry.order_id] = bracket
        self._arm(entry.symbol, now_ms)

    # -- canceling -----------------------------------------------------------------------------
    def cancel(self, stops: list[StopOrder], now_ms: int) -> None:
        for stop in stops:
            self._retire(stop, now_ms)
            log.info("stop %s canceled: %s clientOid=%s", stop.order_id, stop.symbol, stop.client_oid)
            self._push(stop, "cancel", now_ms)

    def cancel_symbol(self, symbol: str, now_ms: int) -> None:
        """Cancel every waiting stop (and armed TP/SL) of `symbol`: its position was liquidated."""
        self._brackets.pop(symbol, None)
        self.cancel(self._engine.waiting_stops(symbol), now_ms)

    # -- triggering ----------------------------------------------------------------------------
    def after_tick(self, symbol: str, now_ms: int) -> None:
        if symbol in self._brackets:
            self._arm(symbol, now_ms)
        waiting = self._engine.stops.get(symbol)
        if waiting:
            for stop in list(waiting.values()):
                self._trigger_if_due(stop, now_ms)

    def _trigger_if_due(self, stop: StopOrder, now_ms: int) -> None:
        if stop.active and self._is_due(stop):
            self._trigger(stop, now_ms)

    def _is_due(self, stop: StopOrder) -> bool:
        market = self._engine.market
        spec = stop.req.stop
        assert spec is not None
        watched = {"TP": market.last_price, "MP": market.mark_price, "IP": market.index_price}[
            spec.price_type](stop.symbol)
        level = market.fmt(stop.symbol).to_float(spec.price_ticks)
        return watched <= level if spec.direction == "down" else watched >= level

    def _trigger(self, stop: StopOrder, now_ms: int) -> None:
        engine = self._engine
        self._retire(stop, now_ms)
        try:
            ticket = prepare(engine, stop.req)
        except SimError as exc:
            stop.trigger_error = exc.msg
            log.info("stop %s triggered, order refused (%s %s): canceled", stop.order_id, exc.code, exc.msg)
            self._push(stop, "triggered", now_ms, triggerSuccess=False, error=exc.msg)
            self._push(stop, "cancel", now_ms)
            return
        log.info("stop %s triggered: %s clientOid=%s", stop.order_id, stop.symbol, stop.client_oid)
        self._push(stop, "triggered", now_ms, triggerSuccess=True)
        sibling = engine.stops.get(stop.symbol, {}).get(stop.sibling_id or "")
        if sibling is not None:
            self.cancel([sibling], now_ms)
        execute(engine, ticket, now_ms, order_id=stop.order_id, created_ms=stop.created_ms,
                stop=stop.req.stop)

    # -- helpers -------------------------------------------------------------------------------
    def _open(self, req: OrderRequest, mode: str, leverage: float, now_ms: int) -> StopOrder:
        engine = self._engine
        side = req.side or self._closing_side(req.symbol)
        stop = StopOrder(engine.next_id(), req, side, leverage, mode,
                         engine.spec(req.symbol).settle_currency, now_ms, now_ms)
        engine.orders[stop.order_id] = stop
        engine.stops.setdefault(req.symbol, {})[stop.order_id] = stop
        assert req.stop is not None
        log.info("stop %s placed: %s %s %s %s at %s clientOid=%s", stop.order_id, req.symbol, side,
                 req.stop.direction, req.stop.price_type, req.stop.price_ticks, req.client_oid)
        self._push(stop, "open", now_ms)
        return stop

    def _closing_side(self, symbol: str) -> Side | None:
        pos = self._engine.positions.get(symbol)
        if pos is None or not pos.qty:
            return None
        return "sell" if pos.qty > 0 else "buy"

    def _retire(self, stop: StopOrder, now_ms: int) -> None:
        waiting = self._engine.stops.get(stop.symbol, {})
        waiting.pop(stop.order_id, None)
        if not waiting:
            self._engine.stops.pop(stop.symbol, None)
        stop.active = False
        stop.updated_ms = stop.end_ms = now_ms

    def _arm(self, symbol: str, now_ms: int) -> None:
        armed = self._brackets[symbol]
        for entry_id, bracket in list(armed.items()):
            entry = self._engine.orders[entry_id]
            if entry.filled_size or not entry.active:
                del armed[entry_id]  # filled: create the TP/SL; done without a fill: drop them
                if entry.filled_size:
                    self._open_bracket(entry, bracket, now_ms)
        if not armed:
            self._brackets.pop(symbol, None)

    def _open_bracket(self, entry: Order, bracket: Bracket, now_ms: int) -> None:
        long = entry.side == "buy"
        legs = ((bracket.take_profit_ticks, "up" if long else "down"),
                (bracket.stop_loss_ticks, "down" if long else "up"))
        stops = []
        for ticks, direction in legs:
            if ticks is None:
                continue
            req = OrderRequest(
                client_oid="", symbol=entry.symbol, side=opposite(entry.side), type="market",
                size=entry.size, value_qty=None, price_ticks=None, leverage=entry.leverage,
                margin_mode=None, reduce_only=True, close_order=False, post_only=False,
                time_in_force="GTC", remark=None, stop=StopSpec(direction, ticks, bracket.price_type))
            stops.append(self._open(req, entry.margin_mode, entry.leverage, now_ms))
        if len(stops) == 2:
            stops[0].sibling_id, stops[1].sibling_id = stops[1].order_id, stops[0].order_id
        for stop in stops:
            self._trigger_if_due(stop, now_ms)

    def _push(self, stop: StopOrder, change: str, now_ms: int, **extra: Any) -> None:
        data = stop_push(stop, self._engine.market.fmt(stop.symbol), change, now_ms, **extra)
        self._engine.market.emit(PrivateEvent("stop", stop.symbol, "stopOrder", data,
                                              msg_id=format(next(self._push_ids), "024x")))
