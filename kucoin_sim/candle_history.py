"""Deterministic candle history: a function of the seed and absolute time, consistent across granularities.

The history of one symbol is a tree of OHLCV nodes: weeks, split into days, 4 h, 1 h, 15 min and
1 min nodes. A week's close is a pure function of (key, absolute week number): a level trend, a few
slow waves of random phase and one draw of a generator seeded by the week, so any week costs O(1)
and does not depend on when the simulator started. A node's children are generated on demand from
a generator seeded by (key, level, start), so any page of any granularity costs only the nodes
above and inside it, and one seed always gives the same candles for the same absolute times,
whenever it is asked (a backtest over a fixed past range sees one history).

Children honour their parent exactly: the first child opens at the parent's open, the last closes
at its close, every child stays inside the parent's high/low, and one child has exactly that
high (low): the one the path comes nearest it in. Child volumes sum to the parent's. So a 1 h
candle is exactly the aggregate of its four 15 min candles, which aggregate their minutes, and
so on.

The tree is generated whole, also past the anchor (the minute the live market starts), and cut
when served: a node holding the anchor is served as the aggregate of its part before the anchor.
The live market opens at ``price_at(anchor)``, where the served history closes. Prices are integer
ticks.
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
# high_at/low_at = a minute of the node (the served cut at the anchor keeps its high's and low's).
Node = tuple[int, int, int, int, int, int, int, int, int]

# Bump when the generated history changes: what a backtest cached of it is keyed by this.
HISTORY_VERSION = 2
YEAR_MS = 365 * DAY_MS
REFERENCE_MS = 1_767_571_200_000  # Monday 2026-01-05 00:00 UTC: the trend is at the level here
GROWTH_PER_YEAR = 0.15  # log-price trend before the reference: prices were ~0.2x a decade earlier
WAVE_WEEKS = (5, 11, 23, 47, 97)  # periods of the slow waves around the trend
WAVE_SCALE = 0.45  # wave amplitude = weekly sigma x sqrt(period) x this (a random walk's spread)
WEEK_NOISE = 0.5  # per-week noise, in weekly sigmas
LOG_FLOOR, LOG_CEIL = -2.3, 1.4  # log(price / level) stays within these
EXCURSION = 0.5  # high/low excursion beyond open/close, in units of the node's sigma
MAX_CACHED_PARENTS = 1500  # per symbol; the biggest page needs ~350 parents


def week_floor(t_ms: int) -> int:
    return t_ms - (t_ms - MONDAY_OFFSET_MS) % WEEK_MS


def _week_number(t0_ms: int) -> int:
    return (t0_ms - MONDAY_OFFSET_MS) // WEEK_MS


class CandleHistory:
    """The generated past of one symbol, from start_ms (a Monday) to anchor_ms (a minute).

    `level_ticks` is the price the trend has at REFERENCE_MS; the key (seed and base currency)
    picks the waves and draws. Neither the anchor nor the start changes any candle: they only
    bound what is served.
    """

    def __init__(self, *, key: str, start_ms: int, anchor_ms: int, level_ticks: int,
                 daily_vol: float, daily_lots: float) -> None:
        if anchor_ms % MINUTE_MS:
            raise ValueError("anchor must be a minute boundary")
        first_monday = start_ms + (-(start_ms - MONDAY_OFFSET_MS)) % WEEK_MS
        self.start_ms = min(first_monday, week_floor(anchor_ms - MINUTE_MS))  # at least one week
        self.anchor_ms = anchor_ms
        self.level_ticks = level_ticks
        self._key = key
        self._vol = daily_vol
        self._daily_lots = daily_lots
        weekly = daily_vol * math.sqrt(7)
        rng = Random(f"{key}|waves")
        self._waves = [(WAVE_SCALE * weekly * math.sqrt(p), 2 * math.pi / p, rng.uniform(0, 2 * math.pi))
                       for p in WAVE_WEEKS]
        self._noise = WEEK_NOISE * weekly
        self._closes: dict[int, int] = {}  # week number -> close ticks
        self._weeks: dict[int, Node] = {}
        self._cache: dict[tuple[int, int], list[Node]] = {}

    def nodes(self, level: int, lo_ms: int, hi_ms: int) -> list[Node]:
        """Return the nodes of `level` starting in [lo_ms, hi_ms), oldest first, cut at the anchor."""
        found = self._full_nodes(level, lo_ms, hi_ms)
        if found and found[-1][1] > self.anchor_ms:
            found[-1] = self._partial(level, found[-1])
        return found

    def weeks(self, lo_ms: int | None = None, hi_ms: int | None = None) -> list[Node]:
        """Return the whole week nodes starting in [lo_ms, hi_ms) (default: all), oldest first."""
        lo_ms = self.start_ms if lo_ms is None else max(lo_ms, self.start_ms)
        hi_ms = self.anchor_ms if hi_ms is None else min(hi_ms, self.anchor_ms)
        first = week_floor(lo_ms) + (0 if week_floor(lo_ms) == lo_ms else WEEK_MS)
        return [self._week(t0) for t0 in range(first, hi_ms, WEEK_MS)]

    def children(self, level: int, node: Node) -> list[Node]:
        """Return the children of a whole node of `level` (the tree's, not a served cut)."""
        key = (level, node[0])
        kids = self._cache.get(key)
        if kids is None:
            if len(self._cache) >= MAX_CACHED_PARENTS:
                self._cache.clear()  # regenerated identically on demand: the cache is only speed
            kids = self._cache[key] = self._split(level, node)
        return kids

    def price_at(self, t_ms: int) -> int:
        """Return the price (ticks) at a minute boundary: the open of the minute starting there."""
        node = self._week(week_floor(t_ms))
        for level in range(WEEK, M1):
            node = next(k for k in self.children(level, node) if k[0] <= t_ms < k[1])
        return node[2]

    # -- serving -------------------------------------------------------------------------------
    def _full_nodes(self, level: int, lo_ms: int, hi_ms: int) -> list[Node]:
        lo_ms = max(lo_ms, self.start_ms)
        hi_ms = min(hi_ms, self.anchor_ms)
        if lo_ms >= hi_ms:
            return []
        if level == WEEK:
            return self.weeks(lo_ms, hi_ms)
        parent_ms = LEVEL_MS[level - 1]
        parent_lo = week_floor(lo_ms) if level == DAY else lo_ms - lo_ms % parent_ms
        out: list[Node] = []
        for parent in self._full_nodes(level - 1, parent_lo, hi_ms):
            out.extend(c for c in self.children(level - 1, parent) if lo_ms <= c[0] < hi_ms)
        return out

    def _partial(self, level: int, node: Node) -> Node:
        # The part of a node before the anchor, aggregated from its (cut) children.
        if node[1] <= self.anchor_ms:
            return node
        parts = [self._partial(level + 1, kid) for kid in self.children(level, node) if kid[0] < self.anchor_ms]
        high = max(parts, key=lambda p: p[3])
        low = min(parts, key=lambda p: p[4])
        return (node[0], self.anchor_ms, parts[0][2], high[3], low[4], parts[-1][5],
                sum(p[6] for p in parts), high[7], low[8])

    # -- generation ----------------------------------------------------------------------------
    def _sigma(self, price: float, span_ms: int) -> float:
        return price * self._vol * math.sqrt(span_ms / DAY_MS)

    def _close(self, week: int) -> int:
        # The close of week number `week`: trend + waves + this week's own draw, clamped.
        close = self._closes.get(week)
        if close is None:
            end_ms = MONDAY_OFFSET_MS + (week + 1) * WEEK_MS
            trend = -GROWTH_PER_YEAR * max(0, REFERENCE_MS - end_ms) / YEAR_MS
            wave = sum(a * math.sin(w * week + phase) for a, w, phase in self._waves)
            noise = self._noise * Random(f"{self._key}|week|{week}").gauss(0.0, 1.0)
            x = min(LOG_CEIL, max(LOG_FLOOR, wave + noise))
            close = self._closes[week] = max(1, int(round(self.level_ticks * math.exp(trend + x))))
        return close

    def _week(self, t0: int) -> Node:
        node = self._weeks.get(t0)
        if node is None:
            week = _week_number(t0)
            opened, close = self._close(week - 1), self._close(week)
            rng = Random(f"{self._key}|week|{week}")
            rng.gauss(0.0, 1.0)  # the close's draw (see _close)
            gauss, random = rng.gauss, rng.random
            sigma = self._sigma((opened + close) / 2, WEEK_MS)
            high = max(opened, close) + int(abs(gauss(0.0, 1.0)) * sigma * EXCURSION)
            low = max(1, min(opened, close) - int(abs(gauss(0.0, 1.0)) * sigma * EXCURSION))
            minutes = WEEK_MS // MINUTE_MS
            lots = self._daily_lots * 7 * math.exp(0.35 * gauss(0.0, 1.0))
            node = self._weeks[t0] = (t0, t0 + WEEK_MS, opened, high, low, close, int(lots),
                                      t0 + int(random() * minutes) * MINUTE_MS,
                                      t0 + int(random() * minutes) * MINUTE_MS)
        return node

    def _split(self, level: int, node: Node) -> list[Node]:
        # The children's path is a Brownian bridge from the node's open to its close, kept inside
        # its high and low; the child nearest the high (low) carries it exactly. Pinning the path
        # to the high and low at random minutes instead made short candles swing far more than
        # long ones (5 min closes mean-reverted: variance ratio ~0.5 at a day); now ~1, a walk's.
        t0, t1, opened, high, low, close, volume, _, _ = node
        child_ms = LEVEL_MS[level + 1]
        rng = Random(f"{self._key}|{level}|{t0}")
        starts = list(range(t0, t1, child_ms))
        n = len(starts)
        sigma = self._sigma((opened + close) / 2, child_ms)
        bounds = _bridge(rng, n, [(0.0, opened), (float(n), close)], sigma, low, high)
        bounds[0], bounds[n] = opened, close
        high_child = max(range(n), key=lambda j: max(bounds[j], bounds[j + 1]))
        low_child = min(range(n), key=lambda j: min(bounds[j], bounds[j + 1]))
        ends = starts[1:] + [t1]
        lots = _split_volume(rng, volume, [e - s for s, e in zip(starts, ends)])
        kids = []
        gauss, randrange = rng.gauss, rng.randrange
        for j, (s, e) in enumerate(zip(starts, ends)):
            o, c = bounds[j], bounds[j + 1]
            minutes = (e - s) // MINUTE_MS
            h = high if j == high_child else min(high, max(o, c) + int(abs(gauss(0.0, 1.0)) * sigma * EXCURSION))
            lo = low if j == low_child else max(low, min(o, c) - int(abs(gauss(0.0, 1.0)) * sigma * EXCURSION))
            kids.append((s, e, o, h, lo, c, lots[j], s + randrange(minutes) * MINUTE_MS,
                         s + randrange(minutes) * MINUTE_MS))
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
