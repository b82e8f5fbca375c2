"""Trading: the simulator's private REST surface (orders, fills, positions, account, settings).

Each REST method takes `params` (query string, JSON body and path parameters merged, raw wire
values) and `now_ms`, and returns the `data` of KuCoin's envelope (protocol notes §7.2); refusals
raise SimError with KuCoin's code. Business rejections (balance, clientOid, leverage, position
state) use HTTP 200 with the error body, KuCoin's usual practice for futures order errors (the
status is unverified, notes §3.3; ccxt reads only the body code). Unknown orders on lookup are
`errors.order_not_found()` (404, 100001 "error.getOrder.orderNotExist"); canceling an unknown or
finished order answers 100004 "Order is in not cancelable state" (classic futures error table:
"order doesn't exist or cannot be canceled"; ccxt maps it to BadRequest).

Trading is the market's TickHooks: resting orders fill in `before_quote`; stop triggers, then
liquidation and funding run in `after_tick`. Private pushes go to `market.emit` as PrivateEvent
(see engine.py). Stop orders (stops.py) are found by the order endpoints too: by id and by
clientOid ("including a stop order", docs-new), canceled by id or clientOid like any order; the
general order list and cancel-all leave untriggered stops out ("excluding stop orders").
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .account import overview_payload
from .amounts import contract_value
from .engine import Engine
from .errors import SimError, bad_param, order_not_found
from .orders import BUSINESS_HTTP, fill_payload, order_payload, parse_leverage, parse_order_request
from .placement import execute, leverage_too_high, prepare
from .positions import CROSS, ISOLATED
from .queries import int_param, page, recent, select_fills, select_orders, select_stops
from .risk import RiskKeeper
from .stops import StopDesk, StopOrder, parse_bracket, stop_payload

log = logging.getLogger(__name__)

MSG_NOT_CANCELABLE = "Order is in not cancelable state"  # 100004
MSG_MODE_BLOCKED = "exist.order.or.position"  # 50002, as KuCoin's batchChangeMarginMode reports it
FUNDING_DEFAULT_COUNT = 10  # funding-history maxCount default (docs-new)
ONE_WAY, HEDGE = 0, 1  # positionMode
ACCOUNT_MODES = ("CLASSIC", "UNIFIED")  # GET /api/ua/v1/account/mode selfAccountMode
ST_ORDER_IGNORED = ("stop", "stopPrice")  # not fields of POST /api/v1/st-orders


class Trading:
    """One simulated account trading on `market` (implements the market's TickHooks)."""

    def __init__(self, market: Any, *, balances: Mapping[str, float] | None = None,
                 user_id: str = "sim-user-1") -> None:
        self.market = market
        self.user_id = user_id
        self.engine = Engine(market, balances=balances, user_id=user_id)
        self.stops = StopDesk(self.engine)
        self.risk = RiskKeeper(self.engine, self.stops)
        self.account_mode = "CLASSIC"  # a test may set UNIFIED; the classic endpoints still answer
        market.hooks = self

    # -- TickHooks -----------------------------------------------------------------------------
    def before_quote(self, symbol: str, bid_ticks: int, ask_ticks: int, now_ms: int) -> None:
        self.engine.fill_crossed(symbol, bid_ticks, ask_ticks, now_ms)

    def after_tick(self, symbol: str, now_ms: int) -> None:
        self.stops.after_tick(symbol, now_ms)  # first: a stop-loss fires before a liquidation
        self.risk.after_tick(symbol, now_ms)
        self.engine.push_position_mark(symbol, now_ms)

    # -- orders --------------------------------------------------------------------------------
    def place_order(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        req = parse_order_request(params, self._spec(params.get("symbol")),
                                  self.market.fmt(params["symbol"]))
        if req.stop is not None:
            return {"orderId": self.stops.place(req, now_ms).order_id, "clientOid": req.client_oid}
        order = execute(self.engine, prepare(self.engine, req), now_ms)
        return {"orderId": order.order_id, "clientOid": order.client_oid}

    def place_st_order(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """An entry order with a take-profit and/or stop-loss (POST /api/v1/st-orders, stops.py)."""
        spec = self._spec(params.get("symbol"))
        fmt = self.market.fmt(spec.symbol)
        body = {k: v for k, v in params.items() if k not in ST_ORDER_IGNORED}
        req = parse_order_request(body, spec, fmt)
        bracket = parse_bracket(params, spec, fmt)
        order = execute(self.engine, prepare(self.engine, req), now_ms)
        if bracket is not None:
            self.stops.attach(order, bracket, now_ms)
        return {"orderId": order.order_id, "clientOid": order.client_oid}

    def place_order_test(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Validate like place_order and change nothing (POST /api/v1/orders/test)."""
        req = parse_order_request(params, self._spec(params.get("symbol")),
                                  self.market.fmt(params["symbol"]))
        if req.stop is not None:
            self.stops.check(req)
        else:
            prepare(self.engine, req)
        return {"orderId": self.engine.counterparty_id(), "clientOid": req.client_oid}

    def cancel_order(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        order = self.engine.orders.get(str(params.get("orderId") or ""))
        if order is None or not order.active:
            raise SimError(BUSINESS_HTTP, "100004", MSG_NOT_CANCELABLE)
        if isinstance(order, StopOrder):
            self.stops.cancel([order], now_ms)
        else:
            self._cancel([order], now_ms)
        return {"cancelledOrderIds": [order.order_id]}

    def cancel_order_by_client_oid(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        client_oid = params.get("clientOid") or ""
        symbol = self._spec(params.get("symbol")).symbol
        order = next((o for o in self.engine.active_orders(symbol) if o.client_oid == client_oid), None)
        stop = next((s for s in self.engine.waiting_stops(symbol) if s.client_oid == client_oid), None)
        if not client_oid or (order is None and stop is None):
            raise SimError(BUSINESS_HTTP, "100004", MSG_NOT_CANCELABLE)
        if order is not None:
            self._cancel([order], now_ms)
        else:
            self.stops.cancel([stop], now_ms)
        return {"clientOid": client_oid}

    def cancel_all_orders(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        symbol = params.get("symbol") or None
        if symbol is not None:
            self._spec(symbol)
        orders = self.engine.active_orders(symbol)
        self._cancel(orders, now_ms)
        return {"cancelledOrderIds": [o.order_id for o in orders]}

    def get_order(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        order = self.engine.orders.get(str(params.get("orderId") or ""))
        if order is None:
            raise order_not_found()
        return self._order_data(order)

    def get_order_by_client_oid(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """The active order with this clientOid, else the newest finished one."""
        client_oid = params.get("clientOid") or ""
        matches = [o for o in self.engine.orders.values() if client_oid and o.client_oid == client_oid]
        if not matches:
            raise order_not_found()
        active = [o for o in matches if o.active]
        return self._order_data(active[-1] if active else matches[-1])

    def list_orders(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        orders = [o for o in self.engine.orders.values() if not (isinstance(o, StopOrder) and o.active)]
        return page(select_orders(orders, params), params, self._order_data)

    def recent_done_orders(self, params: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
        done = [o for o in self.engine.orders.values() if not o.active]
        chosen = recent(done, ts_of=lambda o: o.end_ms, symbol=params.get("symbol"), now_ms=now_ms)
        return [self._order_data(o) for o in chosen]

    def list_stop_orders(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Untriggered stops only, newest first, filtered and paged like GET /api/v1/orders."""
        return page(select_stops(self.engine.waiting_stops(), params), params, self._order_data)

    def cancel_stop_orders(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Cancel the untriggered stops of `symbol` (of every symbol when it is absent)."""
        symbol = params.get("symbol") or None
        if symbol is not None:
            self._spec(symbol)
        stops = self.engine.waiting_stops(symbol)
        self.stops.cancel(stops, now_ms)
        return {"cancelledOrderIds": [s.order_id for s in stops]}

    def fills(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        return page(select_fills(self.engine.fills, params), params, fill_payload)

    def recent_fills(self, params: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
        chosen = recent(self.engine.fills, ts_of=lambda f: f.ts_ms, symbol=params.get("symbol"),
                        now_ms=now_ms)
        return [fill_payload(f) for f in chosen]

    # -- account and positions -----------------------------------------------------------------
    def account_overview(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        return overview_payload(self.engine.summary(params.get("currency") or "XBT"))

    def position(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """The position of one symbol; a flat one still answers, with currentQty 0, isOpen false."""
        return self.engine.position_data(self._spec(params.get("symbol")).symbol, now_ms)

    def positions(self, params: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
        """Open positions only, optionally of one settle currency."""
        currency = params.get("currency") or None
        return [
            self.engine.position_data(symbol, now_ms)
            for symbol, pos in self.engine.positions.items()
            if pos.qty and (currency is None or self.market.spec(symbol).settle_currency == currency)
        ]

    def max_open_size(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Lots that could be opened at `price` and `leverage` with the available balance."""
        spec = self._spec(params.get("symbol"))
        if params.get("price") in (None, "") or params.get("leverage") in (None, ""):
            raise bad_param("price and leverage are required")
        try:
            price = float(params["price"])
        except (TypeError, ValueError):
            raise bad_param("price must be a number") from None
        if price <= 0:
            raise bad_param("price must be positive")
        leverage = parse_leverage(params["leverage"])
        per_lot = contract_value(spec, 1, price) * (1 / leverage + spec.taker_fee_rate)
        available = self.engine.summary(spec.settle_currency).available
        lots = min(int(available / per_lot), spec.max_order_qty)
        lots -= lots % spec.lot_size
        return {"symbol": spec.symbol, "maxBuyOpenSize": lots, "maxSellOpenSize": lots}

    def funding_history(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Funding fees charged to this account's positions (HasMore window, notes §3.2)."""
        symbol = self._spec(params.get("symbol")).symbol
        start, end = int_param(params, "startAt", None), int_param(params, "endAt", None)
        offset = int_param(params, "offset", None)
        count = int_param(params, "maxCount", FUNDING_DEFAULT_COUNT)
        items = [r for r in self.engine.funding_records if r["symbol"] == symbol
                 and (start is None or r["timePoint"] >= start) and (end is None or r["timePoint"] <= end)]
        if str(params.get("reverse", "true")).lower() != "false":
            items.reverse()  # newest first, the default
        if offset is not None:
            forward = str(params.get("forward", "true")).lower() != "false"
            items = [r for r in items if (r["id"] > offset if forward else r["id"] < offset)]
        return {"dataList": items[:count], "hasMore": len(items) > count}

    # -- settings ------------------------------------------------------------------------------
    def get_cross_leverage(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        symbol = self._spec(params.get("symbol")).symbol
        return {"symbol": symbol, "leverage": str(self.engine.cross_leverage(symbol))}

    def change_cross_leverage(self, params: dict[str, Any], now_ms: int) -> bool:
        """Set a symbol's cross leverage; refused (300003) if open cross margin would not fit."""
        spec = self._spec(params.get("symbol"))
        leverage = parse_leverage(params.get("leverage"))
        if not leverage.is_integer():
            raise bad_param("leverage must be an integer")
        if leverage > spec.max_leverage:
            raise leverage_too_high(spec.max_leverage)
        engine = self.engine
        previous = engine.cross_leverage(spec.symbol)
        engine.cross_leverages[spec.symbol] = int(leverage)
        s = engine.summary(spec.settle_currency)
        if s.wallet - s.position_margin - s.order_margin + s.cross_upnl < 0:
            engine.cross_leverages[spec.symbol] = previous
            raise SimError(BUSINESS_HTTP, "300003", "Insufficient balance to change the leverage.")
        pos = engine.positions.get(spec.symbol)
        if pos is not None and pos.qty and engine.margin_mode(spec.symbol) == CROSS:
            engine.after_position_change(spec.symbol, now_ms, reason="marginChange")
        return True

    def get_margin_mode(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        symbol = self._spec(params.get("symbol")).symbol
        return {"symbol": symbol, "marginMode": self.engine.margin_mode(symbol)}

    def change_margin_mode(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Switch ISOLATED/CROSS; refused while the symbol has a position or open orders."""
        symbol = self._spec(params.get("symbol")).symbol
        mode = str(params.get("marginMode") or "").upper()
        if mode not in (ISOLATED, CROSS):
            raise bad_param("marginMode must be ISOLATED or CROSS")
        engine = self.engine
        if mode != engine.margin_mode(symbol):
            if engine.has_orders_or_position(symbol):
                raise SimError(BUSINESS_HTTP, "50002", MSG_MODE_BLOCKED)
            engine.margin_modes[symbol] = mode
        return {"symbol": symbol, "marginMode": mode}

    def get_position_mode(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        return {"positionMode": HEDGE if self.engine.hedge_mode else ONE_WAY}

    def switch_position_mode(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Switch one-way ("0") / hedge ("1"); refused while anything is open (as margin modes).

        In hedge mode the simulator refuses every order (orders.check_position_mode).
        """
        mode = str(params.get("positionMode", ""))
        if mode not in ("0", "1"):
            raise bad_param("positionMode must be 0 or 1")
        hedge = mode == "1"
        if hedge != self.engine.hedge_mode:
            if self.engine.has_orders_or_position():
                raise SimError(BUSINESS_HTTP, "50002", MSG_MODE_BLOCKED)
            self.engine.hedge_mode = hedge
        return {"positionMode": HEDGE if hedge else ONE_WAY}

    def get_account_mode(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        return {"selfAccountMode": self.account_mode}

    def set_account_mode(self, mode: str) -> None:
        """Test hook: CLASSIC or UNIFIED (what GET /api/ua/v1/account/mode reports)."""
        if mode not in ACCOUNT_MODES:
            raise ValueError(f"account mode must be one of {ACCOUNT_MODES}")
        self.account_mode = mode

    # -- state for the server and tests ------------------------------------------------------
    def all_orders(self) -> list[dict[str, Any]]:
        """Every order the account ever placed (KuCoin order objects), oldest first."""
        return [self._order_data(o) for o in self.engine.orders.values()]

    def all_stop_orders(self) -> list[dict[str, Any]]:
        """Every untriggered stop order (KuCoin order objects), oldest first."""
        return [self._order_data(s) for s in self.engine.waiting_stops()]

    # -- helpers -------------------------------------------------------------------------------
    def _spec(self, symbol: Any) -> Any:
        if symbol in (None, ""):
            raise bad_param("symbol is required")
        return self.market.spec(str(symbol))

    def _order_data(self, order: Any) -> dict[str, Any]:
        to_wire = stop_payload if isinstance(order, StopOrder) else order_payload
        return to_wire(order, self.market.spec(order.symbol), self.market.fmt(order.symbol))

    def _cancel(self, orders: list[Any], now_ms: int) -> None:
        for order in orders:
            log.info("order %s canceled: %s clientOid=%s", order.order_id, order.symbol, order.client_oid)
            self.engine.cancel(order, now_ms)
        for symbol in dict.fromkeys(o.symbol for o in orders):
            self.market.flush(symbol, now_ms)
        for currency in dict.fromkeys(o.settle_currency for o in orders):
            self.engine.push_wallet(currency, now_ms)
