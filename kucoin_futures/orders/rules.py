"""Pure order rules: argument checks against a loaded ccxt market, clientOids, and the rule that
resolves an order send whose outcome is unknown. No I/O, no clock reads: time comes in as
arguments (monotonic seconds).

Bad input raises ``InvalidArgument`` naming the parameter and its value, before anything is
sent. Prices are checked as ``Decimal`` (the tick grid), sizes are whole contracts (lots).

Resolving an ambiguous send (timeout, connection reset, 5xx, unreadable answer): the order may
or may not be on the exchange, and may still be on its way. KuCoin refuses a request whose
KC-API-TIMESTAMP is more than 5 s away from its clock (400002, protocol notes section 4), so a
request signed at ``sent_at`` cannot be accepted after ``sent_at + 5 s``; ``in_flight_s`` adds a
grace second for the exchange to act on a request it accepted at the last moment. Hence:

- a lookup by clientOid that finds the order: placed;
- a lookup that does not find it, sent at or after ``sent_at + in_flight_s``: not placed;
- one that does not find it earlier: look again (the request may still be travelling or queued
  at the exchange), at growing intervals, the last one exactly at the bound;
- a lookup that fails (transport, 429): look again after a backoff (reads may retry); after
  ``max_lookup_failures`` failures or ``deadline_s`` in all: unknown (``OrderOutcomeUnknown``).
"""
from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from kucoin_futures.errors import InvalidArgument
from kucoin_futures.protocol.types import Side
from kucoin_futures.protocol.wire import CLIENT_OID_RE

__all__ = [
    "KUCOIN_TIMESTAMP_WINDOW_S", "STOP_PRICE_TYPES", "OrderRequest", "OrderType", "ResolvePolicy", "StopSpec",
    "Verdict", "Wait", "build_order_request", "build_stop_request", "check_client_oid", "check_currency",
    "check_flag", "check_leverage", "check_margin_mode", "check_order_id", "format_client_oid", "opposite_side",
    "resolve_step", "stop_direction",
]

KUCOIN_TIMESTAMP_WINDOW_S = 5.0  # 400002 beyond this skew between KC-API-TIMESTAMP and the server
CLIENT_OID_PREFIX_RE = re.compile(r"[A-Za-z0-9_]{0,8}")
ORDER_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # goes into a URL path: nothing else allowed
MARGIN_MODES = frozenset({"isolated", "cross"})  # ccxt's names; KuCoin's ISOLATED / CROSS


class OrderType(enum.StrEnum):
    """The order types this client places."""

    MARKET = "market"
    LIMIT = "limit"


# A stop's trigger price, by our name: KuCoin's stopPriceType (TP trade, MP mark, IP index).
STOP_PRICE_TYPES = {"last": "TP", "mark": "MP", "index": "IP"}


@dataclass(frozen=True, slots=True)
class StopSpec:
    """What makes an order a stop: it triggers when ``price_type``'s price reaches ``stop_price``
    moving ``direction`` ("down": falls to it, "up": rises to it); ``close_order`` closes the
    whole position then (KuCoin closeOrder)."""

    direction: str  # KuCoin's stop: "down" | "up"
    stop_price: Decimal
    price_type: str  # "last" | "mark" | "index"
    close_order: bool

    def ccxt_params(self) -> dict[str, Any]:
        # ccxt derives ``stop`` from the side alone (ccxt#14956); ours, sent explicitly, wins:
        # ccxt merges the caller's params over its own request.
        params: dict[str, Any] = {"triggerPrice": str(self.stop_price), "stop": self.direction,
                                  "stopPriceType": STOP_PRICE_TYPES[self.price_type]}
        if self.close_order:
            params["closeOrder"] = True
        return params


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated order, ready for ccxt's ``create_order`` (or ``close_position``)."""

    symbol: str
    side: Side
    order_type: OrderType
    amount: int  # contracts (lots)
    price: Decimal | None  # on the tick grid; None for market orders
    leverage: int | None  # None: KuCoin's default for the order (ccxt sends 1)
    post_only: bool
    reduce_only: bool
    margin_mode: str | None  # "isolated" | "cross" | None (the position's current mode)
    client_oid: str
    close_position: bool = False  # KuCoin closeOrder: close the whole position at market
    stop: StopSpec | None = None  # a stop order: rests untriggered until its price is reached

    def ccxt_params(self) -> dict[str, Any]:
        """Return the ``params`` of ccxt's create_order (ccxt upper-cases marginMode)."""
        params: dict[str, Any] = {"clientOid": self.client_oid}
        if self.stop is not None:
            params.update(self.stop.ccxt_params())
        if self.leverage is not None:
            params["leverage"] = self.leverage
        if self.post_only:
            params["postOnly"] = True
        if self.reduce_only:
            params["reduceOnly"] = True
        if self.margin_mode is not None:
            params["marginMode"] = self.margin_mode
        return params


# -- Argument checks -------------------------------------------------------------------------------
def _number(name: str, value: Any) -> Decimal:
    # bool is an int subclass: True as an amount is a caller bug, not 1.
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise InvalidArgument(f"{name}={value!r}: must be a number, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"{name}={value!r}: must be finite")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise InvalidArgument(f"{name}={value!r}: not a number") from None
    if not number.is_finite():
        raise InvalidArgument(f"{name}={value!r}: must be finite")
    return number


def _market_decimal(value: Any) -> Decimal | None:
    # ccxt keeps market limits as floats (0.1); their repr is the decimal KuCoin sent.
    return None if value is None else Decimal(repr(float(value)))


def _on_grid(number: Decimal, step: Decimal) -> bool:
    try:
        return number % step == 0
    except InvalidOperation:  # more digits than the Decimal context holds: far off any grid
        return False


def check_flag(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (not 1, not "yes"), else ``InvalidArgument``."""
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name}={value!r}: must be True or False")
    return value


def check_side(side: Any) -> Side:
    """Return the side of ``"buy"`` / ``"sell"`` (or a ``Side``)."""
    try:
        return Side(side)
    except ValueError:
        raise InvalidArgument(f"side={side!r}: must be 'buy' or 'sell'") from None


def opposite_side(side: Side) -> Side:
    """Return the side that reduces a position opened with ``side``."""
    return Side.SELL if side is Side.BUY else Side.BUY


def check_amount(market: Mapping[str, Any], amount: Any) -> int:
    """Return ``amount`` as whole contracts within the market's lot size and order limits."""
    number = _number("amount", amount)
    if number != number.to_integral_value():
        raise InvalidArgument(f"amount={amount!r}: must be a whole number of contracts (lots)")
    if number <= 0:
        raise InvalidArgument(f"amount={amount!r}: must be positive")
    lot = _market_decimal(market["precision"].get("amount")) or Decimal(1)
    limits = market["limits"]["amount"]
    minimum, maximum = _market_decimal(limits.get("min")), _market_decimal(limits.get("max"))
    if maximum is not None and number > maximum:
        raise InvalidArgument(f"amount={amount!r}: above the maximum order size {maximum} "
                              f"of {market['symbol']}")
    if not _on_grid(number, lot) or (minimum is not None and number < minimum):
        raise InvalidArgument(f"amount={amount!r}: below or off the lot size {lot} (minimum {minimum}) "
                              f"of {market['symbol']}")
    return int(number)


def check_price(market: Mapping[str, Any], price: Any) -> Decimal:
    """Return ``price`` as a Decimal on the market's tick grid and within its price limits."""
    number = _number("price", price)
    if number <= 0:
        raise InvalidArgument(f"price={price!r}: must be positive")
    limits = market["limits"].get("price") or {}
    minimum, maximum = _market_decimal(limits.get("min")), _market_decimal(limits.get("max"))
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise InvalidArgument(f"price={price!r}: outside {minimum}..{maximum} for {market['symbol']}")
    tick = _market_decimal(market["precision"].get("price"))
    if tick is not None and not _on_grid(number, tick):
        raise InvalidArgument(f"price={price!r}: not a multiple of the tick size {tick} "
                              f"of {market['symbol']}")
    return number


def check_leverage(market: Mapping[str, Any], leverage: Any) -> int | None:
    """Return ``leverage`` as an int in 1..the contract's maximum (None stays None)."""
    if leverage is None:
        return None
    number = _number("leverage", leverage)
    if number != number.to_integral_value() or number < 1:
        raise InvalidArgument(f"leverage={leverage!r}: must be a whole number >= 1")
    maximum = _market_decimal((market["limits"].get("leverage") or {}).get("max"))
    if maximum is not None and number > maximum:
        raise InvalidArgument(f"leverage={leverage!r}: above the maximum {maximum} of {market['symbol']}")
    return int(number)


def check_margin_mode(margin_mode: Any) -> str | None:
    """Return "isolated", "cross" or None."""
    if margin_mode is None or (isinstance(margin_mode, str) and margin_mode in MARGIN_MODES):
        return margin_mode
    raise InvalidArgument(f"margin_mode={margin_mode!r}: must be 'isolated', 'cross' or None")


def check_currency(markets: Mapping[str, Mapping[str, Any]], currency: Any) -> str:
    """Return ``currency`` if it is the ccxt code of a settle currency of ``markets`` ("USDT", "BTC").

    A futures account holds only settle currencies; ccxt would also take a base currency ("SOL")
    and answer an empty balance, or turn ``True`` into its default.
    """
    settles = {market.get("settle") for market in markets.values()}
    if not isinstance(currency, str) or currency not in settles:
        raise InvalidArgument(f"currency={currency!r}: not a settle currency of these markets "
                              f"(one of {sorted(s for s in settles if isinstance(s, str))})")
    return currency


def check_client_oid(client_oid: Any) -> str:
    """Return ``client_oid`` if KuCoin accepts it (1-40 chars of letters, digits, _ and -)."""
    if not isinstance(client_oid, str) or CLIENT_OID_RE.fullmatch(client_oid) is None:
        raise InvalidArgument(f"client_oid={client_oid!r}: must be 1-40 characters of [A-Za-z0-9_-]")
    return client_oid


def check_order_id(order_id: Any) -> str:
    """Return ``order_id`` if it is a plausible KuCoin order id (it becomes part of a URL path)."""
    if not isinstance(order_id, str) or ORDER_ID_RE.fullmatch(order_id) is None:
        raise InvalidArgument(f"order_id={order_id!r}: must be a KuCoin order id string")
    return order_id


def format_client_oid(prefix: str, now_ms: int, nonce: str, seq: int) -> str:
    """Return a clientOid unique per (process nonce, sequence number): ``kc-1795594581476-a1b2c3d4-7``."""
    if CLIENT_OID_PREFIX_RE.fullmatch(prefix) is None:
        raise InvalidArgument(f"client_oid_prefix={prefix!r}: at most 8 characters of [A-Za-z0-9_]")
    return check_client_oid(f"{prefix}-{now_ms}-{nonce}-{seq}".lstrip("-"))


def stop_direction(stop_price: Decimal, current_price: Decimal, price_type: str) -> str:
    """KuCoin's ``stop`` for a stop at ``stop_price`` while ``price_type``'s price is ``current_price``.

    Below the price it triggers on the way down, above it on the way up, whatever the side: a
    sell below is a long's stop-loss, a sell above a long's take-profit. A stop at the current
    price is refused: which way it would trigger is not defined.
    """
    if stop_price < current_price:
        return "down"
    if stop_price > current_price:
        return "up"
    raise InvalidArgument(f"stop_price={stop_price}: equal to the current {price_type} price; a stop must "
                          "be below it (triggers on a fall) or above it (triggers on a rise)")


def build_stop_request(
    market: Mapping[str, Any],
    *,
    side: Any,
    amount: Any,
    stop_price: Any,
    price_type: Any,
    current_price: Callable[[], float],
    reduce_only: Any,
    close_order: Any,
    limit_price: Any,
    margin_mode: Any = None,
    expect_direction: Any = None,
    client_oid: str,
) -> OrderRequest:
    """Check a stop order against ``market``, then against the current price of its ``price_type``
    (``current_price()`` is asked only once every argument is valid)."""
    if expect_direction is not None and not (isinstance(expect_direction, str) and expect_direction in ("down", "up")):
        raise InvalidArgument(f"expect_direction={expect_direction!r}: None, 'down' or 'up'")
    if not isinstance(price_type, str) or price_type not in STOP_PRICE_TYPES:
        raise InvalidArgument(f"price_type={price_type!r}: one of {', '.join(map(repr, STOP_PRICE_TYPES))}")
    stop = check_price(market, stop_price)
    close = check_flag("close_order", close_order)
    order = build_order_request(
        market, side=side, order_type=OrderType.MARKET if limit_price is None else OrderType.LIMIT,
        amount=amount, price=limit_price, reduce_only=reduce_only, margin_mode=margin_mode, client_oid=client_oid)
    current = _number("current price", current_price())
    direction = stop_direction(stop, current, price_type)
    if expect_direction is not None and direction != expect_direction:
        raise InvalidArgument(f"stop_price={stop}: the {price_type} price {current} is already "
                              f"{'below' if direction == 'up' else 'above'} it, so this stop would trigger on a "
                              f"{'rise' if direction == 'up' else 'fall'}, not a {'fall' if direction == 'up' else 'rise'}")
    return replace(order, reduce_only=order.reduce_only or close,
                   stop=StopSpec(direction, stop, price_type, close))


def build_order_request(
    market: Mapping[str, Any],
    *,
    side: Any,
    order_type: OrderType,
    amount: Any,
    price: Any = None,
    leverage: Any = None,
    post_only: Any = False,
    reduce_only: Any = False,
    margin_mode: Any = None,
    client_oid: str,
) -> OrderRequest:
    """Check every argument of an order against ``market`` and return the request."""
    checked_price = check_price(market, price) if order_type is OrderType.LIMIT else None
    return OrderRequest(
        symbol=market["symbol"],
        side=check_side(side),
        order_type=order_type,
        amount=check_amount(market, amount),
        price=checked_price,
        leverage=check_leverage(market, leverage),
        post_only=check_flag("post_only", post_only),
        reduce_only=check_flag("reduce_only", reduce_only),
        margin_mode=check_margin_mode(margin_mode),
        client_oid=check_client_oid(client_oid),
    )


# -- Resolving an unknown outcome ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ResolvePolicy:
    """How long and how often to look an order up by clientOid after an ambiguous send.

    Args:
        in_flight_s: after ``sent_at + in_flight_s`` a request can no longer be acted on, so a
            lookup sent later that does not find the order proves it was not placed.
        first_wait_s / max_wait_s: the pause between lookups doubles from one to the other.
        max_lookup_failures: lookups that fail (transport, 429) before giving up.
        deadline_s: the most time spent resolving, from the first lookup.
    """

    in_flight_s: float = KUCOIN_TIMESTAMP_WINDOW_S + 1.0
    first_wait_s: float = 0.05
    max_wait_s: float = 1.0
    max_lookup_failures: int = 5
    deadline_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.first_wait_s <= self.max_wait_s:
            raise InvalidArgument(f"need 0 < first_wait_s <= max_wait_s, got {self.first_wait_s}, "
                                  f"{self.max_wait_s}")
        if not 0 <= self.in_flight_s < self.deadline_s:
            raise InvalidArgument(f"need 0 <= in_flight_s < deadline_s, got {self.in_flight_s}, "
                                  f"{self.deadline_s}")
        if isinstance(self.max_lookup_failures, bool) or not isinstance(self.max_lookup_failures, int) \
                or self.max_lookup_failures < 1:
            raise InvalidArgument(f"max_lookup_failures={self.max_lookup_failures!r}: must be an int >= 1")


class Verdict(enum.Enum):
    """The outcome of an ambiguous order send, once known (or given up on)."""

    PLACED = "placed"
    NOT_PLACED = "not placed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Wait:
    """Look up again after ``seconds``."""

    seconds: float


def resolve_step(
    policy: ResolvePolicy,
    *,
    sent_at: float,
    resolving_since: float,
    lookup_sent_at: float,
    found: bool | None,
    lookups: int,
    failures: int,
    now: float,
    retry_after_s: float | None = None,
) -> Verdict | Wait:
    """Decide what a lookup result means (see the module docstring).

    Args:
        sent_at: when the order request was handed to ccxt (it is signed right then).
        resolving_since: when the first lookup was sent.
        lookup_sent_at: when this lookup was sent.
        found: the order was found (True), not found (False), or the lookup failed (None).
        lookups: lookups made so far, this one included.
        failures: failed lookups so far, this one included.
        retry_after_s: the failed lookup was rate-limited with this reset.
    """
    if found:
        return Verdict.PLACED
    if found is False and lookup_sent_at >= sent_at + policy.in_flight_s:
        return Verdict.NOT_PLACED
    deadline = resolving_since + policy.deadline_s
    if failures >= policy.max_lookup_failures or now >= deadline:
        return Verdict.UNKNOWN
    pause = min(policy.max_wait_s, policy.first_wait_s * 2.0 ** max(0, lookups - 1))
    if found is False:
        pause = min(pause, max(0.0, sent_at + policy.in_flight_s - now))  # last look at the bound
    elif retry_after_s is not None:
        pause = max(pause, retry_after_s)
    return Wait(min(pause, deadline - now))
