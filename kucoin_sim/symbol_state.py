"""The mutable market state of one contract: book, market maker, last trade, prices, candles."""
from __future__ import annotations

import math
from collections import deque
from random import Random

from .book import Book, PriceFormat
from .candle_history import DAY_MS, CandleHistory
from .candles import GRANULARITIES, LiveCandles, Row, aggregate, period_start
from .contracts import ContractSpec, daily_turnover_usd
from .events import Side, Trade
from .funding import FundingSchedule
from .marketmaker import MarketMaker, PriceDriver

SEQUENCE_BASE = 1_000_000_000  # KuCoin-like sequences stay far below the ms clock (notes §11.2)
BOOK_DEPTH = 100  # market-maker levels per side
TRADE_INTERVAL_MS = 1500  # mean time between simulated public trades, per symbol
DELTAS_PER_SECOND = 10  # size perturbations; ccxt.pro needs 6 deltas before it syncs (notes §11.2)
TRADE_HISTORY_LEN = 100
MAX_STEP_FRACTION = 0.0005  # the grid step never exceeds 0.05 % of the price


class SymbolState:
    """Everything the market tracks for one contract (a plain mutable record plus helpers)."""

    def __init__(self, spec: ContractSpec, *, seed: int, driver: PriceDriver, anchor_ms: int,
                 tick_ms: int, vol_scale: float, premium: float, contract_id: int) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.contract_id = contract_id
        self.fmt = PriceFormat(spec.tick_size)
        self.tick = float(spec.tick_size)
        self.decimals = max(0, -self.fmt.tick.as_tuple().exponent)
        self.rng = Random(f"{seed}|{spec.symbol}")
        self.driver = driver
        self.anchor_ms = anchor_ms
        self.history_key = f"{seed}|{spec.base_currency}"
        self.premium = premium  # dated futures trade above the index (contango)
        value = spec.base_price * abs(spec.multiplier)
        self.daily_lots = daily_turnover_usd(spec) / (abs(spec.multiplier) if spec.is_inverse else value)
        self._history: CandleHistory | None = None
        # the live market opens where the history (a function of seed and absolute time) closes
        self.p0_ticks = max(2, self.history().price_at(anchor_ms))
        self.max_ticks = max(self.p0_ticks * 2, self.fmt.nearest_ticks(spec.max_price))
        self.book = Book(spec.symbol, self.fmt, start_sequence=SEQUENCE_BASE + self.rng.randrange(10**8))
        sigma_ticks = self.p0_ticks * spec.daily_vol * vol_scale * math.sqrt(tick_ms / DAY_MS)
        step = max(1, min(int(sigma_ticks * 0.7), int(self.p0_ticks * MAX_STEP_FRACTION)))
        self.mm = MarketMaker(self.book, self.rng, step=step, depth=BOOK_DEPTH,
                              base_size=max(5, int(self.daily_lots / 5000)), max_ticks=self.max_ticks)
        self.perturb_count = max(1, round(DELTAS_PER_SECOND * tick_ms / 1000))
        self.trade_prob = min(1.0, tick_ms / TRADE_INTERVAL_MS)
        self.mean_trade_lots = max(1.0, self.daily_lots * TRADE_INTERVAL_MS / DAY_MS)
        self.trade_seq = SEQUENCE_BASE + self.rng.randrange(10**8)
        self.last_ticks = self.p0_ticks
        self.last_trade = Trade(spec.symbol, self.trade_seq, str(self.trade_seq), "buy", 1,
                                self.fmt.to_str(self.p0_ticks), "", "", anchor_ms * 1_000_000)
        self.trades: deque[Trade] = deque(maxlen=TRADE_HISTORY_LEN)
        self.bbo: tuple[int, int, int, int] | None = None
        self.funding = FundingSchedule(f"{seed}|{spec.symbol}", spec.funding_granularity_ms) \
            if spec.is_perpetual and spec.funding_granularity_ms > 0 else None
        self.oi_phase = self.rng.uniform(0, 2 * math.pi)
        price = self.to_float(self.p0_ticks)
        self.index = round(price / (1 + premium), self.decimals + 1)
        self.mark = round(price, self.decimals + 1)
        self.basis = 0.0
        self.next_mark_ms = 0
        self.next_funding_event_ms = 0
        self.candle_dirty = False
        self.candle_emit_ms = -10**15
        self._live: LiveCandles | None = None

    # -- prices --------------------------------------------------------------------------------
    def quote_prices(self) -> tuple[int, int]:
        """Return the market maker's best bid / best ask ticks for the current driver value."""
        mid = self.p0_ticks * self.driver.factor()
        bid = min(self.max_ticks - 1, max(1, int(mid - 0.5)))
        return bid, bid + 1

    def to_float(self, ticks: float) -> float:
        return round(ticks * self.tick, self.decimals)

    def notional(self, price_ticks: float, lots: int) -> float:
        """Value of `lots` at a price, in the settle currency (inverse: USD lots / price)."""
        if self.spec.is_inverse:
            return lots * abs(self.spec.multiplier) / (price_ticks * self.tick)
        return lots * abs(self.spec.multiplier) * price_ticks * self.tick

    def order_id(self) -> str:
        return f"{self.rng.getrandbits(96):024x}"

    def taker_side(self) -> Side:
        return "buy" if self.rng.random() < 0.5 else "sell"

    # -- candles -------------------------------------------------------------------------------
    def history(self) -> CandleHistory:
        if self._history is None:
            self._history = CandleHistory(
                key=self.history_key, start_ms=self.spec.first_open_ms, anchor_ms=self.anchor_ms,
                level_ticks=max(2, self.fmt.nearest_ticks(self.spec.base_price)), daily_vol=self.spec.daily_vol,
                daily_lots=self.daily_lots)
        return self._history

    def live(self) -> LiveCandles:
        if self._live is None:
            history = self.history()
            partials: dict[int, Row | None] = {}
            for granularity, (level, _) in GRANULARITIES.items():
                nodes = history.nodes(level, period_start(self.anchor_ms, granularity), self.anchor_ms)
                start = period_start(self.anchor_ms, granularity)
                partials[granularity] = aggregate(start, nodes, self.notional) if nodes else None
            self._live = LiveCandles(anchor_ms=self.anchor_ms, partials=partials,
                                     last_close=self.p0_ticks)
        return self._live
