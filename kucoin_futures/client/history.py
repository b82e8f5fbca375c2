"""Market history over any time range, paged at LOW priority: candles and funding rates (backtests).

    rows = fetch_candle_history(gateway, "BTC/USDT:USDT", "5m", since_ms=a, until_ms=b)
    rates = fetch_funding_history(gateway, "BTC/USDT:USDT", since_ms=a, until_ms=b)

Every request goes through the gateway's scheduler at ``Priority.LOW``, charged to KuCoin's public
pool with its weight: history waits behind orders, account reads and market-data fallback, and
within the rate limits. KuCoinClient exposes both (``fetch_ohlcv_history``,
``fetch_funding_rate_history``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from operator import methodcaller
from typing import Any

from kucoin_futures.errors import InvalidArgument, ProtocolError
from kucoin_futures.protocol.types import timeframe_ms, to_kucoin_id
from kucoin_futures.rest.gateway import RestGateway
from kucoin_futures.rest.public import fetch_klines
from kucoin_futures.scheduling.pools import Priority

__all__ = ["PAGE_CANDLES", "candle_windows", "fetch_candle_history", "fetch_funding_history",
           "parse_funding_rates"]

log = logging.getLogger(__name__)

PAGE_CANDLES = 500  # candles asked per kline window (KlinePager re-asks a cut side at a 200-row cap)
MAX_MS = 10**13  # epoch ms bound of a range (the year 2286): beyond it a value is a caller's bug
MAX_FUNDING_PAGES = 1000  # 100 settlements an answer (protocol notes section 17): ~90 years of 8 h
# GET /api/v1/contract/funding-rates?symbol=&from=&to= (protocol notes section 17): the market's
# settled rates, newest first. Public pool, weight 5 (ccxt's table: "5PW").
FUNDING_OPERATION = "fetch_funding_rate_history"


def candle_windows(timeframe: str, *, since_ms: int, until_ms: int) -> list[tuple[int, int]]:
    """Return the [from_ms, to_ms] windows (inclusive, PAGE_CANDLES candles each) that cover the
    candles opening in [since_ms, until_ms), oldest first."""
    span = timeframe_ms(timeframe)
    _check_range(since_ms, until_ms)
    first = since_ms + (-since_ms) % span  # the first candle opening at or after since_ms
    return [(lo, min(lo + (PAGE_CANDLES - 1) * span, until_ms - 1))
            for lo in range(first, until_ms, PAGE_CANDLES * span)]


def fetch_candle_history(gateway: RestGateway, symbol: str, timeframe: str, *, since_ms: int, until_ms: int,
                         on_page: Callable[[int, int], object] | None = None) -> list[list[float]]:
    """Return ccxt rows [ts_ms, o, h, l, c, v] of every candle opening in [since_ms, until_ms),
    oldest first, in PAGE_CANDLES windows at LOW priority; ``on_page(done, total)`` after each.
    A candle the exchange does not have is missing, not invented (the caller reports gaps); the
    newest row may be the candle in progress."""
    kucoin_id = _kucoin_id(gateway, symbol)
    windows = candle_windows(timeframe, since_ms=since_ms, until_ms=until_ms)
    if on_page is not None and not callable(on_page):
        raise InvalidArgument(f"on_page must be a callable or None, not {on_page!r}")
    rows: list[list[float]] = []
    for done, (lo, hi) in enumerate(windows, start=1):
        candles = fetch_klines(_low_get(gateway), kucoin_id, timeframe, from_ms=lo, to_ms=hi,
                               received_at=0.0)  # rows keep no receipt time
        rows.extend([c.ts_ms, c.open, c.high, c.low, c.close, c.volume] for c in candles)
        if on_page is not None:
            on_page(done, len(windows))
    log.debug("history %s %s: %d candles in %d windows", kucoin_id, timeframe, len(rows), len(windows))
    return rows


def fetch_funding_history(gateway: RestGateway, symbol: str, *, since_ms: int,
                          until_ms: int) -> list[tuple[int, float]]:
    """Return (settlement ms, funding rate) of every settlement in [since_ms, until_ms), oldest
    first, paging back from the newest (an answer holds the newest of the range) at LOW priority."""
    kucoin_id = _kucoin_id(gateway, symbol)
    _check_range(since_ms, until_ms)
    found: dict[int, float] = {}
    to_ms = until_ms - 1
    for _ in range(MAX_FUNDING_PAGES):
        params = {"symbol": kucoin_id, "from": since_ms, "to": to_ms}
        answer = gateway.call(Priority.LOW, FUNDING_OPERATION,
                              methodcaller("futuresPublicGetContractFundingRates", params))
        fresh = [(t, rate) for t, rate in parse_funding_rates(answer)
                 if since_ms <= t <= to_ms and t not in found]
        if not fresh:
            break
        found.update(fresh)
        to_ms = min(t for t, _ in fresh) - 1
    return sorted(found.items())


def parse_funding_rates(payload: Any) -> list[tuple[int, float]]:
    """Return (timepoint ms, fundingRate) pairs of ``GET /api/v1/contract/funding-rates``.

    Example::

        {"code": "200000", "data": [{"symbol": "XBTUSDTM", "fundingRate": 0.0001, "timepoint": 1702310700000}]}
    """
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, list):
        raise ProtocolError(f"funding-rates answer without a data list: {str(payload)[:200]}")
    try:
        return [(int(row["timepoint"]), float(row["fundingRate"])) for row in data]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed funding-rates row: {str(data)[:200]}") from exc


def _kucoin_id(gateway: RestGateway, symbol: str) -> str:
    gateway.market(symbol)  # InvalidArgument for a market the exchange does not list
    return to_kucoin_id(symbol)


def _low_get(gateway: RestGateway) -> Callable[[str, Mapping[str, Any]], Any]:
    return lambda path, params: gateway.rest_get(path, params, priority=Priority.LOW)


def _check_range(since_ms: int, until_ms: int) -> None:
    for name, value in (("since_ms", since_ms), ("until_ms", until_ms)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MS:
            raise InvalidArgument(f"{name} must be an int of epoch ms from 0 to {MAX_MS}, got {value!r}")
    if since_ms >= until_ms:
        raise InvalidArgument(f"since_ms {since_ms} must be before until_ms {until_ms}")
