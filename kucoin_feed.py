"""From received frames to cache updates: the WebSocket thread's market-data dispatcher.

No sockets and no clock reads (``now`` comes in), but not thread-safe: one ``MarketFeed`` lives
on the WebSocket thread and is the only writer of the ticker and order-book caches. Its hot path
is ``on_data``: orjson decodes the frame once, the subject picks a handler, the handler builds
the frozen value and stores it with one dict assignment under the cache's short lock, then
callbacks run outside any lock. ``fast_ticker_v2`` and ``fast_level2`` are the protocol layer's
parsers minus their generality (memoised symbols, no regex); on anything unusual they hand the
message to ``parse_ticker_v2`` / ``parse_level2``, so both paths give equal values and errors.

Order books follow KuCoin's procedure (protocol notes section 11.1) through ``L2Book``: a book is
attached to the connection whose subscribe was acknowledged, buffers that connection's deltas,
and asks its owner for a REST snapshot (``request_snapshot``); a gap, a sequence regression or a
crossed book after a batch of deltas drops the book from the cache and asks for a new snapshot
(a resync, counted). A book is published at most once per socket read (``end_of_batch``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from kucoin_cache import CandleCache, OrderBookCache, TickerCache
from kucoin_candles import slots_constructor
from kucoin_protocol import (
    TOPIC_CANDLE,
    TOPIC_LEVEL2,
    BookDelta,
    BookStatus,
    Candle,
    L2Book,
    OrderBook,
    ProtocolError,
    Side,
    Ticker,
    WsSession,
    parse_candle,
    parse_candle_topic,
    parse_level2,
    parse_ticker,
    parse_ticker_v2,
)

__all__ = ["FeedSession", "MarketFeed", "fast_level2", "fast_ticker_v2"]

log = logging.getLogger(__name__)

MALFORMED_LOG_INTERVAL_S = 1.0  # at most one WARNING per second for a stream of bad frames
_LEVEL2_PREFIX = TOPIC_LEVEL2 + ":"
_CANDLE_PREFIX = TOPIC_CANDLE + ":"
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_WEBSOCKET = "websocket"
_loads = orjson.loads


_new_ticker = slots_constructor(Ticker)
_new_delta = slots_constructor(BookDelta)


class FeedSession(WsSession):
    """``WsSession`` that also accepts "a data frame arrived" without decoding it again."""

    def note_alive(self, now: float) -> None:
        """Count a market push handled outside ``on_text`` as a sign of life at ``now``."""
        # WsSession updates its liveness only in on_text; the hot path decodes pushes itself.
        self._last_message_at = now


# -- Fast parsers -------------------------------------------------------------------------------
def fast_ticker_v2(message: dict[str, Any], received_at: float, symbols: dict[str, str],
                   last_trades: dict[str, tuple[float, int]]) -> Ticker:
    """Return ``parse_ticker_v2(message)`` completed with the last trade of ``last_trades``.

    ``symbols`` maps the KuCoin ids we expect to unified symbols (a miss takes the slow path);
    ``last_trades`` maps KuCoin ids to (price, size) of the latest trade seen on ``ticker``.
    """
    try:
        data = message["data"]
        kucoin_id = data["symbol"]
        symbol = symbols[kucoin_id]
        bid_size = data["bestBidSize"]
        ask_size = data["bestAskSize"]
        ts_ns = data["ts"]
        sequence = data["sequence"]
        if type(bid_size) is not int or type(ask_size) is not int or type(ts_ns) is not int \
                or type(sequence) is not int:
            raise TypeError
        bid = float(data["bestBidPrice"])
        ask = float(data["bestAskPrice"])
        if bid - bid or ask - ask:  # nan or inf: x - x is nan (truthy) only for those
            raise ValueError
        last = last_trades.get(kucoin_id)
    except (KeyError, TypeError, ValueError):
        return _slow_ticker_v2(message, received_at, last_trades)
    if last is None:
        return _new_ticker(symbol, bid, bid_size, ask, ask_size, None, None, ts_ns // 1_000_000,
                      received_at, _WEBSOCKET, sequence)
    return _new_ticker(symbol, bid, bid_size, ask, ask_size, last[0], last[1], ts_ns // 1_000_000,
                  received_at, _WEBSOCKET, sequence)


def _slow_ticker_v2(message: dict[str, Any], received_at: float,
                    last_trades: dict[str, tuple[float, int]]) -> Ticker:
    ticker = parse_ticker_v2(message, received_at=received_at)
    last = last_trades.get(message["data"]["symbol"])
    if last is None:
        return ticker
    return Ticker(ticker.symbol, ticker.bid, ticker.bid_size, ticker.ask, ticker.ask_size, last[0],
                  last[1], ticker.ts_ms, received_at, _WEBSOCKET, ticker.sequence)


def fast_level2(message: dict[str, Any], symbol: str) -> BookDelta:
    """Return ``parse_level2(message)`` for a push already known to be ``symbol``'s."""
    try:
        data = message["data"]
        sequence = data["sequence"]
        ts_ms = data["timestamp"]
        price, side, size = data["change"].split(",")
        if type(sequence) is not int or type(ts_ms) is not int:
            raise TypeError
        price_f = float(price)
        if price_f - price_f:
            raise ValueError
        return _new_delta(symbol, sequence, price_f, _SIDES[side], int(size), ts_ms)
    except (KeyError, TypeError, ValueError, AttributeError):
        return parse_level2(message, received_at=0.0)


class _Book:
    """One symbol's level-2 state on the WebSocket thread."""

    __slots__ = ("book", "kucoin_id", "live", "resyncs", "source", "symbol")

    def __init__(self, symbol: str, kucoin_id: str) -> None:
        self.symbol = symbol
        self.kucoin_id = kucoin_id
        self.book = L2Book(symbol)
        self.source: object | None = None  # the connection whose deltas feed this book
        self.live = False  # a live delta was applied since the last snapshot
        self.resyncs = 0


class MarketFeed:
    """Dispatch market pushes into the caches and keep level-2 books in sync.

    Args:
        request_snapshot: called with a KuCoin id when its book needs a REST snapshot (the
            owner fetches it off-thread, calls ``apply_snapshot`` and retries while
            ``book_needs_snapshot`` says so).
        period_closed: called with a candle topic and the start of its newest period when a
            push for a later period arrives (the owner re-reads the closed one from REST).
        on_ticker, on_candle, on_order_book: user callbacks, run after the cache update and
            outside every lock; an exception is logged and the feed continues.
        book_depth: levels per side kept in published books (None: all).
    """

    def __init__(
        self,
        *,
        tickers: TickerCache,
        candles: CandleCache,
        books: OrderBookCache,
        request_snapshot: Callable[[str], object],
        period_closed: Callable[[str, int], object] = lambda topic, start_ms: None,
        on_ticker: Callable[[Ticker], object] | None = None,
        on_candle: Callable[[str, str, Candle], object] | None = None,
        on_order_book: Callable[[OrderBook], object] | None = None,
        book_depth: int | None = None,
    ) -> None:
        self._tickers = tickers
        self._candles = candles
        self._books = books
        self._request_snapshot = request_snapshot
        self._period_closed = period_closed
        self._on_ticker = on_ticker
        self._on_candle = on_candle
        self._on_order_book = on_order_book
        self._book_depth = book_depth
        self._ticker_ids: dict[str, str] = {}  # KuCoin id -> unified, for wanted tickers only
        self._wanted_tickers: set[str] = set()
        self._last_trade: dict[str, tuple[float, int]] = {}  # KuCoin id -> (price, size) from ticker v1
        self._candle_keys: dict[str, tuple[str, str]] = {}  # wanted candle topic -> (symbol, timeframe)
        self._book_ids: dict[str, _Book] = {}  # KuCoin id -> book, for wanted books
        self._dirty: dict[str, _Book] = {}
        self._handlers: dict[str, Callable[[dict[str, Any], float, object], None]] = {
            "tickerV2": self._on_ticker_v2,
            "ticker": self._on_ticker_v1,
            "level2": self._on_level2,
            "candle.stick": self._on_candle_push,
        }
        self.topic_stats: dict[str, list[Any]] = {}  # topic -> [message count, last received_at]
        self.malformed = 0
        self._malformed_logged_at = float("-inf")

    # -- what to keep (called by the owner on the WebSocket thread) -----------------------------
    def want_ticker(self, symbol: str, kucoin_id: str) -> None:
        """Accept ticker pushes of ``symbol``."""
        self._ticker_ids[kucoin_id] = symbol
        self._wanted_tickers.add(symbol)

    def unwant_ticker(self, symbol: str, kucoin_id: str) -> None:
        """Ignore ticker pushes of ``symbol`` and forget its cached ticker."""
        self._ticker_ids.pop(kucoin_id, None)
        self._wanted_tickers.discard(symbol)
        self._last_trade.pop(kucoin_id, None)
        self._tickers.discard(symbol)

    def want_candles(self, topic: str, symbol: str, timeframe: str) -> None:
        """Accept candle pushes on ``topic``."""
        self._candle_keys[topic] = (symbol, timeframe)

    def unwant_candles(self, topic: str) -> None:
        """Ignore candle pushes on ``topic`` and forget its cached series."""
        key = self._candle_keys.pop(topic, None)
        if key is not None:
            self._candles.discard(key)

    def want_book(self, symbol: str, kucoin_id: str) -> None:
        """Keep a level-2 book of ``symbol`` (it syncs once a connection is attached)."""
        if kucoin_id not in self._book_ids:
            self._book_ids[kucoin_id] = _Book(symbol, kucoin_id)

    def unwant_book(self, kucoin_id: str) -> None:
        """Drop the book of ``kucoin_id`` and its cached snapshot."""
        state = self._book_ids.pop(kucoin_id, None)
        if state is not None:
            self._dirty.pop(state.symbol, None)
            self._books.discard(state.symbol)

    def attach_book(self, kucoin_id: str, source: object) -> None:
        """Feed the book from ``source`` (its level-2 subscribe was acked there) and resync it."""
        state = self._book_ids.get(kucoin_id)
        if state is None:
            return
        state.source = source
        self._restart(state, resync=False)

    def detach(self, source: object) -> None:
        """``source`` is gone: every book it fed is out of sync until re-attached."""
        for state in self._book_ids.values():
            if state.source is source:
                state.source = None
                state.book.reset()
                state.live = False
                self._dirty.pop(state.symbol, None)
                self._books.discard(state.symbol)

    def book_needs_snapshot(self, kucoin_id: str) -> bool:
        """True if the book is wanted, attached and still waiting for a usable snapshot."""
        state = self._book_ids.get(kucoin_id)
        return state is not None and state.source is not None and not state.book.is_synced

    def apply_snapshot(self, snapshot: OrderBook, kucoin_id: str, now: float) -> BookStatus | None:
        """Load a REST snapshot into the book; ``GAP`` means fetch a newer one (None: not wanted)."""
        state = self._book_ids.get(kucoin_id)
        if state is None or state.source is None:
            return None
        if state.book.is_synced:
            return BookStatus.STALE  # a resync raced a later snapshot; the book is fine
        status = state.book.apply_snapshot(snapshot)
        if status is BookStatus.OK:
            state.live = False
            self._dirty[state.symbol] = state
            self.end_of_batch(now)
        return status

    def resync_counts(self) -> dict[str, int]:
        """Return resyncs per unified symbol (gaps, regressions, crossed books)."""
        return {state.symbol: state.resyncs for state in list(self._book_ids.values())}  # any thread

    # -- the hot path ---------------------------------------------------------------------------
    def on_data(self, raw: bytes, now: float, source: object) -> bool | None:
        """Handle one frame if it is a market push (True); False for any other JSON object.

        None means "not JSON": the caller knows the frame type (a CLOSE frame is not JSON) and
        calls ``note_malformed`` for a bad text frame. A push that fails to parse is counted and
        logged here (rate-limited). Neither stops the feed.
        """
        try:
            message = _loads(raw)
        except orjson.JSONDecodeError:
            return None  # the caller decides: a CLOSE frame, or a malformed text frame
        try:
            handler = self._handlers.get(message.get("subject"))
        except (AttributeError, TypeError):  # JSON, but not an object (or an unhashable subject)
            self.note_malformed(raw, now, "not a JSON object with a subject")
            return True
        if handler is None:
            return False
        try:
            handler(message, now, source)
        except ProtocolError as exc:
            self.note_malformed(raw, now, str(exc))
            return True
        topic = message.get("topic")
        stat = self.topic_stats.get(topic)
        if stat is None:
            self.topic_stats[topic] = [1, now]
        else:
            stat[0] += 1
            stat[1] = now
        return True

    def note_malformed(self, raw: bytes, now: float, why: str) -> None:
        """Count a malformed frame; log it unless one was logged within the last second."""
        self.malformed += 1
        if now - self._malformed_logged_at >= MALFORMED_LOG_INTERVAL_S:
            self._malformed_logged_at = now
            log.warning("! ignored malformed frame (%d so far): %s: %.120r", self.malformed, why, raw)

    def end_of_batch(self, now: float) -> None:
        """Publish the books changed since the last call (once per socket read)."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        published: list[OrderBook] = []
        for state in dirty.values():
            book = state.book.snapshot(received_at=now, depth=self._book_depth)
            if book is None:
                continue
            if book.bids and book.asks and book.bids[0][0] >= book.asks[0][0]:
                log.warning("! %s book crossed at sequence %d (bid %s >= ask %s): resync",
                            state.symbol, book.sequence, book.bids[0][0], book.asks[0][0])
                self._restart(state, resync=True)
                continue
            self._books.put(book)
            published.append(book)
        if self._on_order_book is not None:
            for book in published:
                _safe_call(self._on_order_book, book)

    # -- handlers -------------------------------------------------------------------------------
    def _on_ticker_v2(self, message: dict[str, Any], now: float, source: object) -> None:
        ticker = fast_ticker_v2(message, now, self._ticker_ids, self._last_trade)
        if ticker.symbol in self._wanted_tickers:
            self._tickers.put(ticker)
            if self._on_ticker is not None:
                _safe_call(self._on_ticker, ticker)

    def _on_ticker_v1(self, message: dict[str, Any], now: float, source: object) -> None:
        ticker = parse_ticker(message, received_at=now)
        if ticker.symbol not in self._wanted_tickers:
            return  # not (or no longer) subscribed
        if ticker.last is not None and ticker.last_size is not None:
            self._last_trade[message["data"]["symbol"]] = (ticker.last, ticker.last_size)
        self._tickers.put(ticker)
        if self._on_ticker is not None:
            _safe_call(self._on_ticker, ticker)

    def _on_level2(self, message: dict[str, Any], now: float, source: object) -> None:
        topic = message.get("topic")
        if type(topic) is not str or not topic.startswith(_LEVEL2_PREFIX):
            return  # level2Depth5/50 share the subject; we never subscribe to them
        state = self._book_ids.get(topic[len(_LEVEL2_PREFIX):])
        if state is None or state.source is not source:
            return  # not wanted, or a connection that does not feed this book (renewal overlap)
        delta = fast_level2(message, state.symbol)
        status = state.book.apply(delta)
        if status is BookStatus.OK:
            state.live = True
            self._dirty[state.symbol] = state
        elif status is BookStatus.GAP:
            log.warning("! %s level2 gap before sequence %d: resync", state.symbol, delta.sequence)
            self._restart(state, resync=True, keep_buffer=True)
        elif status is BookStatus.STALE and state.live:
            log.warning("! %s level2 sequence went back to %d: resync", state.symbol, delta.sequence)
            self._restart(state, resync=True)

    def _on_candle_push(self, message: dict[str, Any], now: float, source: object) -> None:
        key = self._candle_keys.get(message.get("topic"))  # type: ignore[arg-type]
        if key is None:
            parse_candle_topic(str(message.get("topic")))  # raises ProtocolError if garbage
            return
        candle = parse_candle(message, received_at=now)
        previous_start_ms = self._candles.last_start_ms(key[0], key[1])
        self._candles.update(key[0], key[1], candle)
        if previous_start_ms is not None and candle.ts_ms > previous_start_ms:
            # KuCoin pushes a candle at most once a second and never marks one closed, so the
            # last trades of the period just closed may never have been pushed: the owner
            # confirms it from REST.
            self._period_closed(message["topic"], previous_start_ms)
        if self._on_candle is not None:
            _safe_call(self._on_candle, key[0], key[1], candle)

    # -- resync -------------------------------------------------------------------------------
    def _restart(self, state: _Book, *, resync: bool, keep_buffer: bool = False) -> None:
        if resync:
            state.resyncs += 1
        if not keep_buffer:
            state.book.reset()  # L2Book already reset itself on a gap and kept the delta
        state.live = False
        self._dirty.pop(state.symbol, None)
        self._books.discard(state.symbol)
        if state.source is not None:
            self._request_snapshot(state.kucoin_id)


def _safe_call(callback: Callable[..., object], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:  # a user bug must not kill the feed
        log.exception("callback %r raised; the feed continues", callback)
