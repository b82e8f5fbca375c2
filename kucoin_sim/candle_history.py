"""Deterministic candle history, generated top-down and lazily, consistent across granularities.

The history of one symbol is a tree of OHLCV nodes: weeks (a mean-reverting random walk going
back from the anchor), split into days, 4 h, 1 h, 15 min and 1 min nodes. A node's children are
generated on demand from a generator seeded by (key, level, start), so any page of any granularity
costs only the nodes above and inside it, and the same seed always gives the same candles.

Children honour their parent exactly: the first child opens at the parent's open, the last closes
at its close, every child stays inside the parent's high/low, and the child holding the parent's
high (low) minute has exactly that high (low). Child volumes sum to the parent's. So a 1 h candle
is exactly the aggregate of its four 15 min candles, which aggregate their minutes, and so on.

The newest node of each level ends at the anchor (a minute boundary, where the live market starts)
and closes at the anchor price. Prices are integer ticks.
"""
from __future__ import annotations

import math
from random import Random

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
MONDAY_OFFSET_MS = 4 * DAY_MS  # 1970-01-05 was a Monday; weeks open Monday 00:00 UTC

# Levels of the tree, coarse to fine; each divides its parent. Every REST granularity is one of
# them or a whole number of them aligned inside the parent (5 min = 5 x 1 min, 8 h = 2 x 4 h, ...).
LEVEL_MS = (WEEK_MS, DAY_MS, 4 * HOUR_MS, HOUR_MS, 15 * MINUTE_MS, MINUTE_MS)
WEEK, DAY, H4, H1, M15, M1 = range(6)

# Node = (t0_ms, t1_ms, open, high, low, close, volume, high_at_ms, low_at_ms); prices in ticks,
# high_at/low_at = start of the minute in which the high/low trades.
Node = tuple[int, int, int, int, int, int, int, int, int]

YEAR_MS = 365 * DAY_MS
WEEK_MEAN_REVERSION = 0.02  # per week, towards the trend, in log price
GROWTH_PER_YEAR = 0.15  # log-price trend: prices were ~0.2x today's a decade ago
LOG_FLOOR, LOG_CEIL = -2.3, 1.4
EXCURSION = 0.5  # high/low excursion beyond open/close, in units of the node's sigma
MAX_CACHED_PARENTS = 1500  # per symbol; the biggest page needs ~350 parents


def week_floor(t_ms: int) -> int:
    return t_ms - (t_ms - MONDAY_OFFSET_MS) % WEEK_MS


class CandleHistory:
    """The generated past of one symbol, from start_ms (a Monday) to anchor_ms (a minute)."""

    def __init__(self, *, key: str, start_ms: int, anchor_ms: int, anchor_ticks: int,
                 daily_vol: float, daily_lots: float) -> None:
        if anchor_ms % MINUTE_MS:
            raise ValueError("anchor must be a minute boundary")
        first_monday = start_ms + (-(start_ms - MONDAY_OFFSET_MS)) % WEEK_MS
        self.start_ms = min(first_monday, week_floor(anchor_ms - MINUTE_MS))  # at least one week
        self.anchor_ms = anchor_ms
        self.anchor_ticks = anchor_ticks
        self._key = key
        self._vol = daily_vol
        self._daily_lots = daily_lots
        # the week chain, newest first, extended backwards on demand (see _extend_weeks)
        self._newest_week_ms = week_floor(anchor_ms - MINUTE_MS)
        self._rev_weeks: list[Node] = []
        self._chain_rng = Random(f"{key}|weeks")
        self._chain_log = 0.0  # log(close / anchor price) of the next older week to generate
        self._chain_trend = 0.0
        self._cache: dict[tuple[int, int], list[Node]] = {}

    def nodes(self, level: int, lo_ms: int, hi_ms: int) -> list[Node]:
        """Return the nodes of `level` starting in [lo_ms, hi_ms), oldest first."""
        lo_ms = max(lo_ms, self.start_ms)
        hi_ms = min(hi_ms, self.anchor_ms)
        if lo_ms >= hi_ms:
            return []
        if level == WEEK:
            return self.weeks(lo_ms, hi_ms)
        parent_ms = LEVEL_MS[level - 1]
        parent_lo = week_floor(lo_ms) if level == DAY else lo_ms - lo_ms % parent_ms
        out: list[Node] = []
        for parent in self.nodes(level - 1, parent_lo, hi_ms):
            out.extend(c for c in self.children(level - 1, parent) if lo_ms <= c[0] < hi_ms)
        return out

    def weeks(self, lo_ms: int | None = None, hi_ms: int | None = None) -> list[Node]:
        """Return the week nodes starting in [lo_ms, hi_ms) (default: all), oldest first."""
        lo_ms = self.start_ms if lo_ms is None else max(lo_ms, self.start_ms)
        hi_ms = self.anchor_ms if hi_ms is None else hi_ms
        # week k (newest = 0) opens at newest_week_ms - k weeks
        oldest = (self._newest_week_ms - lo_ms) // WEEK_MS
        newest = max(0, (self._newest_week_ms - hi_ms) // WEEK_MS + 1)
        if oldest < newest:
            return []
        self._extend_weeks(oldest + 1)
        return self._rev_weeks[newest:oldest + 1][::-1]

    def children(self, level: int, node: Node) -> list[Node]:
        key = (level, node[0])
        kids = self._cache.get(key)
        if kids is None:
            if len(self._cache) >= MAX_CACHED_PARENTS:
                self._cache.clear()  # regenerated identically on demand: the cache is only speed
            kids = self._cache[key] = self._split(level, node)
        return kids

    # -- generation ----------------------------------------------------------------------------
    def _sigma(self, price: float, span_ms: int) -> float:
        return price * self._vol * math.sqrt(span_ms / DAY_MS)

    def _extend_weeks(self, count: int) -> None:
        # Walk back from the anchor: x is log(close / anchor price) of a week; its open is the
        # close of the week before. Weeks are drawn newest first, each from the same stream, so
        # the chain is identical however far (and in how many steps) it is extended.
        weeks, rng = self._rev_weeks, self._chain_rng
        gauss, random = rng.gauss, rng.random
        total = (self._newest_week_ms - self.start_ms) // WEEK_MS + 1
        while len(weeks) < min(count, total):
            t0 = self._newest_week_ms - len(weeks) * WEEK_MS
            t1 = min(t0 + WEEK_MS, self.anchor_ms)
            days = (t1 - t0) / DAY_MS
            close_log = self._chain_log
            older_trend = -GROWTH_PER_YEAR * (self.anchor_ms - t0) / YEAR_MS
            x = older_trend + (close_log - self._chain_trend) * (1 - WEEK_MEAN_REVERSION) \
                + self._vol * math.sqrt(days) * gauss(0.0, 1.0)
            self._chain_log = min(LOG_CEIL, max(LOG_FLOOR, x))
            self._chain_trend = older_trend
            close, opened = self._ticks(close_log), self._ticks(self._chain_log)
            sigma = self._sigma((opened + close) / 2, t1 - t0)
            high = max(opened, close) + int(abs(gauss(0.0, 1.0)) * sigma * EXCURSION)
            low = max(1, min(opened, close) - int(abs(gauss(0.0, 1.0)) * sigma * EXCURSION))
            minutes = (t1 - t0) // MINUTE_MS
            lots = self._daily_lots * days * math.exp(0.35 * gauss(0.0, 1.0))
            weeks.append((t0, t1, opened, high, low, close, int(lots),
                          t0 + int(random() * minutes) * MINUTE_MS,
                          t0 + int(random() * minutes) * MINUTE_MS))

    def _ticks(self, log_price: float) -> int:
        return max(1, int(round(self.anchor_ticks * math.exp(log_price))))

    def _split(self, level: int, node: Node) -> list[Node]:
        t0, t1, opened, high, low, close, volume, high_at, low_at = node
        child_ms = LEVEL_MS[level + 1]
        rng = Random(f"{self._key}|{level}|{t0}")
        starts = list(range(t0, t1, child_ms))
        n = len(starts)
        sigma = self._sigma((opened + close) / 2, child_ms)
        half_minute = MINUTE_MS / 2 / child_ms
        pins = sorted([
            (0.0, opened), ((high_at - t0) / child_ms + half_minute, high),
            ((low_at - t0) / child_ms + half_minute, low), ((t1 - t0) / child_ms, close),
        ])
        bounds = _bridge(rng, n, pins, sigma, low, high)
        bounds[0], bounds[n] = opened, close
        high_child, low_child = (high_at - t0) // child_ms, (low_at - t0) // child_ms
        ends = starts[1:] + [t1]
        lots = _split_volume(rng, volume, [e - s for s, e in zip(starts, ends)])
        kids = []
        gauss, randrange = rng.gauss, rng.randrange
        for j, (s, e) in enumerate(zip(starts, ends)):
            o, c = bounds[j], bounds[j + 1]
            minutes = (e - s) // MINUTE_MS
            if j == high_child:
                h, h_at = high, high_at
            else:
                h = min(high, max(o, c) + int(abs(gauss(0.0, 1.0)) * sigma * EXCURSION))
                h_at = s + randrange(minutes) * MINUTE_MS
            if j == low_child:
                lo, l_at = low, low_at
            else:
                lo = max(low, min(o, c) - int(abs(gauss(0.0, 1.0)) * sigma * EXCURSION))
                l_at = s + randrange(minutes) * MINUTE_MS
            kids.append((s, e, o, h, lo, c, lots[j], h_at, l_at))
        return kids


def _bridge(rng: Random, n: int, pins: list[tuple[float, int]], sigma: float,
            low: int, high: int) -> list[int]:
    """Return n + 1 boundary prices: Brownian bridges through the time-sorted pins, kept in [low, high]."""
    values = [0] * (n + 1)
    gauss, sqrt = rng.gauss, math.sqrt
    k = 1
    for (pa, va), (pb, vb) in zip(pins, pins[1:]):
        span = pb - pa
        if span <= 1e-9:
            continue
        xs = []
        while k < n and k < pb:
            xs.append(k)
            k += 1
        if not xs:
            continue
        walk, w, prev = [], 0.0, pa
        for x in xs:
            w += gauss(0.0, sigma * sqrt(x - prev))
            walk.append(w)
            prev = x
        w_end = w + gauss(0.0, sigma * sqrt(pb - prev))
        slope = (vb - va) / span
        for x, wx in zip(xs, walk):
            v = va + slope * (x - pa) + wx - (x - pa) / span * w_end
            if v > high:
                v = 2 * high - v  # reflect: the path turns at its extreme instead of sticking to it
            if v < low:
                v = 2 * low - v
            values[x] = min(high, max(low, int(round(v))))
    return values


def _split_volume(rng: Random, volume: int, durations: list[int]) -> list[int]:
    weights = [d * math.exp(0.5 * rng.gauss(0.0, 1.0)) for d in durations]
    total = sum(weights)
    shares = [volume * w / total for w in weights]
    lots = [int(s) for s in shares]
    remainder = volume - sum(lots)
    for i in sorted(range(len(lots)), key=lambda i: lots[i] - shares[i])[:remainder]:
        lots[i] += 1
    return lots
