"""The backtest's history: downloaded through KuCoinClient, cached on disk, gaps found and reported.

    cache = HistoryCache(Path("backtest_results/cache"), source="api-futures.kucoin.com")
    markets = load_markets(cache, connect, now_s=time.time())
    history = load_history(cache, connect, symbols, "5m", since_ms=a, until_ms=b, now_ms=now)

`connect()` returns a started KuCoinClient and is called only when something is not cached yet,
so a rerun over cached data sends no request at all (and `--simulate` starts no simulator).
Per source (an exchange host, or the simulator and its seed) the cache holds each symbol's
candles per timeframe and its funding settlements, each with the time ranges already fetched:
a candle missing inside a fetched range is a gap of the exchange's, reported, never refetched
nor bridged. Only closed candles are kept (``strategy.closed_candles``, the live bot's rule),
so a range reaching into the present is cut at the last closed candle. The markets (contract
terms and 24 h turnover for the universe) are kept for MARKETS_MAX_AGE_S.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from functools import partial
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kucoin_futures.protocol.types import timeframe_ms
from tradebot.strategy import closed_candles

__all__ = ["Gap", "History", "HistoryCache", "MARKETS_MAX_AGE_S", "Series", "find_gaps", "load_history",
           "load_markets", "missing_ranges"]

log = logging.getLogger(__name__)

MARKETS_MAX_AGE_S = 86_400.0  # cached contract terms and turnover are reused for a day
FORMAT_VERSION = 1
# What the backtest reads of a ccxt market (ContractTerms.from_market, the universe filter).
MARKET_KEYS = ("symbol", "id", "contractSize", "taker", "maker", "precision", "limits", "linear",
               "inverse", "swap", "settle", "active")
INFO_KEYS = ("maintainMargin", "turnoverOf24h", "isInverse", "multiplier")

Connect = Callable[[], Any]  # -> a started KuCoinClient


@dataclass(frozen=True, slots=True)
class Gap:
    """Candles the exchange did not have: [from_ms, to_ms) of one symbol, `missing` of them."""

    symbol: str
    from_ms: int
    to_ms: int
    missing: int


@dataclass(frozen=True, slots=True)
class Series:
    """One symbol's closed candles (ccxt rows, ascending) and funding settlements (ms, rate)."""

    symbol: str
    rows: np.ndarray
    funding: np.ndarray
    gaps: tuple[Gap, ...] = ()


@dataclass(frozen=True, slots=True)
class History:
    """Everything one backtest reads, for [since_ms, until_ms) (until cut at the last closed candle)."""

    source: str
    timeframe: str
    since_ms: int
    until_ms: int
    series: dict[str, Series]
    markets: Mapping[str, Any]
    fetched_ranges: int = 0  # downloads this run (0: everything came from the cache)
    gaps: tuple[Gap, ...] = field(default=())


class HistoryCache:
    """Files under ``root/source/``: markets.json, and per symbol ``<timeframe>.npz`` and
    ``funding.npz`` (rows plus the fetched ranges). Writes are atomic (a temporary file renamed)."""

    def __init__(self, root: Path, *, source: str) -> None:
        self.dir = Path(root) / _safe(source)
        self.source = source

    def markets(self, *, now_s: float, max_age_s: float = MARKETS_MAX_AGE_S) -> dict[str, Any] | None:
        path = self.dir / "markets.json"
        try:
            saved = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if saved.get("version") != FORMAT_VERSION or now_s - saved.get("fetched_s", 0) > max_age_s:
            return None
        return saved["markets"]

    def save_markets(self, markets: Mapping[str, Any], *, now_s: float) -> None:
        payload = {"version": FORMAT_VERSION, "fetched_s": now_s, "markets": markets}
        self._write(self.dir / "markets.json", json.dumps(payload, sort_keys=True).encode())

    def read(self, symbol: str, name: str, width: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Return (rows, fetched ranges) of one file; empty when absent."""
        try:
            with np.load(self._path(symbol, name)) as saved:
                return saved["rows"], [tuple(r) for r in saved["covered"].tolist()]
        except (FileNotFoundError, KeyError, ValueError, OSError):
            return np.empty((0, width)), []

    def write(self, symbol: str, name: str, rows: np.ndarray, covered: list[tuple[int, int]]) -> None:
        path = self._path(symbol, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, rows=rows, covered=np.asarray(covered, dtype=np.int64).reshape(-1, 2))
        os.replace(tmp, path)

    def _path(self, symbol: str, name: str) -> Path:
        return self.dir / _safe(symbol) / f"{name}.npz"

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)


def load_markets(cache: HistoryCache, connect: Connect, *, now_s: float) -> dict[str, Any]:
    """Return the markets (trimmed ccxt dicts by unified symbol): cached, or read once and cached."""
    markets = cache.markets(now_s=now_s)
    if markets is None:
        markets = {symbol: _trim(m) for symbol, m in connect().markets.items()}
        cache.save_markets(markets, now_s=now_s)
    return markets


def load_history(cache: HistoryCache, connect: Connect, symbols: Iterable[str], timeframe: str, *,
                 since_ms: int, until_ms: int, now_ms: int, markets: Mapping[str, Any],
                 on_page: Callable[[str, int, int], object] | None = None) -> History:
    """Return the closed candles and funding of `symbols` in [since_ms, until_ms), fetching only
    what the cache lacks; ``on_page(symbol, done, total)`` after each downloaded page."""
    span = timeframe_ms(timeframe)
    until_ms = min(until_ms, now_ms - now_ms % span)  # the candle in progress is not history
    if until_ms <= since_ms:
        raise ValueError("the time range holds no closed candle yet")
    series, gaps, fetched = {}, [], 0
    for symbol in symbols:
        rows, candle_fetches = _candles(cache, connect, symbol, timeframe, since_ms, until_ms, now_ms, on_page)
        funding, funding_fetches = _funding(cache, connect, symbol, since_ms, until_ms)
        fetched += candle_fetches + funding_fetches
        found = find_gaps(symbol, rows[:, 0].astype(np.int64), span, since_ms, until_ms)
        series[symbol] = Series(symbol, rows, funding, found)
        gaps.extend(found)
    return History(cache.source, timeframe, since_ms, until_ms, series, markets, fetched, tuple(gaps))


def find_gaps(symbol: str, ts_ms: np.ndarray, span_ms: int, since_ms: int, until_ms: int) -> tuple[Gap, ...]:
    """Return the runs of candles missing from `ts_ms` (ascending) among the candles opening in
    [since_ms, until_ms) on the timeframe's grid."""
    first = since_ms + (-since_ms) % span_ms
    slots = max(0, -(-(until_ms - first) // span_ms))
    index = (ts_ms - first) // span_ms
    edges = np.concatenate(([-1], index, [slots]))
    holes = np.flatnonzero(np.diff(edges) > 1)
    return tuple(Gap(symbol, int(first + (edges[k] + 1) * span_ms), int(first + edges[k + 1] * span_ms),
                     int(edges[k + 1] - edges[k] - 1)) for k in holes)


def missing_ranges(covered: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """Return the parts of [lo, hi) that no range of `covered` holds."""
    out, at = [], lo
    for a, b in sorted(covered):
        if b <= at or a >= hi:
            continue
        if a > at:
            out.append((at, a))
        at = max(at, b)
    if at < hi:
        out.append((at, hi))
    return out


def _candles(cache: HistoryCache, connect: Connect, symbol: str, timeframe: str, since_ms: int, until_ms: int,
             now_ms: int, on_page: Callable[[str, int, int], object] | None) -> tuple[np.ndarray, int]:
    rows, covered = cache.read(symbol, timeframe, 6)
    todo = missing_ranges(covered, since_ms, until_ms)
    for lo, hi in todo:
        new = connect().fetch_ohlcv_history(symbol, timeframe, since_ms=lo, until_ms=hi,
                                            on_page=None if on_page is None else partial(on_page, symbol))
        new = closed_candles(new, timeframe_ms=timeframe_ms(timeframe), now_ms=now_ms)
        rows = _merge_rows(rows, np.asarray(new, dtype=float).reshape(-1, 6))
        covered = _merge_ranges(covered + [(lo, hi)])
    if todo:
        cache.write(symbol, timeframe, rows, covered)
    inside = (rows[:, 0] >= since_ms) & (rows[:, 0] < until_ms)
    return rows[inside], len(todo)


def _funding(cache: HistoryCache, connect: Connect, symbol: str, since_ms: int,
             until_ms: int) -> tuple[np.ndarray, int]:
    rows, covered = cache.read(symbol, "funding", 2)
    todo = missing_ranges(covered, since_ms, until_ms)
    for lo, hi in todo:
        new = connect().fetch_funding_rate_history(symbol, since_ms=lo, until_ms=hi)
        rows = _merge_rows(rows, np.asarray(new, dtype=float).reshape(-1, 2))
        covered = _merge_ranges(covered + [(lo, hi)])
    if todo:
        cache.write(symbol, "funding", rows, covered)
    inside = (rows[:, 0] >= since_ms) & (rows[:, 0] < until_ms)
    return rows[inside], len(todo)


def _merge_rows(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    both = np.concatenate((new, old)) if len(old) else new
    _, first = np.unique(both[:, 0], return_index=True)  # sorted by time; the new row wins
    return both[first]


def _merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((int(a), int(b)))
    return merged


def _trim(market: Mapping[str, Any]) -> dict[str, Any]:
    info = market.get("info") or {}
    trimmed = {key: market.get(key) for key in MARKET_KEYS}
    trimmed["info"] = {key: info.get(key) for key in INFO_KEYS}
    return json.loads(json.dumps(trimmed, default=str))


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
