"""Read-only public REST payloads of the Market: order book, trades, klines, mark/index, funding.

MarketQueries is a mixin of Market (kept apart only for module size): it reads the per-symbol
states through `self._state(symbol)` / `self._states` and `self.anchor_ms`, and changes nothing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .candles import GRANULARITIES, MAX_ROWS, Row, history_rows, period_start, period_start_at_or_after
from .candle_history import MINUTE_MS
from .market_payloads import (
    funding_current_payload, index_payload, risk_limit_payload, trade_payload,
)

if TYPE_CHECKING:
    from .symbol_state import SymbolState


def _opt_int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise errors.bad_param(f"{name} is invalid")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise errors.bad_param(f"{name} is invalid") from exc


class MarketQueries:
    """Public REST payloads (each returns the `data` of KuCoin's envelope)."""

    _states: dict[str, SymbolState]
    anchor_ms: int

    def _state(self, symbol: str) -> SymbolState:  # provided by Market
        raise NotImplementedError

    # -- order book and trades -----------------------------------------------------------------
    def level2_snapshot(self, symbol: str, depth: int | None, now_ms: int) -> dict[str, Any]:
        """Return GET /api/v1/level2/snapshot (depth None) or level2/depth20|100 data."""
        st = self._state(symbol)
        if depth is not None and (not isinstance(depth, int) or depth <= 0):
            raise errors.bad_param("depth is invalid")
        to_float = st.to_float
        return {
            "sequence": st.book.sequence, "symbol": symbol,
            "bids": [[to_float(p), s] for p, s in st.book.levels("buy", depth)],
            "asks": [[to_float(p), s] for p, s in st.book.levels("sell", depth)],
            "ts": now_ms * 1_000_000,
        }

    def trade_history(self, symbol: str) -> list[dict[str, Any]]:
        """Return GET /api/v1/trade/history data: the last 100 public trades, newest first."""
        st = self._state(symbol)
        return [trade_payload(t, st.contract_id) for t in reversed(st.trades)]

    # -- candles -------------------------------------------------------------------------------
    def klines(self, symbol: str, granularity: Any, from_ms: Any, to_ms: Any,
               now_ms: int) -> list[list[float | int]]:
        """Return GET /api/v1/kline/query data: [time ms, open, high, low, close, volume] rows.

        Ascending, at most 500, the in-progress candle included. from+to: the newest 500 in
        range; only from: 500 from `from` on; only to / neither: the newest 500 up to `to` / now.
        """
        st = self._state(symbol)
        try:
            gran = int(granularity)
        except (TypeError, ValueError) as exc:
            raise errors.bad_param("granularity is invalid") from exc
        if gran not in GRANULARITIES or isinstance(granularity, (bool, float)):
            raise errors.bad_param("granularity is invalid")
        start_ms, end_ms = _opt_int(from_ms, "from"), _opt_int(to_ms, "to")
        span = gran * MINUTE_MS
        newest = period_start(max(now_ms, self.anchor_ms), gran)
        oldest = period_start_at_or_after(st.history().start_ms, gran)
        hi = newest if end_ms is None else min(newest, period_start(end_ms, gran))
        if start_ms is None:
            lo = hi - (MAX_ROWS - 1) * span
        else:
            lo = period_start_at_or_after(start_ms, gran)
            if end_ms is None:
                hi = min(hi, max(lo, oldest) + (MAX_ROWS - 1) * span)
            else:
                lo = max(lo, hi - (MAX_ROWS - 1) * span)
        lo = max(lo, oldest)
        if lo > hi:
            return []
        f = st.to_float
        return [[r[0], f(r[1]), f(r[2]), f(r[3]), f(r[4]), r[5]] for r in self._rows(st, gran, lo, hi)]

    def _rows(self, st: SymbolState, granularity: int, lo_ms: int, hi_ms: int) -> list[Row]:
        # history before the period holding the anchor, live candles from it on
        span = granularity * MINUTE_MS
        anchor = period_start(self.anchor_ms, granularity)
        rows: list[Row] = []
        if lo_ms < anchor:
            rows = history_rows(st.history(), granularity, lo_ms, min(hi_ms + span, anchor), st.notional)
        if hi_ms >= anchor:
            rows.extend(st.live().rows(granularity, max(lo_ms, anchor), hi_ms))
        return rows

    # -- mark, index, funding ------------------------------------------------------------------
    def mark_price_current(self, symbol: str, now_ms: int) -> dict[str, Any]:
        """Return GET /api/v1/mark-price/{symbol}/current data."""
        st = self._state(symbol)
        return {"symbol": symbol, "granularity": 1000, "timePoint": now_ms - now_ms % 1000,
                "value": st.mark, "indexPrice": st.index}

    def index_query(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Return GET /api/v1/index/query data: the current point of an index (".KXBTUSDT")."""
        name = params.get("symbol")
        if not name:
            raise errors.bad_param("symbol is required")
        st = self._states.get(name) or next(
            (s for s in self._states.values() if s.spec.index_symbol == name), None)
        if st is None:
            raise errors.unknown_symbol(name)
        return index_payload(st.spec, index_price=st.index, time_ms=now_ms - now_ms % 1000,
                             decimals=st.decimals + 1)

    def funding_rate_current(self, symbol: str, now_ms: int) -> dict[str, Any]:
        """Return GET /api/v1/funding-rate/{symbol}/current data (perpetuals only)."""
        st = self._funded(symbol)
        last_ms, next_ms, value, predicted = st.funding.current(now_ms)
        return funding_current_payload(st.spec, last_ms=last_ms, next_ms=next_ms, value=value,
                                       predicted=predicted)

    def funding_rate_history(self, symbol: str, from_ms: Any, to_ms: Any,
                             now_ms: int) -> list[dict[str, Any]]:
        """Return GET /api/v1/contract/funding-rates data: settlements in [from, to], newest first.

        At most the newest 100 settlements of the range; none before the contract's first open.
        """
        st = self._funded(symbol)
        start_ms, end_ms = _opt_int(from_ms, "from"), _opt_int(to_ms, "to")
        end_ms = now_ms if end_ms is None else min(end_ms, now_ms)
        start_ms = max(st.spec.first_open_ms, 0 if start_ms is None else start_ms)
        if start_ms > end_ms:
            return []
        return [{"symbol": symbol, "fundingRate": rate, "timepoint": t}
                for t, rate in st.funding.history(start_ms, end_ms)]

    def _funded(self, symbol: str) -> SymbolState:
        st = self._state(symbol)
        if st.funding is None:
            raise errors.bad_param(f"Contract {symbol} has no funding rate")  # dated futures
        return st

    # -- limits and statistics -----------------------------------------------------------------
    def risk_limit(self, symbol: str) -> list[dict[str, Any]]:
        """Return GET /api/v1/contracts/risk-limit/{symbol} data."""
        st = self._state(symbol)
        return risk_limit_payload(symbol, st.spec.risk_tiers)

    def trade_statistics(self, now_ms: int) -> dict[str, float]:
        """Return GET /api/v1/trade-statistics data: 24 h turnover of all contracts, in USD."""
        total = 0.0
        for st in self._states.values():
            lots = sum(r[5] for r in self._stats_rows(st, now_ms))
            price = 1.0 if st.spec.is_inverse else st.to_float(st.last_ticks)
            total += lots * abs(st.spec.multiplier) * price
        return {"turnoverOf24h": round(total, 2)}

    def _stats_rows(self, st: SymbolState, now_ms: int) -> list[Row]:  # provided by Market
        raise NotImplementedError
