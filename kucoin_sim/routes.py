"""The REST route table: every endpoint the simulator serves, its pool, weight and handler.

Weights and pools follow protocol notes §5.3. Handlers take (exchange, params, now_ms) and return
the `data` of KuCoin's envelope; params merges the query string, the JSON body and path params.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import bad_param

Handler = Callable[[Any, dict[str, Any], int], Any]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # aiohttp pattern, e.g. /api/v1/orders/{orderId}
    pool: str  # "public" | "futures" | "management"
    weight: int
    private: bool
    handler: Handler


def _req(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise bad_param(f"{name} is required")
    return value


def _int_or_none(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_param(f"{name} must be an integer") from None


def _klines(ex: Any, p: dict[str, Any], now: int) -> Any:
    granularity = _int_or_none(p, "granularity")
    if granularity is None:
        raise bad_param("granularity is required")
    return ex.market.klines(_req(p, "symbol"), granularity, _int_or_none(p, "from"), _int_or_none(p, "to"), now)


def _uta_position_tiers(ex: Any, p: dict[str, Any], now: int) -> list[dict[str, Any]]:
    # ccxt >= 4.5.45 fetch_leverage_tiers reads the unified-account endpoint (strings throughout)
    out = []
    for symbol in str(_req(p, "symbol")).split(","):
        for t in ex.market.risk_limit(symbol):
            out.append({"symbol": symbol, "tier": t["level"], "maxSize": str(t["maxRiskLimit"]),
                        "minSize": str(t["minRiskLimit"]), "maxLeverage": str(t["maxLeverage"]),
                        "initialMarginRate": f"{t['initialMargin']:.10f}",
                        "maintainMarginRate": f"{t['maintainMargin']:.10f}"})
    return out


def _tr(name: str) -> Handler:
    """A route served by the trading engine's method of the same name."""
    return lambda ex, p, now: getattr(ex.trading, name)(p, now)


PUBLIC: list[Route] = [
    Route("GET", "/api/v1/timestamp", "public", 2, False, lambda ex, p, now: now),
    Route("GET", "/api/v1/status", "public", 4, False, lambda ex, p, now: ex.status()),
    Route("GET", "/api/v1/contracts/active", "public", 3, False, lambda ex, p, now: ex.market.contracts_active(now)),
    Route("GET", "/api/v1/contracts/risk-limit/{symbol}", "public", 5, False,
          lambda ex, p, now: ex.market.risk_limit(p["symbol"])),
    Route("GET", "/api/v1/contracts/{symbol}", "public", 3, False,
          lambda ex, p, now: ex.market.contract_detail(p["symbol"], now)),
    Route("GET", "/api/v1/ticker", "public", 2, False, lambda ex, p, now: ex.market.ticker(_req(p, "symbol"), now)),
    Route("GET", "/api/v1/allTickers", "public", 5, False, lambda ex, p, now: ex.market.all_tickers(now)),
    Route("GET", "/api/v1/level2/snapshot", "public", 3, False,
          lambda ex, p, now: ex.market.level2_snapshot(_req(p, "symbol"), None, now)),
    Route("GET", "/api/v1/level2/depth20", "public", 5, False,
          lambda ex, p, now: ex.market.level2_snapshot(_req(p, "symbol"), 20, now)),
    Route("GET", "/api/v1/level2/depth100", "public", 5, False,
          lambda ex, p, now: ex.market.level2_snapshot(_req(p, "symbol"), 100, now)),
    Route("GET", "/api/v1/trade/history", "public", 5, False,
          lambda ex, p, now: ex.market.trade_history(_req(p, "symbol"))),
    Route("GET", "/api/v1/kline/query", "public", 3, False, _klines),
    Route("GET", "/api/v1/mark-price/{symbol}/current", "public", 3, False,
          lambda ex, p, now: ex.market.mark_price_current(p["symbol"], now)),
    Route("GET", "/api/v1/funding-rate/{symbol}/current", "public", 2, False,
          lambda ex, p, now: ex.market.funding_rate_current(p["symbol"], now)),
    Route("GET", "/api/v1/contract/funding-rates", "public", 5, False,
          lambda ex, p, now: ex.market.funding_rate_history(
              _req(p, "symbol"), _int_or_none(p, "from"), _int_or_none(p, "to"), now)),
    Route("GET", "/api/v1/trade-statistics", "public", 3, False, lambda ex, p, now: ex.market.trade_statistics(now)),
    Route("GET", "/api/v1/index/query", "public", 3, False, lambda ex, p, now: ex.market.index_query(p, now)),
    # Spot/UTA-host calls ccxt makes at load_markets (protocol notes §8.3): harmless empty answers.
    Route("GET", "/api/v3/currencies", "public", 3, False, lambda ex, p, now: []),
    Route("GET", "/api/ua/v1/market/position-tiers", "public", 20, False, _uta_position_tiers),
]

PRIVATE: list[Route] = [
    Route("GET", "/api/ua/v1/account/mode", "management", 2, True, _tr("get_account_mode")),
    Route("GET", "/api/v3/margin/symbols", "management", 3, True, lambda ex, p, now: {"items": []}),
    Route("GET", "/api/v1/isolated/symbols", "management", 3, True, lambda ex, p, now: []),
    Route("GET", "/api/v1/hf/accounts/opened", "management", 2, True, lambda ex, p, now: False),
    Route("POST", "/api/v1/orders/test", "futures", 2, True, _tr("place_order_test")),
    Route("POST", "/api/v1/orders", "futures", 2, True, _tr("place_order")),
    Route("POST", "/api/v1/st-orders", "futures", 2, True, _tr("place_st_order")),
    Route("DELETE", "/api/v1/orders/client-order/{clientOid}", "futures", 1, True,
          _tr("cancel_order_by_client_oid")),
    Route("GET", "/api/v1/orders/byClientOid", "futures", 5, True, _tr("get_order_by_client_oid")),
    Route("DELETE", "/api/v1/orders/{orderId}", "futures", 1, True, _tr("cancel_order")),
    Route("GET", "/api/v1/orders/{orderId}", "futures", 5, True, _tr("get_order")),
    Route("DELETE", "/api/v1/orders", "futures", 800, True, _tr("cancel_all_orders")),
    Route("DELETE", "/api/v3/orders", "futures", 10, True, _tr("cancel_all_orders")),
    Route("GET", "/api/v1/orders", "futures", 2, True, _tr("list_orders")),
    Route("GET", "/api/v1/recentDoneOrders", "futures", 5, True, _tr("recent_done_orders")),
    Route("GET", "/api/v1/stopOrders", "futures", 6, True, _tr("list_stop_orders")),
    Route("DELETE", "/api/v1/stopOrders", "futures", 15, True, _tr("cancel_stop_orders")),
    Route("GET", "/api/v1/fills", "futures", 5, True, _tr("fills")),
    Route("GET", "/api/v1/recentFills", "futures", 3, True, _tr("recent_fills")),
    Route("GET", "/api/v1/account-overview", "futures", 5, True, _tr("account_overview")),
    Route("GET", "/api/v1/position", "futures", 2, True, _tr("position")),
    Route("GET", "/api/v1/positions", "futures", 2, True, _tr("positions")),
    Route("POST", "/api/v2/changeCrossUserLeverage", "futures", 2, True, _tr("change_cross_leverage")),
    Route("GET", "/api/v2/getCrossUserLeverage", "futures", 2, True, _tr("get_cross_leverage")),
    Route("POST", "/api/v2/position/changeMarginMode", "futures", 2, True, _tr("change_margin_mode")),
    Route("GET", "/api/v2/position/getMarginMode", "futures", 2, True, _tr("get_margin_mode")),
    Route("GET", "/api/v2/position/getPositionMode", "futures", 2, True, _tr("get_position_mode")),
    Route("POST", "/api/v2/position/switchPositionMode", "futures", 2, True, _tr("switch_position_mode")),
    Route("GET", "/api/v1/funding-history", "futures", 5, True, _tr("funding_history")),
    Route("GET", "/api/v2/getMaxOpenSize", "futures", 4, True, _tr("max_open_size")),
]
