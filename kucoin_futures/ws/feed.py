"""From received frames to cache updates: the WebSocket thread's market-data dispatcher.

Internal to ``kucoin_websocket``. No sockets and no clock reads (``now`` comes in), but not
thread-safe: one ``MarketFeed`` lives on the WebSocket thread and is the only writer of the
ticker and candle pushes into the caches (order books: ``kucoin_bookfeed.BookFeed``, ``.books``).
Its hot path is ``on_data``: orjson decodes the frame once, the subject picks a handler, the
handler builds the frozen value and stores it with one dict assignment under the cache's short
lock, then callbacks run outside any lock. ``fast_ticker_v2`` is the protocol layer's parser
minus its generality (memoised symbols, no regex); on anything unusual it hands the message to
``parse_ticker_v2``, so both paths give equal values and raise the same ``ProtocolError``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from kucoin_futures.ws.bookfeed import BookFeed
from kucoin_futures.ws.caches import CandleCache, OrderBookCache, TickerCache
from kucoin_futures.ws.owner import Owner
from kucoin_futures.protocol.candles import slots_constructor
from kucoin_futures.errors import ProtocolError
from kucoin_futures.protocol.parse import parse_candle, parse_ticker, parse_ticker_v2
from kucoin_futures.protocol.types import Candle, OrderBook, Ticker
from kucoin_futures.protocol.wire import parse_candle_topic

__all__ = ["MarketFeed", "PushHandler", "fast_ticker_v2"]

log = logging.getLogger(__name__)

MALFORMED_LOG_INTERVAL_S = 1.0  # at most one WARNING per second for a stream of bad frames
_WEBSOCKET = "websocket"
_INF = float("inf")
_loads = orjson.loads
_new_ticker = slots_constructor(Ticker)
PushHandler = Callable[[dict[str, Any], float, object], None]  # (decoded push, now, connection)


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
        bid_price = data["bestBidPrice"]
        ask_price = data["bestAskPrice"]
        # The wire sends prices as strings: float(True) would be 1.0, so the type is checked.
        if type(bid_size) is not int or type(ask_size) is not int or type(ts_ns) is not int \
                or type(sequence) is not int or type(bid_price) is not str or type(ask_price) is not str:
            raise TypeError
        bid = float(bid_price)
        ask = float(ask_price)
        # One chained comparison refuses zero, negative, crossed and infinite prices and nan
        # (every comparison with nan is false); the slow path then raises saying which.
        if not 0.0 < bid <= ask < _INF or bid_size < 0 or ask_size < 0:
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


class MarketFeed:
    """Dispatch market pushes into the caches: tickers and candles here, books in ``books``.

    Args:
        owner: hears ``on_snapshot_needed(kucoin_id)`` when a book needs a REST snapshot, and
            ``on_period_closed(topic, start_ms)`` (the start of the newest period) when a push
            for a later period arrives (the owner re-reads the closed one from REST).
        on_ticker, on_candle, on_order_book: user callbacks, run after the cache update and
            outside every lock; an exception is logged and the feed continues.
        book_depth: levels per side kept in published books (None: all).
        push_handlers: subject -> ``handler(message, now, connection)`` for pushes of other
            subjects (the private feed's); a ``ProtocolError`` it raises counts as malformed.
    """

    def __init__(
        self,
        *,
        tickers: TickerCache,
        candles: CandleCache,
        books: OrderBookCache,
        owner: Owner,
        on_ticker: Callable[[Ticker], object] | None = None,
        on_candle: Callable[[str, str, Candle], object] | None = None,
        on_order_book: Callable[[OrderBook], object] | None = None,
        book_depth: int | None = None,
        push_handlers: Mapping[str, PushHandler] | None = None,
    ) -> None:
        self._tickers = tickers
        self._candles = candles
        self._period_closed = owner.on_period_closed
        self._on_ticker = on_ticker
        self._on_candle = on_candle
        self.books = BookFeed(cache=books, request_snapshot=owner.on_snapshot_needed, on_order_book=on_order_book,
                              depth=book_depth)
        self._ticker_ids: dict[str, str] = {}  # KuCoin id -> unified, for wanted tickers only
        self._wanted_tickers: set[str] = set()
        self._last_trade: dict[str, tuple[float, int]] = {}  # KuCoin id -> (price, size) from ticker v1
        self._candle_keys: dict[str, tuple[str, str]] = {}  # wanted candle topic -> (symbol, timeframe)
        self._last_pushed: dict[str, int] = {}  # candle topic -> start of the newest period pushed
        self._handlers: dict[str, Callable[[dict[str, Any], float, object], None]] = {
            "tickerV2": self._on_ticker_v2,
            "ticker": self._on_ticker_v1,
            "level2": self.books.on_level2,
            "candle.stick": self._on_candle_push,
        }
        for subject, handler in (push_handlers or {}).items():  # other subjects (the private feed's)
            self._handlers.setdefault(subject, handler)
        self.end_of_batch = self.books.end_of_batch  # books are published once per socket read
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
        self._last_pushed.pop(topic, None)
        if key is not None:
            self._candles.discard(key)

    def hide_candles(self, topics: Iterable[str]) -> None:
        """Hold back the series of these topics until their REST refill (a socket was lost)."""
        for topic in topics:
            key = self._candle_keys.get(topic)
            if key is not None:
                self._candles.hide(key)

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
            return None
        try:
            handler = self._handlers.get(message.get("subject"))
            topic = message.get("topic")
            stat = self.topic_stats.get(topic)  # here, where an unhashable topic is caught
        except (AttributeError, TypeError):  # JSON, but not an object (or an unhashable subject/topic)
            self.note_malformed(raw, now, "not a JSON object with a subject and a topic")
            return True
        if handler is None:
            return False
        try:
            handler(message, now, source)
        except ProtocolError as exc:
            self.note_malformed(raw, now, str(exc))
            return True
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

    # -- handlers -------------------------------------------------------------------------------
    def _on_ticker_v2(self, message: dict[str, Any], now: float, source: object) -> None:
        ticker = fast_ticker_v2(message, now, self._ticker_ids, self._last_trade)
        if ticker.symbol in self._wanted_tickers:
            self._tickers.put(ticker)
            if self._on_ticker is not None:
                try:  # _safe_call inlined: this runs once per tickerV2 push
                    self._on_ticker(ticker)
                except Exception:  # a user bug must not kill the feed
                    log.exception("callback %r raised; the feed continues", self._on_ticker)

    def _on_ticker_v1(self, message: dict[str, Any], now: float, source: object) -> None:
        ticker = parse_ticker(message, received_at=now)
        if ticker.symbol not in self._wanted_tickers:
            return  # not (or no longer) subscribed
        if ticker.last is not None and ticker.last_size is not None:
            self._last_trade[message["data"]["symbol"]] = (ticker.last, ticker.last_size)
        self._tickers.put(ticker)
        if self._on_ticker is not None:
            _safe_call(self._on_ticker, ticker)

    def _on_candle_push(self, message: dict[str, Any], now: float, source: object) -> None:
        key = self._candle_keys.get(message.get("topic"))  # type: ignore[arg-type]
        if key is None:
            parse_candle_topic(str(message.get("topic")))  # raises ProtocolError if garbage
            return
        candle = parse_candle(message, received_at=now)
        topic = message["topic"]
        # KuCoin pushes a candle at most once a second and never marks one closed, so the last
        # trades of a period may never be pushed for it: when a push opens a later period than
        # the last one pushed, the owner re-reads the closed period(s) from REST. The last period
        # *pushed* is the reference, not the newest held: REST may have added the newer period
        # first (a fetch across a period boundary), which would hide the roll.
        last_pushed_ms = self._last_pushed.get(topic)
        previous_ms = last_pushed_ms if last_pushed_ms is not None else self._candles.last_start_ms(*key)
        self._candles.update(key[0], key[1], candle)
        if last_pushed_ms is None or candle.ts_ms > last_pushed_ms:
            self._last_pushed[topic] = candle.ts_ms
        if previous_ms is not None and candle.ts_ms > previous_ms:
            self._period_closed(topic, previous_ms)
        if self._on_candle is not None:
            _safe_call(self._on_candle, key[0], key[1], candle)


def _safe_call(callback: Callable[..., object], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:  # a user bug must not kill the feed
        log.exception("callback %r raised; the feed continues", callback)
