"""Paper trading: simulated market orders against live quotes, with the live order manager's
method names and ccxt-unified return shapes, so the bot runs one code path in both modes.

    broker = PaperBroker(quote, {"BTC/USDT:USDT": (0.001, 1, 0.0006, 125)}, journal=journal)
    broker.restore()                                   # state saved by an earlier run, if any
    order = broker.create_market_order("BTC/USDT:USDT", "buy", 3, leverage=3, client_oid=oid)

Fills are immediate and complete at the touch (buy at the ask, sell at the bid, no depth), with
the taker fee of the contract. The account is one-way and isolated-margin, in USDT, linear only:

    margin of a position   contracts x multiplier x entry price / leverage
    free                   wallet - sum of margins      (unrealised PnL is not spendable)
    total (equity)         wallet + unrealised PnL at the mid price
    wallet                 deposit + realised PnL - fees

Exchange rules kept: a repeated clientOid is refused (300018; stricter than kucoin_sim, which
checks active orders only, so a market order's clientOid could be reused there); a reduce-only
order never exceeds the position (the excess is canceled; nothing to reduce: canceled at once);
leverage above the contract's maximum (300016) and an unaffordable opening (300003) are refused.
With a journal, every state change is committed before the order is returned, so a restart finds
the order by clientOid.

Method names, signatures and errors follow kucoin_orders.OrderManager (close_position raises
NoPosition when flat; get_order raises OrderNotFound); limit orders and cancels are not simulated.
"""
from __future__ import annotations

import copy
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from kucoin_futures.errors import (
    CODE_NO_POSITION,
    CODE_ORDER_NOT_FOUND,
    InsufficientFunds,
    InvalidArgument,
    InvalidOrder,
    NoPosition,
    OrderNotFound,
)
from kucoin_futures.protocol.wire import CLIENT_OID_RE

__all__ = ["PaperBroker", "PaperContract"]

log = logging.getLogger(__name__)

SETTLE = "USDT"
STATE_VERSION = 1
CODE_BALANCE = "300003"  # balance insufficient
CODE_LEVERAGE = "300016"  # leverage too high
CODE_CLIENT_OID = "300018"  # clientOid repeated
_MARGIN_SLACK = 1e-9  # relative float noise allowed in the margin check (risk.position_size's)


@dataclass(frozen=True, slots=True)
class PaperContract:
    """What the broker needs of a contract (KuCoin's multiplier, lotSize, takerFeeRate,
    maxLeverage)."""

    multiplier: float
    lot_size: int = 1
    taker_fee_rate: float = 0.0006
    max_leverage: int = 100


@dataclass(frozen=True, slots=True)
class _Holding:
    qty: int  # signed contracts: > 0 long, < 0 short
    entry_price: float
    leverage: int
    opened_ms: int


def _wall_ms() -> int:
    return int(time.time() * 1000)


class PaperBroker:
    """Simulated order manager for one USDT account; thread-safe."""

    def __init__(
        self,
        quote: Callable[[str], tuple[float, float]],
        contracts: Mapping[str, PaperContract | tuple[float, int, float, int]],
        *,
        balance_usdt: float = 10_000.0,
        journal: Any = None,  # a journal.Journal, or None for no persistence
        clock_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self._quote = quote
        self._contracts = {s: c if isinstance(c, PaperContract) else PaperContract(*c)
                           for s, c in contracts.items()}
        self._journal = journal
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._wallet = float(balance_usdt)
        self._holdings: dict[str, _Holding] = {}
        self._orders: dict[str, dict[str, Any]] = {}  # by order id, in placement order
        self._by_client_oid: dict[str, str] = {}
        self._leverage: dict[str, int] = {}  # set_leverage: the default for new positions
        self._seq = 0

    # -- orders ---------------------------------------------------------------------------------
    def create_market_order(self, symbol: str, side: str, amount: int, *,
                            leverage: int | None = None, reduce_only: bool = False,
                            client_oid: str | None = None,
                            margin_mode: str | None = None) -> dict[str, Any]:
        """Fill a market order at the touch now and return the ccxt order dict (status closed,
        or canceled for a reduce-only order with nothing to reduce).

        Raises:
            InvalidArgument: unknown symbol, bad side, an amount that is not a positive multiple
                of the lot size, or cross margin (refused before "sending", as ccxt does).
            InvalidOrder: repeated clientOid (300018), leverage too high (300016).
            InsufficientFunds: the opening part needs more margin and fee than is free (300003).
        """
        spec = self._contract(symbol)
        if side not in ("buy", "sell"):
            raise InvalidArgument(f"side must be 'buy' or 'sell', not {side!r}")
        if int(amount) != amount or amount <= 0 or amount % spec.lot_size:
            raise InvalidArgument(f"amount must be a positive multiple of {spec.lot_size} lots")
        if leverage is not None and leverage < 1:
            raise InvalidArgument(f"leverage must be >= 1, not {leverage}")
        if margin_mode not in (None, "isolated"):
            raise InvalidArgument(f"paper trading models isolated margin only, not {margin_mode!r}")
        bid, ask = self._touch(symbol)  # outside the lock: the quote is the caller's code
        with self._lock:
            now_ms = self._clock_ms()
            oid = client_oid or f"paper-{now_ms}-{self._seq + 1}"
            if not CLIENT_OID_RE.fullmatch(oid):
                raise InvalidArgument(f"clientOid must be 1-40 of [A-Za-z0-9_-]: {oid!r}")
            if oid in self._by_client_oid:
                raise InvalidOrder(CODE_CLIENT_OID, "clientOid parameter repeated")
            lev = leverage or self._leverage.get(symbol, 1)
            order = self._fill(symbol, spec, side, int(amount), ask if side == "buy" else bid,
                               leverage=lev, reduce_only=reduce_only, client_oid=oid,
                               now_ms=now_ms)
            self._seq += 1
            self._orders[order["id"]] = order
            self._by_client_oid[oid] = order["id"]
            # Committed under the lock so snapshots reach the journal in order; paper orders
            # are rare, so holding the lock over one SQLite commit costs nothing that matters.
            self._persist()
        log.info("paper order %s %s %s %d @ %s clientOid=%s: %s", order["id"], symbol, side,
                 amount, order["average"], oid, order["status"])
        return copy.deepcopy(order)

    def close_position(self, symbol: str, *,
                       client_oid: str | None = None) -> dict[str, Any]:
        """Close the whole position of `symbol` with a reduce-only market order; NoPosition when flat."""
        self._contract(symbol)
        with self._lock:
            holding = self._holdings.get(symbol)
        if holding is None:
            raise NoPosition(CODE_NO_POSITION, f"paper close_position {symbol}: no position, nothing sent")
        side = "sell" if holding.qty > 0 else "buy"
        return self.create_market_order(symbol, side, abs(holding.qty), reduce_only=True,
                                        client_oid=client_oid)

    def get_order(self, order_id: str | None = None, symbol: str | None = None, *,
                  client_oid: str | None = None) -> dict[str, Any]:
        """Return the order by exchange id or by clientOid (exactly one of them).

        Raises:
            OrderNotFound: there is no such order (KuCoin's 100001).
        """
        if (order_id is None) == (client_oid is None):
            raise InvalidArgument(f"order_id={order_id!r}, client_oid={client_oid!r}: "
                                  "give exactly one")
        if order_id is not None:
            with self._lock:
                found = self._orders.get(order_id)
        else:
            found = self.lookup_order(client_oid, symbol)  # type: ignore[arg-type]
        if found is None or (symbol is not None and found["symbol"] != symbol):
            raise OrderNotFound(CODE_ORDER_NOT_FOUND, "error.getOrder.orderNotExist",
                                http_status=404)
        return copy.deepcopy(found)

    def lookup_order(self, client_oid: str, symbol: str | None = None) -> dict[str, Any] | None:
        """Return the order with this clientOid, or None (journal.reconcile's lookup)."""
        with self._lock:
            order_id = self._by_client_oid.get(client_oid)
            order = self._orders.get(order_id) if order_id else None
        if order is None or (symbol is not None and order["symbol"] != symbol):
            return None
        return copy.deepcopy(order)

    def get_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Return [] : paper market orders fill or cancel at once, none stays open."""
        if symbol is not None:
            self._contract(symbol)
        return []

    # -- account --------------------------------------------------------------------------------
    def set_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        """Set the leverage of new positions in `symbol` when an order gives none."""
        spec = self._contract(symbol)
        if not 1 <= leverage <= spec.max_leverage:
            raise InvalidArgument(f"leverage must be 1..{spec.max_leverage}, not {leverage}")
        with self._lock:
            self._leverage[symbol] = int(leverage)
            self._persist()
        return {"info": {"paper": True}, "symbol": symbol, "leverage": int(leverage)}

    def get_positions(self, symbols: list[str] | None = None, *, force_rest: bool = False) -> list[dict[str, Any]]:
        """Return ccxt-unified position dicts of the open positions, marked at the mid price
        (``force_rest``: as KuCoinClient's; the paper book is always exact)."""
        with self._lock:
            holdings = {s: h for s, h in self._holdings.items() if symbols is None or s in symbols}
        now_ms = self._clock_ms()
        return [self._position_dict(s, h, now_ms) for s, h in sorted(holdings.items())]

    def get_balance(self, currency: str = SETTLE) -> dict[str, Any]:
        """Return the ccxt balance: {"USDT": {"free", "used", "total"}, "free": {...}, ...}."""
        if currency != SETTLE:
            raise InvalidArgument(f"the paper account holds {SETTLE} only, not {currency!r}")
        with self._lock:
            wallet, holdings = self._wallet, dict(self._holdings)
        margin = sum(self._margin(s, h) for s, h in holdings.items())
        unrealised = sum(self._unrealised(s, h, sum(self._touch(s)) / 2)
                         for s, h in holdings.items())
        total = wallet + unrealised
        free = wallet - margin
        account = {"free": free, "used": total - free, "total": total}
        now_ms = self._clock_ms()
        return {"info": {"paper": True, "wallet": wallet, "unrealisedPnl": unrealised},
                "timestamp": now_ms, "datetime": _iso(now_ms), SETTLE: account,
                "free": {SETTLE: free}, "used": {SETTLE: total - free}, "total": {SETTLE: total}}

    # -- persistence ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Return the broker's state as JSON-serialisable data."""
        with self._lock:
            return copy.deepcopy(self._state_locked())

    def restore(self) -> bool:
        """Load the state the journal holds; return False when there is none (fresh account)."""
        if self._journal is None:
            return False
        state = self._journal.load_paper_state()
        if state is None:
            return False
        if state.get("version") != STATE_VERSION:
            raise InvalidArgument(f"paper state version {state.get('version')} is not "
                                  f"{STATE_VERSION}")
        with self._lock:
            self._wallet = float(state["wallet"])
            self._seq = int(state["seq"])
            self._holdings = {s: _Holding(**h) for s, h in state["holdings"].items()}
            self._orders = {o["id"]: o for o in state["orders"]}
            self._by_client_oid = {o["clientOrderId"]: o["id"] for o in state["orders"]}
            self._leverage = dict(state["leverage"])
        log.info("paper state restored: wallet %.2f %s, %d positions, %d orders", self._wallet,
                 SETTLE, len(self._holdings), len(self._orders))
        return True

    # -- internals ------------------------------------------------------------------------------
    def _fill(self, symbol: str, spec: PaperContract, side: str, amount: int, price: float, *,
              leverage: int, reduce_only: bool, client_oid: str, now_ms: int
              ) -> dict[str, Any]:
        assert self._lock.locked()
        holding = self._holdings.get(symbol)
        held = holding.qty if holding else 0
        signed = 1 if side == "buy" else -1
        against = held * signed < 0
        qty = min(amount, abs(held)) if reduce_only and against else (0 if reduce_only else amount)
        closing = min(qty, abs(held)) if against else 0
        opening = qty - closing
        # adding to or reducing a position keeps its leverage; a new (or flipped) one takes the
        # order's (KuCoin ignores the leverage of a closing order)
        lev = holding.leverage if holding and not (against and opening) else leverage
        if opening and lev > spec.max_leverage:
            raise InvalidOrder(CODE_LEVERAGE, f"leverage {lev} above the maximum "
                               f"{spec.max_leverage}")
        fee = qty * spec.multiplier * price * spec.taker_fee_rate
        if opening:
            needed = opening * spec.multiplier * price / lev + fee
            free = self._wallet - sum(self._margin(s, h) for s, h in self._holdings.items())
            if closing:  # the closing part releases its margin and realises its PnL first
                free += self._margin(symbol, holding) + self._unrealised(symbol, holding, price)
            if needed > free * (1 + _MARGIN_SLACK):
                raise InsufficientFunds(CODE_BALANCE, f"Balance insufficient: need {needed:.4f} "
                                        f"{SETTLE}, free {free:.4f}")
        realised = 0.0
        if closing:
            realised = closing * (price - holding.entry_price) * spec.multiplier * (-signed)
        self._wallet += realised - fee
        self._apply(symbol, holding, signed * closing, signed * opening, price, lev, now_ms)
        return _order_dict(self._next_order_id(), client_oid, symbol, side, amount, qty, price,
                           spec, fee=fee, realised=realised, lev=lev, reduce_only=reduce_only,
                           now_ms=now_ms)

    def _apply(self, symbol: str, holding: _Holding | None, closed: int, opened: int,
               price: float, lev: int, now_ms: int) -> None:
        held = (holding.qty if holding else 0) + closed
        if holding is None or held == 0:
            if opened:
                self._holdings[symbol] = _Holding(opened, price, lev, now_ms)
            else:
                self._holdings.pop(symbol, None)
        elif opened == 0:
            self._holdings[symbol] = replace(holding, qty=held)
        else:  # adding to a position: average entry price
            entry = (abs(held) * holding.entry_price + abs(opened) * price) \
                / (abs(held) + abs(opened))
            self._holdings[symbol] = replace(holding, qty=held + opened, entry_price=entry)

    def _next_order_id(self) -> str:
        return f"paper{len(self._orders) + 1:012d}"

    def _contract(self, symbol: str) -> PaperContract:
        try:
            return self._contracts[symbol]
        except KeyError:
            raise InvalidArgument(f"no paper contract for {symbol!r}") from None

    def _touch(self, symbol: str) -> tuple[float, float]:
        bid, ask = self._quote(symbol)
        if not (0 < bid <= ask):
            raise InvalidArgument(f"no usable quote for {symbol}: bid {bid}, ask {ask}")
        return float(bid), float(ask)

    def _margin(self, symbol: str, h: _Holding) -> float:
        return abs(h.qty) * self._contracts[symbol].multiplier * h.entry_price / h.leverage

    def _unrealised(self, symbol: str, h: _Holding, mark: float) -> float:
        return h.qty * (mark - h.entry_price) * self._contracts[symbol].multiplier

    def _position_dict(self, symbol: str, h: _Holding, now_ms: int) -> dict[str, Any]:
        mult = self._contracts[symbol].multiplier
        mark = sum(self._touch(symbol)) / 2
        margin = self._margin(symbol, h)
        upnl = self._unrealised(symbol, h, mark)
        return {"info": {"paper": True, "currentQty": h.qty}, "id": None, "symbol": symbol,
                "timestamp": now_ms, "datetime": _iso(now_ms),
                "side": "long" if h.qty > 0 else "short",
                "contracts": abs(h.qty), "contractSize": mult, "entryPrice": h.entry_price,
                "markPrice": mark, "notional": abs(h.qty) * mult * mark, "leverage": h.leverage,
                "unrealizedPnl": upnl, "realizedPnl": None, "initialMargin": margin,
                "initialMarginPercentage": 1 / h.leverage, "collateral": margin + upnl,
                "percentage": 100 * upnl / margin, "marginMode": "isolated", "hedged": False,
                "liquidationPrice": None, "maintenanceMargin": None, "marginRatio": None}

    def _state_locked(self) -> dict[str, Any]:
        assert self._lock.locked()
        return {"version": STATE_VERSION, "wallet": self._wallet, "seq": self._seq,
                "holdings": {s: asdict(h) for s, h in self._holdings.items()},
                "leverage": dict(self._leverage),
                "orders": list(self._orders.values())}

    def _persist(self) -> None:
        if self._journal is not None:
            self._journal.save_paper_state(self._state_locked())


def _order_dict(order_id: str, client_oid: str, symbol: str, side: str, amount: int, filled: int,
                price: float, spec: PaperContract, *, fee: float, realised: float, lev: int,
                reduce_only: bool, now_ms: int) -> dict[str, Any]:
    fee_info = {"cost": fee, "currency": SETTLE, "rate": spec.taker_fee_rate}
    average = price if filled else None
    return {
        "info": {"paper": True, "realisedPnl": realised, "leverage": lev},
        "id": order_id, "clientOrderId": client_oid, "timestamp": now_ms, "datetime": _iso(now_ms),
        "lastTradeTimestamp": now_ms if filled else None, "lastUpdateTimestamp": now_ms,
        "symbol": symbol, "type": "market", "timeInForce": "IOC", "postOnly": False,
        "reduceOnly": reduce_only, "side": side, "price": average, "average": average,
        "amount": amount, "filled": filled, "remaining": amount - filled,
        "cost": filled * spec.multiplier * price, "status": "closed" if filled else "canceled",
        "fee": fee_info, "fees": [dict(fee_info)], "trades": [], "triggerPrice": None,
        "stopPrice": None, "takeProfitPrice": None, "stopLossPrice": None,
    }


def _iso(ts_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"
