"""The simulated market: contracts, price process, market-maker books, public trades, candles,
mark/index prices and funding, plus the public REST payloads built from them.

Pure and single-threaded: time only arrives as `now_ms`, randomness only from generators seeded
with the simulator seed, so one seed and one sequence of calls give one market. Everything the
WebSocket layer should push is appended to `events` (see events.py); the server drains it.

Per tick (`tick_ms` of market time) and per symbol: the base currency's random walk moves, the
hooks see the new best bid/ask, the market maker re-quotes (only the levels that move, plus a few
size changes), another participant may trade, mark/index (1 s), funding (1 min) and candle (1 s)
events fall due, the after-tick hook runs, and flush() turns the book's deltas into events.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from random import Random
from typing import Any, Protocol

from . import errors
from .book import Book, PriceFormat
from .candle_history import DAY_MS
from .candles import GRANULARITIES, period_start
from .contracts import ContractSpec, default_contracts
from .events import BestQuote, CandleUpdate, Event, FundingRate, MarkIndex, Side, TickerUpdate, Trade
from .funding import open_interest
from .market_payloads import ContractState, contract_payload, ticker_payload
from .market_queries import MarketQueries
from .marketmaker import PriceDriver
from .symbol_state import SymbolState

log = logging.getLogger(__name__)

MARK_INTERVAL_MS = 1000  # instrument topic mark.index.price: every second (notes §10)
FUNDING_EVENT_INTERVAL_MS = 60_000  # instrument topic funding.rate: every minute
CANDLE_EVENT_INTERVAL_MS = 1000  # limitCandle pushes at most once per second
MAX_CATCHUP_TICKS = 600  # a longer gap (a stalled server) is jumped over in one price step
PRICE_LIMIT = 0.05  # buyLimit / sellLimit: mark +- 5 %


class TickHooks(Protocol):
    """Implemented by Trading: resting account orders meet the market maker's moves here."""

    def before_quote(self, symbol: str, bid_ticks: int, ask_ticks: int, now_ms: int) -> None:
        """Fill account orders crossed by the new best bid/ask before they enter the book."""

    def after_tick(self, symbol: str, now_ms: int) -> None:
        """Run liquidation and funding checks after the symbol's tick."""


class Market(MarketQueries):
    """Contracts, prices, books, trades and candles of the simulated exchange."""

    def __init__(self, *, seed: int, now_ms: int, contracts: Sequence[ContractSpec] | None = None,
                 tick_ms: int = 100, vol_scale: float = 1.0) -> None:
        if tick_ms <= 0:
            raise ValueError("tick_ms must be positive")
        specs = tuple(contracts) if contracts is not None else default_contracts(now_ms)
        self.seed = seed
        self.tick_ms = tick_ms
        self.anchor_ms = now_ms - now_ms % 60_000  # history ends and live candles start here
        self.events: list[Event] = []
        self.hooks: TickHooks | None = None
        self._clock_ms = now_ms
        self._drivers: dict[str, PriceDriver] = {}
        self._states: dict[str, SymbolState] = {}
        perp_price = {s.base_currency: s.base_price for s in reversed(specs) if s.is_perpetual}
        for contract_id, spec in enumerate(specs, start=1):
            driver = self._drivers.get(spec.base_currency)
            if driver is None:
                sigma = spec.daily_vol * vol_scale * math.sqrt(tick_ms / DAY_MS)
                driver = PriceDriver(Random(f"{seed}|{spec.base_currency}|driver"), sigma)
                self._drivers[spec.base_currency] = driver
            premium = 0.0 if spec.is_perpetual else spec.base_price / perp_price.get(
                spec.base_currency, spec.base_price) - 1
            state = SymbolState(spec, seed=seed, driver=driver, anchor_ms=self.anchor_ms,
                                tick_ms=tick_ms, vol_scale=vol_scale, premium=premium,
                                contract_id=contract_id)
            state.mm.quote(*state.quote_prices(), now_ms)
            state.book.drain_deltas()  # the opening book is the first snapshot, not a delta stream
            state.bbo = self._bbo(state.book)
            self._states[spec.symbol] = state
        self._order = list(self._states.values())

    # -- events --------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        self.events.append(event)

    def drain_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    # -- accessors -----------------------------------------------------------------------------
    def symbols(self) -> list[str]:
        return list(self._states)

    def spec(self, symbol: str) -> ContractSpec:
        return self._state(symbol).spec

    def book(self, symbol: str) -> Book:
        return self._state(symbol).book

    def fmt(self, symbol: str) -> PriceFormat:
        return self._state(symbol).fmt

    def mark_price(self, symbol: str) -> float:
        return self._state(symbol).mark

    def index_price(self, symbol: str) -> float:
        return self._state(symbol).index

    def last_price(self, symbol: str) -> float:
        st = self._state(symbol)
        return st.to_float(st.last_ticks)

    def skip_level2_sequence(self, symbol: str) -> int:
        """Fault injection: burn one level-2 sequence number; return it."""
        return self._state(symbol).book.skip_sequence()

    def _state(self, symbol: str) -> SymbolState:
        state = self._states.get(symbol)
        if state is None:
            raise errors.unknown_symbol(symbol)
        return state

    # -- time ----------------------------------------------------------------------------------
    def resume(self, now_ms: int) -> None:
        """The market was paused until now: its clock skips the pause (nothing happened during
        it; no tick is replayed, so no fill or trigger is stamped in the past)."""
        ticks = (now_ms - self._clock_ms) // self.tick_ms
        if ticks > 0:
            self._clock_ms += ticks * self.tick_ms

    def advance(self, now_ms: int) -> None:
        """Run every whole tick up to now_ms (a gap beyond MAX_CATCHUP_TICKS is jumped over)."""
        ticks = (now_ms - self._clock_ms) // self.tick_ms
        if ticks <= 0:
            return
        if ticks > MAX_CATCHUP_TICKS:
            skipped = ticks - MAX_CATCHUP_TICKS
            log.debug("= jumping %d ticks", skipped)
            for driver in self._drivers.values():
                driver.step(skipped)
            self._clock_ms += skipped * self.tick_ms
            ticks = MAX_CATCHUP_TICKS
        for _ in range(ticks):
            self._clock_ms += self.tick_ms
            self._tick(self._clock_ms)

    def _tick(self, now_ms: int) -> None:
        for driver in self._drivers.values():
            driver.step()
        hooks = self.hooks
        for st in self._order:
            bid, ask = st.quote_prices()
            if hooks is not None:
                hooks.before_quote(st.symbol, bid, ask, now_ms)
            st.mm.quote(bid, ask, now_ms)
            st.mm.perturb(st.perturb_count, now_ms)
            if st.rng.random() < st.trade_prob:
                self._public_trade(st, now_ms)
            if now_ms >= st.next_mark_ms:
                self._update_mark(st, now_ms)
            if st.funding is not None and now_ms >= st.next_funding_event_ms:
                self._emit_funding(st, now_ms)
            if st.candle_dirty and now_ms - st.candle_emit_ms >= CANDLE_EVENT_INTERVAL_MS:
                self._emit_candles(st, now_ms)
            if hooks is not None:
                hooks.after_tick(st.symbol, now_ms)
            self.flush(st.symbol, now_ms)

    def _public_trade(self, st: SymbolState, now_ms: int) -> None:
        taker: Side = st.taker_side()
        maker_side: Side = "sell" if taker == "buy" else "buy"
        book = st.book
        price = st.mm.top[maker_side]
        if price is None or book.mm_at(maker_side, price) == 0:
            price = book.best_mm(maker_side)
            if price is None:
                return
        size = 1 + int(st.rng.expovariate(1.0 / st.mean_trade_lots))
        taken = book.take_mm(maker_side, price, size, now_ms)
        self.record_trade(st.symbol, taker_side=taker, price_ticks=price, size=taken,
                          maker_order_id=st.order_id(), taker_order_id=st.order_id(), now_ms=now_ms)

    def _emit_funding(self, st: SymbolState, now_ms: int) -> None:
        st.next_funding_event_ms = now_ms - now_ms % FUNDING_EVENT_INTERVAL_MS + FUNDING_EVENT_INTERVAL_MS
        self.emit(FundingRate(st.symbol, st.funding.current(now_ms)[2], now_ms))

    def _update_mark(self, st: SymbolState, now_ms: int) -> None:
        st.next_mark_ms = now_ms - now_ms % MARK_INTERVAL_MS + MARK_INTERVAL_MS
        bid, ask = st.mm.top["buy"], st.mm.top["sell"]
        mid = (bid + ask) / 2 * st.tick if bid is not None and ask is not None else st.mark
        gauss = st.rng.gauss
        st.basis += -0.05 * st.basis + gauss(0.0, 2e-5)
        index = mid / (1 + st.premium) * (1 + gauss(0.0, 5e-5))
        st.index = round(index, st.decimals + 1)
        st.mark = round(index * (1 + st.premium) * (1 + st.basis), st.decimals + 1)
        self.emit(MarkIndex(st.symbol, st.mark, st.index, now_ms))

    # -- test hook -----------------------------------------------------------------------------
    def move_price(self, symbol: str, price: float, now_ms: int, *,
                   only: str | None = None) -> dict[str, float]:
        """Put `symbol`'s price at `price` now, then run its after-tick checks (stops, liquidation).

        Default: the whole market moves there: the base currency's random walk (so contracts on
        the same coin follow at their next tick), this book (re-quoted, account orders it crosses
        fill), a public trade at the new best ask = `price` (the last price), and mark = index ×
        (1 + premium) = `price` (pushed at once). only="mark" / "index" sets just that price until
        the next 1 s mark update. No KuCoin counterpart: tests use it to cross stop levels.
        """
        st = self._state(symbol)
        if only is None:
            ticks = max(2, min(st.max_ticks - 1, st.fmt.nearest_ticks(price)))
            st.driver.log = math.log(ticks / st.p0_ticks)
            bid, ask = st.quote_prices()
            if self.hooks is not None:
                self.hooks.before_quote(symbol, bid, ask, now_ms)
            st.mm.quote(bid, ask, now_ms)
            taken = st.book.take_mm("sell", ask, 1, now_ms)
            self.record_trade(symbol, taker_side="buy", price_ticks=ask, size=max(1, taken),
                              maker_order_id=st.order_id(), taker_order_id=st.order_id(), now_ms=now_ms)
            st.basis = 0.0
            st.mark = round(st.to_float(ask), st.decimals + 1)
            st.index = round(st.mark / (1 + st.premium), st.decimals + 1)
        elif only == "mark":
            st.mark = round(price, st.decimals + 1)
        elif only == "index":
            st.index = round(price, st.decimals + 1)
        else:
            raise ValueError("only must be None, 'mark' or 'index'")
        self.emit(MarkIndex(st.symbol, st.mark, st.index, now_ms))
        if self.hooks is not None:
            self.hooks.after_tick(symbol, now_ms)
        self.flush(symbol, now_ms)
        return {"last": self.last_price(symbol), "mark": st.mark, "index": st.index}

    # -- trades and book -----------------------------------------------------------------------
    def record_trade(self, symbol: str, *, taker_side: Side, price_ticks: int, size: int,
                     maker_order_id: str, taker_order_id: str, now_ms: int) -> Trade:
        """Record a public match: last price, trade history, candles; emit Trade and TickerUpdate."""
        st = self._state(symbol)
        st.trade_seq += 1
        seq = st.trade_seq
        price = st.fmt.to_str(price_ticks)
        trade = Trade(symbol, seq, str(seq), taker_side, size, price, maker_order_id,
                      taker_order_id, now_ms * 1_000_000)
        st.last_trade = trade
        st.last_ticks = price_ticks
        st.trades.append(trade)
        self.emit(trade)
        bid_p, bid_s, ask_p, ask_s = self._best_strings(st)
        # A trade that emptied a side (a market order took it all) leaves no best quote there.
        # The notes (§10) give bestBidPrice/bestAskPrice as price strings and do not say what
        # KuCoin sends then, so no ticker is pushed rather than an invented one ("" is no price).
        # The match still goes out on the execution topic; flush() skips tickerV2 likewise.
        if bid_p and ask_p:
            self.emit(TickerUpdate(symbol, seq, taker_side, size, price, trade.trade_id, bid_p, bid_s,
                                   ask_p, ask_s, trade.ts_ns))
        st.live().add_trade(price_ticks, size, st.notional(price_ticks, size), now_ms)
        st.candle_dirty = True
        if now_ms - st.candle_emit_ms >= CANDLE_EVENT_INTERVAL_MS:
            self._emit_candles(st, now_ms)
        return trade

    def flush(self, symbol: str, now_ms: int) -> None:
        """Move the book's deltas into events; emit BestQuote when the best bid/ask changed."""
        st = self._state(symbol)
        deltas = st.book.drain_deltas()
        if not deltas:
            return
        self.events.extend(deltas)
        bbo = self._bbo(st.book)
        if bbo is not None and bbo != st.bbo:
            st.bbo = bbo
            fmt = st.fmt
            self.emit(BestQuote(symbol, st.book.sequence, fmt.to_str(bbo[0]), bbo[1],
                                fmt.to_str(bbo[2]), bbo[3], now_ms * 1_000_000))

    def depth(self, symbol: str, levels: int, now_ms: int) -> dict[str, Any]:
        """Return level2Depth5/50 push data: top `levels` of each side, prices as strings."""
        st = self._state(symbol)
        to_str = st.fmt.to_str
        return {
            "bids": [[to_str(p), s] for p, s in st.book.levels("buy", levels)],
            "asks": [[to_str(p), s] for p, s in st.book.levels("sell", levels)],
            "ts": now_ms, "timestamp": now_ms, "sequence": st.book.sequence,
        }

    @staticmethod
    def _bbo(book: Book) -> tuple[int, int, int, int] | None:
        bid, ask = book.best("buy"), book.best("sell")
        if bid is None or ask is None:
            return None
        return bid, book.size_at("buy", bid), ask, book.size_at("sell", ask)

    def _best_strings(self, st: SymbolState) -> tuple[str, int, str, int]:
        book, to_str = st.book, st.fmt.to_str
        bid, ask = book.best("buy"), book.best("sell")
        return (to_str(bid) if bid is not None else "", book.size_at("buy", bid) if bid else 0,
                to_str(ask) if ask is not None else "", book.size_at("sell", ask) if ask else 0)

    def _emit_candles(self, st: SymbolState, now_ms: int) -> None:
        st.candle_dirty = False
        st.candle_emit_ms = now_ms
        live, to_str = st.live(), st.fmt.to_str
        for granularity in GRANULARITIES:
            row = live.current(granularity)
            if row is None:
                continue
            start, o, h, low, c, volume, turnover = row
            self.emit(CandleUpdate(st.symbol, granularity, start // 1000, to_str(o), to_str(c),
                                   to_str(h), to_str(low), volume, turnover, now_ms))

    # -- contract objects and tickers ----------------------------------------------------------
    def contracts_active(self, now_ms: int) -> list[dict[str, Any]]:
        return [contract_payload(st.spec, self._contract_state(st, now_ms)) for st in self._order]

    def contract_detail(self, symbol: str, now_ms: int) -> dict[str, Any]:
        st = self._state(symbol)
        return contract_payload(st.spec, self._contract_state(st, now_ms))

    def ticker(self, symbol: str, now_ms: int) -> dict[str, Any]:
        st = self._state(symbol)
        ts_ns = max(st.last_trade.ts_ns, st.book.ts_ms * 1_000_000)
        return ticker_payload(st.last_trade, self._best_strings(st), ts_ns)

    def all_tickers(self, now_ms: int) -> list[dict[str, Any]]:
        return [self.ticker(symbol, now_ms) for symbol in self._states]

    def _contract_state(self, st: SymbolState, now_ms: int) -> ContractState:
        rows = self._stats_rows(st, now_ms)
        opened = rows[0][1]
        last = st.last_ticks
        funding = st.funding.current(now_ms) if st.funding is not None else None
        return ContractState(
            last_price=st.to_float(last), high_price=st.to_float(max(r[2] for r in rows)),
            low_price=st.to_float(min(r[3] for r in rows)), price_chg=st.to_float(last - opened),
            price_chg_pct=round((last - opened) / opened, 4),
            volume_24h=round(sum(r[5] for r in rows) * abs(st.spec.multiplier), 6),
            turnover_24h=round(sum(r[6] for r in rows), 6),
            open_interest=open_interest(st.oi_phase, st.daily_lots * 0.5, now_ms),
            mark_price=st.mark, index_price=st.index,
            funding_rate=funding[2] if funding else None,
            predicted_funding_rate=funding[3] if funding else None,
            next_funding_countdown_ms=max(1, funding[1] - now_ms) if funding else None,
            buy_limit=st.to_float(round(st.mark * (1 + PRICE_LIMIT) / st.tick)),
            sell_limit=st.to_float(round(st.mark * (1 - PRICE_LIMIT) / st.tick)),
        )

    def _stats_rows(self, st: SymbolState, now_ms: int) -> list:
        # 24 h statistics = the newest 24 one-hour candles (the in-progress one included), so
        # contract objects agree with GET /api/v1/kline/query?granularity=60
        hi = period_start(max(now_ms, self.anchor_ms), 60)
        return self._rows(st, 60, hi - 23 * 3_600_000, hi)
