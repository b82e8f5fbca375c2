"""Placing an order: resolve a validated request against the account, check risk, execute it.

`prepare` does every check that needs the account and the book and changes nothing (it also
serves `POST /api/v1/orders/test`); `execute` creates the order and runs it:

- taker part: market orders and marketable limit orders take market-maker liquidity now;
- post-only limit orders that would take are accepted and canceled at once (isActive false,
  cancelExist true) (KuCoin's docs say such an order "will be fully rejected");
- remainder: GTC limit orders rest in the book, IOC and market remainders are canceled;
- a market order that finds no liquidity at all is refused with 300008 (nothing is created);
- reduce-only and closeOrder orders never exceed the position: the extra size is canceled, as
  KuCoin documents for reduceOnly; with nothing to reduce the order is canceled at once.

A stop order passes `admit` when placed (nothing else: it holds no margin while it waits) and
`prepare` + `execute` when it triggers (stops.py); it keeps its id, so `execute` takes one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from .amounts import contract_value, num_str
from .engine import Engine
from .errors import SimError
from .events import Side
from .matching import opposite, plan_take, would_take
from .orders import (
    BUSINESS_HTTP, MSG_MARGIN_MODE, Order, OrderRequest, StopSpec, check_position_mode, check_size,
    size_from_value,
)
from .positions import CROSS, closable, risk_tier

log = logging.getLogger(__name__)

MSG_NO_POSITION = "No open positions to close."  # 300009, the wording ccxt quotes
MSG_NO_LIQUIDITY = "Unavailable to place the order, there's no contra order in the market."  # 300008
MSG_CLIENT_OID = "clientOid parameter repeated"  # 300018 (classic futures error table)


@dataclass(frozen=True, slots=True)
class Ticket:
    """A request resolved against the account and book, ready to execute."""

    req: OrderRequest
    side: Side
    size: int
    leverage: float
    margin_mode: str
    reducing: bool
    plan: tuple[tuple[int, int], ...]
    cancel_at_once: bool  # post-only that would take, or reduce-only with nothing to reduce
    value: float


def admit(engine: Engine, req: OrderRequest) -> str:
    """The checks every order passes when placed (stops too); return the symbol's margin mode."""
    mode = engine.margin_mode(req.symbol)
    if req.margin_mode and req.margin_mode != mode:
        raise SimError(BUSINESS_HTTP, "330005", MSG_MARGIN_MODE)
    check_position_mode(engine.hedge_mode, req.position_side)
    if req.client_oid and engine.client_oid_in_use(req.client_oid):
        raise SimError(BUSINESS_HTTP, "300018", MSG_CLIENT_OID)
    return mode


def prepare(engine: Engine, req: OrderRequest) -> Ticket:
    """Resolve and check `req`; raise SimError with KuCoin's code when it must be refused."""
    symbol = req.symbol
    spec = engine.spec(symbol)
    book = engine.market.book(symbol)
    mode = admit(engine, req)
    pos = engine.positions.get(symbol)
    pos_qty = pos.qty if pos is not None else 0
    side, size = _side_and_size(engine, req, pos_qty)
    leverage = resolve_leverage(engine, req, mode)
    reducing = req.reduce_only or req.close_order
    take_size = min(size, closable(pos_qty, side)) if reducing else size
    cancel_at_once = take_size == 0 or (
        req.post_only and would_take(book, side, req.price_ticks))
    plan = () if cancel_at_once else tuple(plan_take(book, side, take_size, req.price_ticks))
    if req.type == "market" and not plan and not cancel_at_once:
        raise SimError(BUSINESS_HTTP, "300008", MSG_NO_LIQUIDITY)
    fmt = engine.market.fmt(symbol)
    if req.type == "limit":
        value = contract_value(spec, size, fmt.to_float(req.price_ticks))
    else:
        value = sum(contract_value(spec, lots, fmt.to_float(t)) for t, lots in plan)
    ticket = Ticket(req, side, size, leverage, mode, reducing, plan, cancel_at_once, value)
    _check_margin(engine, ticket)  # first: an unaffordable order is InsufficientFunds
    if not reducing and not cancel_at_once:
        _check_risk_limit(engine, ticket, pos_qty)
    return ticket


def execute(engine: Engine, ticket: Ticket, now_ms: int, *, order_id: str | None = None,
            created_ms: int | None = None, stop: StopSpec | None = None) -> Order:
    """Create the order of a prepared ticket and run it against the book.

    A triggered stop passes its own id, creation time and trigger (`stop`).
    """
    req = ticket.req
    spec = engine.spec(req.symbol)
    order = Order(
        order_id=order_id or engine.next_id(), client_oid=req.client_oid, symbol=req.symbol,
        side=ticket.side, type=req.type, price_ticks=req.price_ticks, size=ticket.size,
        leverage=ticket.leverage, margin_mode=ticket.margin_mode, reduce_only=req.reduce_only,
        close_order=req.close_order, post_only=req.post_only, time_in_force=req.time_in_force,
        remark=req.remark, settle_currency=spec.settle_currency, value=ticket.value,
        created_ms=now_ms if created_ms is None else created_ms, updated_ms=now_ms, stop=stop)
    engine.add_order(order)
    log.info("order %s placed: %s %s %d %s clientOid=%s", order.order_id, req.symbol, ticket.side,
             ticket.size, req.type, req.client_oid)
    if ticket.cancel_at_once:
        engine.cancel(order, now_ms)
        engine.push_wallet(spec.settle_currency, now_ms)
        return order
    filled = engine.take(order, list(ticket.plan), now_ms)
    if ticket.reducing:
        excess = order.remaining - closable(engine.position(req.symbol).qty, ticket.side)
        if excess > 0:
            order.canceled_size += excess  # reduce-only: the extra size is canceled
    if order.remaining == 0:
        engine.finish(order, now_ms)
    elif req.type == "limit" and req.time_in_force == "GTC":
        engine.rest(order, now_ms)
    else:
        engine.cancel(order, now_ms)  # IOC and market remainders
    engine.market.flush(req.symbol, now_ms)
    if filled:
        engine.trim_reduce_only(req.symbol, now_ms)
        engine.after_position_change(req.symbol, now_ms)
    else:
        engine.push_wallet(spec.settle_currency, now_ms)
    return order


def _side_and_size(engine: Engine, req: OrderRequest, pos_qty: int) -> tuple[Side, int]:
    if req.close_order:
        if pos_qty == 0:
            raise SimError(BUSINESS_HTTP, "300009", MSG_NO_POSITION)
        return ("sell" if pos_qty > 0 else "buy"), abs(pos_qty)
    assert req.side is not None  # parse_order_request requires a side unless closeOrder
    if req.size is not None:
        return req.side, req.size
    # valueQty: converted at the limit price, or for market orders at the best opposite quote
    spec = engine.spec(req.symbol)
    fmt = engine.market.fmt(req.symbol)
    if req.price_ticks is not None:
        price = fmt.to_float(req.price_ticks)
    else:
        best = engine.market.book(req.symbol).best_mm(opposite(req.side))
        price = fmt.to_float(best) if best is not None else engine.market.mark_price(req.symbol)
    assert req.value_qty is not None
    return req.side, check_size(size_from_value(spec, req.value_qty, price), spec)


def resolve_leverage(engine: Engine, req: OrderRequest, mode: str) -> float:
    """The leverage an order uses (cross: the symbol's); 300016 above the contract's maximum."""
    spec = engine.spec(req.symbol)
    if mode == CROSS:
        return float(engine.cross_leverage(req.symbol))  # cross orders use the symbol's setting
    if req.leverage is None:  # closeOrder without leverage: it holds no margin anyway
        return 1.0
    if req.leverage > spec.max_leverage:
        raise leverage_too_high(spec.max_leverage)
    return req.leverage


def leverage_too_high(max_leverage: int) -> SimError:
    return SimError(BUSINESS_HTTP, "300016", f"The leverage cannot be greater than {max_leverage}.")


def _check_risk_limit(engine: Engine, ticket: Ticket, pos_qty: int) -> None:
    # Worst case: every lot of the order opens. The tier the resulting position value falls in
    # caps the leverage (KuCoin's risk-limit levels, GET /api/v1/contracts/risk-limit/{symbol}).
    spec = engine.spec(ticket.req.symbol)
    signed = ticket.size if ticket.side == "buy" else -ticket.size
    after = abs(pos_qty + signed)
    if after == 0:
        return
    value_after = ticket.value * after / ticket.size if ticket.value else 0.0
    if spec.risk_tiers and value_after > spec.risk_tiers[-1].max_risk_limit:
        raise SimError(BUSINESS_HTTP, "300005", f"{spec.symbol} risk limit exceeded")
    tier = risk_tier(spec, value_after)
    if ticket.leverage > tier.max_leverage:
        raise leverage_too_high(tier.max_leverage)


def _check_margin(engine: Engine, ticket: Ticket) -> None:
    """Refuse with 300003 when margin + fees of the order exceed the available balance."""
    symbol = ticket.req.symbol
    spec = engine.spec(symbol)
    fmt = engine.market.fmt(symbol)
    pos = engine.positions.get(symbol)
    pos_qty = pos.qty if pos is not None else 0
    close_left = closable(pos_qty, ticket.side)
    required = released = 0.0
    for ticks, lots in ticket.plan:
        value = contract_value(spec, lots, fmt.to_float(ticks))
        closing = min(lots, close_left)
        close_left -= closing
        required += value * spec.taker_fee_rate
        if not ticket.reducing:
            required += value * (lots - closing) / lots / ticket.leverage
        if closing and pos is not None and ticket.margin_mode != CROSS:
            released += pos.margin * closing / abs(pos_qty)
    rests = ticket.req.type == "limit" and ticket.req.time_in_force == "GTC"
    if rests and not ticket.reducing and not ticket.cancel_at_once:
        rest_lots = ticket.size - sum(lots for _, lots in ticket.plan)
        claimed = sum(o.remaining for o in engine.active_orders(symbol)
                      if o.side == ticket.side and not (o.reduce_only or o.close_order))
        opening = max(0, rest_lots - max(0, close_left - claimed))
        required += ticket.value * opening / ticket.size / ticket.leverage
    available = engine.summary(spec.settle_currency).available + released
    if required > available:
        raise SimError(BUSINESS_HTTP, "300003",
                       f"Insufficient balance. {num_str(required, 4)} is required to place the order.")
