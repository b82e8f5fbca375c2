"""Orders and fills: validation of `POST /api/v1/orders` bodies, order state, and their wire shapes.

Validation follows KuCoin's documented body (protocol notes §7.2 create_order, docs-new "Add
Order"). Codes and messages, with the evidence for each:
- 400100 "Order size below the minimum requirement." / "Order size increment invalid." (messages
  ccxt maps exactly to InvalidOrder); 400100 "Price increment invalid." for an off-tick price
  (KuCoin's message for prices off the increment; the futures wording is unverified);
- 300011 "Order price cannot be higher than {maxPrice}" (classic futures error table);
- 330005 margin mode of the order differs from the symbol's (ccxt's exact message);
- 330011 a hedge-mode `positionSide` sent to a one-way account, 330012 a one-way order sent to a
  hedge-mode account (ccxt's exact message); see `check_position_mode`;
- 100001 "Unavailable to enable both \"postOnly\" and \"hidden\"" (ccxt's comment on 100001).
Stop orders carry `stop` down|up, `stopPrice` and `stopPriceType` TP|MP|IP (all three required
together, as the docs say); they are kept by stops.py until they trigger.
Unknown body fields are ignored, as KuCoin does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .amounts import average_price, fee_rate_str, leverage_str, num_str, price_places
from .book import PriceFormat
from .contracts import ContractSpec
from .errors import SimError, bad_param
from .events import Side

CLIENT_OID_MAX = 40
CLIENT_OID_RE = re.compile(r"^[A-Za-z0-9_-]+$")
REMARK_MAX = 100
TIME_IN_FORCE = ("GTC", "IOC")
ORDER_TYPES = ("limit", "market")
STOP_DIRECTIONS = ("down", "up")  # down: price falls to stopPrice or below; up: rises to it or above
STOP_PRICE_TYPES = ("TP", "MP", "IP")  # last trade, mark, index price
MARGIN_MODES = ("ISOLATED", "CROSS")
BUSINESS_HTTP = 200  # KuCoin answers order rejections with HTTP 200 + error body (notes §3.3: [U])

MSG_SIZE_MIN = "Order size below the minimum requirement."
MSG_SIZE_STEP = "Order size increment invalid."
MSG_SIZE_MAX = "Order size above the maximum requirement."
MSG_PRICE_STEP = "Price increment invalid."
MSG_MARGIN_MODE = "The order's margin mode does not match the selected one. Please switch and try again."
MSG_HEDGE = ("Your order is in Hedge Mode, while your account is set to One-Way Mode. "
             "Update your settings so they match and try again.")
MSG_ONE_WAY = ("Your order is in One-Way Mode, while your account is set to Hedge Mode. "
               "Update your settings so they match and try again.")  # 330012, as ccxt quotes it
MSG_HEDGE_TRADING = "Hedge-mode orders are not supported by the simulator"  # a departure (README)


@dataclass(frozen=True, slots=True)
class StopSpec:
    """The trigger of a stop order: direction, price (ticks) and which price it watches."""

    direction: str  # "down" | "up"
    price_ticks: int
    price_type: str  # "TP" | "MP" | "IP"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated order body; size is None until resolved for closeOrder / valueQty orders."""

    client_oid: str
    symbol: str
    side: Side | None
    type: str
    size: int | None
    value_qty: Decimal | None
    price_ticks: int | None
    leverage: float | None
    margin_mode: str | None
    reduce_only: bool
    close_order: bool
    post_only: bool
    time_in_force: str
    remark: str | None
    stop: StopSpec | None = None
    position_side: str | None = None


@dataclass(slots=True)
class Order:
    """One order and its fill progress (mutable state owned by Trading)."""

    order_id: str
    client_oid: str
    symbol: str
    side: Side
    type: str
    price_ticks: int | None
    size: int
    leverage: float
    margin_mode: str
    reduce_only: bool
    close_order: bool
    post_only: bool
    time_in_force: str
    remark: str | None
    settle_currency: str
    value: float  # order value in settle currency (for market orders: of the planned fills)
    created_ms: int
    updated_ms: int
    end_ms: int | None = None
    filled_size: int = 0
    filled_value: float = 0.0
    canceled_size: int = 0
    active: bool = True
    resting: bool = False  # its remaining size sits in the book as Level.user
    stop: StopSpec | None = None  # set on the order a stop became when it triggered

    @property
    def remaining(self) -> int:
        return self.size - self.filled_size - self.canceled_size

    @property
    def order_time_ns(self) -> int:
        return self.created_ms * 1_000_000


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of an account order (GET /api/v1/fills item)."""

    trade_id: str
    order_id: str
    symbol: str
    side: Side
    liquidity: str  # "taker" | "maker"
    price: str
    size: int
    value: float
    fee_rate: float
    open_fee: float
    close_fee: float
    fee_currency: str
    margin_mode: str
    order_type: str
    trade_type: str  # "trade" | "liquid" | "adl" | "settlement"
    ts_ms: int
    stop: str = ""  # the stop direction of a triggered stop order's fills

    @property
    def fee(self) -> float:
        return self.open_fee + self.close_fee


# -- parsing -----------------------------------------------------------------------------------
def parse_order_request(params: dict[str, Any], spec: ContractSpec, fmt: PriceFormat) -> OrderRequest:
    """Validate a create-order body against `spec`; raise SimError with KuCoin's code."""
    client_oid = _client_oid(params.get("clientOid"))
    close_order = parse_bool(params, "closeOrder")
    # ccxt's close_position sends type market; a closeOrder without a type closes at market too
    order_type = params.get("type") or ("market" if close_order else "limit")
    if order_type not in ORDER_TYPES:
        raise bad_param("type must be limit or market")
    side = params.get("side")
    if side not in ("buy", "sell") and not (close_order and side in (None, "")):
        raise bad_param("side must be buy or sell")
    post_only = parse_bool(params, "postOnly")
    if post_only and (parse_bool(params, "hidden") or parse_bool(params, "iceberg")):
        raise SimError(BUSINESS_HTTP, "100001", 'Unavailable to enable both "postOnly" and "hidden"')
    tif = params.get("timeInForce") or "GTC"
    if tif not in TIME_IN_FORCE:
        raise bad_param("timeInForce must be GTC or IOC")
    remark = params.get("remark")
    if remark is not None and len(str(remark)) > REMARK_MAX:
        raise bad_param("remark is too long")
    size, value_qty = _size(params, spec, close_order)
    return OrderRequest(
        client_oid=client_oid, symbol=spec.symbol, side=side or None, type=order_type, size=size,
        value_qty=value_qty,
        price_ticks=_limit_price(params.get("price"), spec, fmt) if order_type == "limit" else None,
        leverage=_leverage(params.get("leverage"), required=not close_order),
        margin_mode=_margin_mode(params.get("marginMode")), reduce_only=parse_bool(params, "reduceOnly"),
        close_order=close_order, post_only=post_only and tif != "IOC" and order_type == "limit",
        time_in_force=tif,
        remark=None if remark is None else str(remark),
        stop=_stop(params, spec, fmt), position_side=params.get("positionSide") or None,
    )


def check_position_mode(hedge_mode: bool, position_side: str | None) -> None:
    """Refuse an order whose positionSide does not fit the account's position mode.

    One-way accounts refuse LONG/SHORT with 330011 and hedge-mode accounts refuse one-way orders
    with 330012 (KuCoin's codes); hedge-mode LONG/SHORT orders are refused with 400100 because
    the simulator only trades one-way (a departure, kucoin_sim/README.md).
    """
    hedge_side = position_side not in (None, "", "BOTH")
    if not hedge_mode and hedge_side:
        raise SimError(BUSINESS_HTTP, "330011", MSG_HEDGE)
    if hedge_mode and not hedge_side:
        raise SimError(BUSINESS_HTTP, "330012", MSG_ONE_WAY)
    if hedge_mode:
        raise bad_param(MSG_HEDGE_TRADING)


def parse_bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad_param(f"{name} must be a boolean")


def parse_leverage(value: Any) -> float:
    """Leverage as sent: a JSON number or a numeric string ("10"); must be >= 1."""
    if isinstance(value, bool):
        raise bad_param("leverage must be a number")
    try:
        leverage = float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        raise bad_param("leverage must be a number") from None
    if not leverage >= 1:
        raise bad_param("leverage must be at least 1")
    return leverage


def size_from_value(spec: ContractSpec, value_qty: Decimal, price: float) -> int:
    """Lots bought by `valueQty` (quote value) at `price`, rounded down to the lot size."""
    lots = int(float(value_qty) / (abs(spec.multiplier) * price))
    return lots - lots % spec.lot_size


def check_size(size: int, spec: ContractSpec) -> int:
    if size < spec.lot_size or size <= 0:
        raise bad_param(MSG_SIZE_MIN)
    if size % spec.lot_size:
        raise bad_param(MSG_SIZE_STEP)
    if size > spec.max_order_qty:
        raise bad_param(MSG_SIZE_MAX)
    return size


def _client_oid(value: Any) -> str:
    if value is None or value == "":
        raise bad_param("clientOid is required")
    if not isinstance(value, str) or len(value) > CLIENT_OID_MAX or not CLIENT_OID_RE.match(value):
        raise bad_param("clientOid is invalid: at most 40 characters of [A-Za-z0-9_-]")
    return value


def _size(params: dict[str, Any], spec: ContractSpec, close_order: bool) -> tuple[int | None, Decimal | None]:
    given = [name for name in ("size", "qty", "valueQty") if params.get(name) not in (None, "")]
    if close_order and not given:
        return None, None
    if len(given) != 1:
        raise bad_param("exactly one of size, qty and valueQty is required")
    name = given[0]
    if name == "size":
        return check_size(_integer(params["size"]), spec), None
    if spec.is_inverse:
        raise bad_param(f"{name} is not supported for coin-margined contracts; use size")
    amount = _decimal(params[name], name)
    if name == "valueQty":
        return None, amount
    lots = amount / Decimal(str(abs(spec.multiplier)))
    if lots != lots.to_integral_value():
        raise bad_param(MSG_SIZE_STEP)
    return check_size(int(lots), spec), None


def _integer(value: Any) -> int:
    # KuCoin's size is a JSON integer; an integral float (2.0) or digit string is accepted too.
    if isinstance(value, bool):
        raise bad_param(MSG_SIZE_MIN)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise bad_param(MSG_SIZE_STEP)


def _decimal(value: Any, name: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise bad_param(f"{name} must be a number") from None
    if not amount.is_finite() or amount <= 0:
        raise bad_param(f"{name} must be positive")
    return amount


def _stop(params: dict[str, Any], spec: ContractSpec, fmt: PriceFormat) -> StopSpec | None:
    direction = params.get("stop")
    if direction is None or direction == "":
        return None  # stopPriceType alone (without stop) is ignored
    if direction not in STOP_DIRECTIONS:
        raise bad_param("stop must be down or up")
    price_type = params.get("stopPriceType")
    if price_type not in STOP_PRICE_TYPES:
        raise bad_param("stopPriceType must be TP, MP or IP")
    if params.get("stopPrice") in (None, ""):
        raise bad_param("stopPrice is required for stop orders")
    return StopSpec(direction, price_ticks(params["stopPrice"], spec, fmt, "stopPrice"), price_type)


def _limit_price(value: Any, spec: ContractSpec, fmt: PriceFormat) -> int:
    if value is None or value == "":
        raise bad_param("price is required for limit orders")
    return price_ticks(value, spec, fmt, "price")


def price_ticks(value: Any, spec: ContractSpec, fmt: PriceFormat, name: str) -> int:
    """A price field on the contract's tick grid (400100 off-grid, 300011 above maxPrice)."""
    price = _decimal(value, name)
    if price > Decimal(str(spec.max_price)):
        raise SimError(BUSINESS_HTTP, "300011", f"Order price cannot be higher than {spec.max_price}")
    try:
        return fmt.to_ticks(price)
    except ValueError:
        raise bad_param(MSG_PRICE_STEP) from None


def _leverage(value: Any, *, required: bool) -> float | None:
    if value is None or value == "":
        if required:
            raise bad_param("leverage is required")
        return None
    return parse_leverage(value)


def _margin_mode(value: Any) -> str | None:
    if value is None or value == "":
        return None
    mode = str(value).upper()
    if mode not in MARGIN_MODES:
        raise bad_param("marginMode must be ISOLATED or CROSS")
    return mode


# -- wire shapes -------------------------------------------------------------------------------
def order_payload(order: Order, spec: ContractSpec, fmt: PriceFormat) -> dict[str, Any]:
    """Return KuCoin's order object (GET /api/v1/orders/{orderId}, protocol notes §7.2)."""
    avg = average_price(spec, order.filled_size, order.filled_value)
    filled_value = num_str(order.filled_value)
    return {
        "id": order.order_id, "symbol": order.symbol, "type": order.type, "side": order.side,
        "price": _price_str(order, fmt), "size": order.size, "value": num_str(order.value),
        "dealValue": filled_value, "dealSize": order.filled_size, "stp": "",
        **stop_fields(order.stop, fmt, triggered=order.stop is not None),
        "timeInForce": order.time_in_force, "postOnly": order.post_only, "hidden": False,
        "iceberg": False, "leverage": leverage_str(order.leverage), "forceHold": False,
        "closeOrder": order.close_order, "visibleSize": 0, "clientOid": order.client_oid or None,
        "remark": order.remark, "tags": "", "isActive": order.active,
        "cancelExist": order.canceled_size > 0, "createdAt": order.created_ms,
        "updatedAt": order.updated_ms, "endAt": order.end_ms, "orderTime": order.order_time_ns,
        "settleCurrency": order.settle_currency, "marginMode": order.margin_mode,
        "avgDealPrice": num_str(avg, price_places(spec)) if avg else "0",
        "filledSize": order.filled_size, "filledValue": filled_value,
        "status": "open" if order.active else "done", "reduceOnly": order.reduce_only,
    }


def stop_fields(stop: StopSpec | None, fmt: PriceFormat, *, triggered: bool) -> dict[str, Any]:
    """The stop fields of an order object: empty strings and null for a normal order."""
    if stop is None:
        return {"stop": "", "stopPriceType": "", "stopTriggered": False, "stopPrice": None}
    return {"stop": stop.direction, "stopPriceType": stop.price_type, "stopTriggered": triggered,
            "stopPrice": fmt.to_str(stop.price_ticks)}


def order_push(order: Order, fmt: PriceFormat, change: str, now_ms: int, **extra: Any) -> dict[str, Any]:
    """Return the data of an orderChange push (protocol notes §12); `change` is its `type`.

    Sizes are strings, orderTime and ts nanoseconds; match pushes add matchPrice, matchSize,
    tradeId, liquidity and feeType through `extra`.
    """
    if change in ("filled", "canceled"):
        status = "done"
    elif change == "match" and extra.get("liquidity") == "taker":
        status = "match"
    else:
        status = "open"
    data: dict[str, Any] = {
        "symbol": order.symbol, "orderType": order.type, "side": order.side,
        "canceledSize": str(order.canceled_size), "orderId": order.order_id,
        "positionSide": "BOTH", "marginMode": order.margin_mode, "type": change,
        "orderTime": order.order_time_ns, "size": str(order.size),
        "filledSize": str(order.filled_size), "price": _price_str(order, fmt),
        "remainSize": str(order.remaining if order.active else 0), "clientOid": order.client_oid or None,
        "status": status, "ts": now_ms * 1_000_000,
    }
    data.update(extra)
    return data


def fill_payload(fill: Fill) -> dict[str, Any]:
    """Return KuCoin's fill object (GET /api/v1/fills item, protocol notes §7.2 fetch_my_trades)."""
    return {
        "symbol": fill.symbol, "tradeId": fill.trade_id, "orderId": fill.order_id,
        "side": fill.side, "liquidity": fill.liquidity, "forceTaker": False, "price": fill.price,
        "size": fill.size, "value": num_str(fill.value), "openFeePay": num_str(fill.open_fee),
        "closeFeePay": num_str(fill.close_fee), "stop": fill.stop,
        "feeRate": fee_rate_str(fill.fee_rate),
        "fixFee": "0", "feeCurrency": fill.fee_currency, "marginMode": fill.margin_mode,
        "openFeeTaxPay": "0", "closeFeeTaxPay": "0", "fee": num_str(fill.fee),
        "settleCurrency": fill.fee_currency, "orderType": fill.order_type,
        "displayType": fill.order_type, "tradeType": fill.trade_type, "subTradeType": None,
        "tradeTime": fill.ts_ms * 1_000_000, "createdAt": fill.ts_ms,
    }


def _price_str(order: Order, fmt: PriceFormat) -> str:
    return "0" if order.price_ticks is None else fmt.to_str(order.price_ticks)
