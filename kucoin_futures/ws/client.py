"""KuCoin Futures market data over WebSocket, kept fresh by one background thread.

``KuCoinWebSocket`` keeps tickers, candles and level-2 order books of the symbols you subscribe
in lock-guarded caches that any thread reads in microseconds, and never hands out a value older
than the ``max_age_s`` you pass. Symbols are ccxt unified symbols ("BTC/USDT:USDT"); timeframes
are ccxt's ("1m" ... "1w")::

    with KuCoinWebSocket() as ws:                      # start() ... stop()
        ws.subscribe_ticker("BTC/USDT:USDT")
        ws.subscribe_candles("BTC/USDT:USDT", "1m")     # 500 candles of REST history, then live
        ws.subscribe_order_book("BTC/USDT:USDT")        # REST snapshot + level-2 deltas
        ticker = ws.wait_for_ticker("BTC/USDT:USDT", timeout_s=0.5)   # first value, or None
        book = ws.get_order_book("BTC/USDT:USDT", max_age_s=2.0, depth=20)  # None if older
        closes = ws.get_candles("BTC/USDT:USDT", "1m", max_age_s=90).closes  # float64 memoryview

Public API (every method is thread-safe and synchronous):

    KuCoinWebSocket(*, rest_url, token_provider, rest_get, rest_timeout_s, rest_threads, rest, transport, clock,
                    wall_clock, rng, max_candles, max_topics_per_connection, renew_after_s,
                    connect_timeout_s, backoff_initial_s, backoff_cap_s, book_depth,
                    confirm_closed_candles_after_s, gil_switch_interval_s, max_ping_interval_s, on_ticker,
                    on_candle, on_order_book, name)
    start() -> self / stop(timeout_s=2.0) / with-statement   state -> State, is_healthy() -> bool
    transport -> str ("picows" or "websocket-client": the library carrying the sockets)
    subscribe_ticker(symbol, *, last_trade=True)  unsubscribe_ticker(symbol)
    subscribe_candles(symbol, timeframe)          unsubscribe_candles(symbol, timeframe)
    subscribe_order_book(symbol)                  unsubscribe_order_book(symbol)
    subscribe_topics(topics)                      raw topics; their pushes go to push_handlers
    get_ticker(symbol, *, max_age_s) -> Ticker | None
    get_candles(symbol, timeframe, *, max_age_s, limit=None) -> CandleSeries | None
    get_order_book(symbol, *, max_age_s, depth=None) -> OrderBook | None
    wait_for_ticker / wait_for_candles / wait_for_order_book(..., timeout_s=0.5, max_age_s=inf)
    stats() -> FeedStats

``CandleSeries`` (kucoin_candles) is an immutable sequence of ``Candle`` kept in arrays (57
bytes a candle instead of ~300, invisible to the garbage collector); ``ohlcv()`` gives ccxt rows
and ``opens``/``highs``/``lows``/``closes``/``volumes``/``ts_ms`` read-only memoryviews.

Freshness: ``received_at`` (injected monotonic clock) of a ticker or book is when it last
changed; of a candle series, when a push or a REST merge last changed it. A book that lost sync
(gap, crossed, disconnected) is removed at once, whatever its age. A candle series is served
only once its REST history is in, and is held back from a lost connection until the refill (so
it never has a hole); each closed period is re-read from REST (KuCoin may not push its last
trades).

Threads: one WebSocket thread runs an asyncio loop with picows (Cython; many frames per socket
read, so the reader keeps up while another thread computes; with ``transport="websocket-client"``
each socket has a reader thread that hands the frames of each read to that loop). The REST the feed needs (bullet
tokens, level-2 snapshots, kline history; the books of a reconnect are fetched together) is
submitted to a priority scheduler, most urgent first, and awaited on the loop: ``KuCoinClient``'s
own (``rest=``, one pool for all of a client's REST), else ``rest_threads`` worker threads of the
WebSocket's own. Callbacks run on the WebSocket
thread after the cache update, outside every lock; one that raises is logged and ignored. Keep
them short and never call REST from them.

Reconnects: every attempt fetches a fresh token; a connection that had all its acks is reopened
at once (at most 5 times a minute), failed attempts wait ``backoff()`` delays (the first under
``backoff_initial_s``, then doubling up to ``backoff_cap_s``, jittered): ``ReconnectDelays``. A connection is dropped when ``WsSession.dead_reason`` says so
(no pong within pingTimeout, no frame for pingInterval + pingTimeout, no welcome, no ack) and
renewed with a new token after ``renew_after_s`` (subscribed before the old one closes).
"""
from __future__ import annotations

import asyncio
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from kucoin_futures.protocol.wire import DEFAULT_FUTURES_URL, split_topic
from kucoin_futures.ws.caches import CandleCache, OrderBookCache, TickerCache
from kucoin_futures.protocol.candles import CandleSeries
from kucoin_futures.errors import ClientClosed, InvalidArgument
from kucoin_futures.protocol.types import (
    Candle,
    OrderBook,
    Ticker,
    WsEndpoint,
    timeframe_to_candle_type,
    to_kucoin_id,
)
from kucoin_futures.rest.public import DEFAULT_REST_TIMEOUT_S, RestGet
from kucoin_futures.ws.feed import PushHandler
from kucoin_futures.ws.subscriptions import Callbacks, Engine, FeedStats, State, TopicStats
from kucoin_futures.ws.links import LinkConfig
from kucoin_futures.ws.rest_port import LocalRest, RestPort
from kucoin_futures.ws.transports import AUTO, resolve_transport

__all__ = ["CandleSeries", "FeedStats", "KuCoinWebSocket", "State", "TopicStats"]

log = logging.getLogger(__name__)

DEFAULT_REST_URL = DEFAULT_FUTURES_URL
DEFAULT_WAIT_S = 0.5  # the product's default wait for a first value after a subscribe
DEFAULT_STOP_TIMEOUT_S = 2.0
# The token lives 24 h and KuCoin closes connections after that (protocol notes section 9.1);
# renewing at 23 h leaves an hour for a renewal that fails to be retried.
DEFAULT_RENEW_AFTER_S = 23 * 3600.0
# KuCoin's documents disagree on a per-connection topic cap (notes sections 9.5 and 16): docs-new
# say none, the error-code page 300, the classic futures docs 100. We take the futures docs' 100:
# too low costs a few more sockets (800 per user allowed, 30 new per minute), too high would lose
# topics silently. Subscribe messages carry at most 100 topics in any case.
DEFAULT_MAX_TOPICS_PER_CONNECTION = 100
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_REST_THREADS = 4  # REST calls of the feed in flight at once (bullet, snapshots, klines)
# KuCoin pushes a candle at most once a second and never marks it closed (notes section 10), so
# the last trades of a period may never be pushed for it; this long after the first push of the
# next period, the closed one is re-read from REST (one kline request per series and period).
DEFAULT_CONFIRM_DELAY_S = 2.0
INFINITY = float("inf")
STOP_EXECUTOR_S = 0.5  # a DNS lookup still running at stop is not waited for longer


class KuCoinWebSocket:
    """Public KuCoin Futures market data, cached and kept fresh by a background thread.

    Args:
        rest_url: REST base for the default token provider and fetcher.
        token_provider: returns a fresh ``WsEndpoint`` (default: POST bullet-public on rest_url).
        rest_get: ``(path, params) -> decoded JSON envelope`` for kline history and level-2
            snapshots (default: stdlib HTTP on ``rest_url`` with ``rest_timeout_s``).
        rest_threads: how many of those calls may run at once (one thread each).
        rest: a ``RestPort`` (``submit_get``, ``submit_token``) to use instead of the above: the
            scheduler of a ``KuCoinClient`` (its ``RestGateway``), so that one pool runs all REST.
        transport: the WebSocket library: "picows" (Cython, many frames per socket read),
            "websocket-client" (pure Python, a reader thread per socket; for platforms without a
            picows wheel) or "auto" (picows if it imports, else websocket-client).
        clock: monotonic seconds for ``received_at`` and staleness.
        wall_clock: epoch seconds, for the time ranges of REST kline history.
        rng: randomness for backoff jitter.
        max_candles: candles kept per symbol and timeframe.
        max_topics_per_connection: topics per socket before another socket is opened.
        renew_after_s: reconnect with a new token after this long (tokens live 24 h).
        connect_timeout_s: TCP connect and WebSocket handshake timeout, each.
        backoff_initial_s, backoff_cap_s: reconnect delays (see ``kucoin_protocol.backoff``).
        book_depth: levels per side kept in published order books (None: the whole book).
        confirm_closed_candles_after_s: re-read each closed candle from REST this long after
            the next period's first push (None: never; then a closed candle may miss the
            trades of its last second, which KuCoin does not push).
        gil_switch_interval_s: if set, ``start()`` calls ``sys.setswitchinterval`` with it and
            ``stop()`` restores the old value. Process-wide: how long a thread waiting for the
            GIL lets the running one go on (CPython's default is 5 ms). While another thread
            computes, each socket read of ours waits up to that long; 0.0005 keeps the
            send-to-visible latency near 1 ms instead of 5-10 ms.
        max_ping_interval_s: ping at least this often, whatever the server's pingInterval, so a
            quiet connection still proves it is alive (``stats().quiet_s``; the private feed).
        on_ticker, on_candle, on_order_book: callbacks ``(Ticker)``, ``(symbol, timeframe,
            Candle)``, ``(OrderBook)``, run on the WebSocket thread after each cache update.
        push_handlers: subject -> ``handler(message, now, connection)`` for the pushes of other
            subjects (``subscribe_topics``; the private feed's), run on the WebSocket thread.
        on_state: ``(State)``, run on the WebSocket thread when the state moves between
            CONNECTING, RUNNING and RECONNECTING (not at stop).
        name: prefix of thread names and connectIds.
    """

    def __init__(
        self,
        *,
        # where to connect
        rest_url: str = DEFAULT_REST_URL,
        token_provider: Callable[[], WsEndpoint] | None = None,
        rest_get: RestGet | None = None,
        rest_timeout_s: float = DEFAULT_REST_TIMEOUT_S,
        rest_threads: int = DEFAULT_REST_THREADS,
        rest: RestPort | None = None,
        transport: str = AUTO,
        # time and randomness
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        # limits and policy
        max_candles: int = 500,
        max_topics_per_connection: int = DEFAULT_MAX_TOPICS_PER_CONNECTION,
        renew_after_s: float = DEFAULT_RENEW_AFTER_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        backoff_initial_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        book_depth: int | None = None,
        confirm_closed_candles_after_s: float | None = DEFAULT_CONFIRM_DELAY_S,
        gil_switch_interval_s: float | None = None,
        max_ping_interval_s: float | None = None,
        # callbacks
        on_ticker: Callable[[Ticker], object] | None = None,
        on_candle: Callable[[str, str, Candle], object] | None = None,
        on_order_book: Callable[[OrderBook], object] | None = None,
        push_handlers: Mapping[str, PushHandler] | None = None,
        on_state: Callable[[State], object] | None = None,
        name: str = "kucoin-ws",
    ) -> None:
        _check_options(max_topics_per_connection, renew_after_s, connect_timeout_s, book_depth,
                       gil_switch_interval_s, rest_threads, max_ping_interval_s)
        connection_class = resolve_transport(transport)  # InvalidArgument now; imports, no I/O
        self._transport = connection_class.NAME
        self._transport_choice = f"{self._transport} (auto)" if transport == AUTO else self._transport
        # No I/O and no thread until the first call; stop() closes it only if it is ours.
        self._own_rest = None if rest is not None else LocalRest(
            rest_url=rest_url, rest_get=rest_get, token_provider=token_provider, timeout_s=rest_timeout_s,
            threads=rest_threads, name=f"{name}-rest")
        self._clock = clock
        self._name = name
        self._switch_interval_s = gil_switch_interval_s
        self._previous_switch_interval_s: float | None = None
        self._tickers = TickerCache(clock=clock)
        self._candles = CandleCache(clock=clock, max_candles=max_candles)
        self._books = OrderBookCache(clock=clock)
        rng = rng if rng is not None else random.Random()
        link = LinkConfig(name=name, transport=connection_class, clock=clock, rng=rng,
                          max_topics_per_connection=max_topics_per_connection, renew_after_s=renew_after_s,
                          connect_timeout_s=connect_timeout_s, backoff_initial_s=backoff_initial_s,
                          backoff_cap_s=backoff_cap_s, max_ping_interval_s=max_ping_interval_s)
        self._engine = Engine(  # no I/O: the engine only stores these until start()
            link=link, tickers=self._tickers, candles=self._candles, books=self._books,
            callbacks=Callbacks(on_ticker, on_candle, on_order_book, MappingProxyType(dict(push_handlers or {}))),
            book_depth=book_depth,
            rest=rest if rest is not None else self._own_rest,  # type: ignore[arg-type]
            wall_clock=wall_clock, rng=rng, confirm_delay_s=confirm_closed_candles_after_s,
            on_state=self._on_engine_state)
        self._on_state = on_state
        self._lock = threading.Lock()  # guards state, loop and the pre-start queue
        self._state = State.NEW
        self._stopping = False  # stop() was called (it runs once)
        self._pending: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> KuCoinWebSocket:
        """Start the WebSocket thread; subscriptions made before are replayed.

        Raises:
            ClientClosed: after ``stop()`` (a stopped client cannot be restarted).
            RuntimeError: already started.
        """
        with self._lock:
            if self._state is State.CLOSED:
                raise ClientClosed("KuCoinWebSocket was stopped; create a new one")
            if self._state is not State.NEW:
                raise RuntimeError("KuCoinWebSocket already started")
            loop = self._loop = asyncio.new_event_loop()
            for fn, args in self._pending:
                loop.call_soon(fn, *args)
            self._pending.clear()
            self._state = State.CONNECTING
            if self._switch_interval_s is not None:
                self._previous_switch_interval_s = sys.getswitchinterval()
                sys.setswitchinterval(self._switch_interval_s)
            self._thread = threading.Thread(target=self._run, args=(loop,), name=self._name, daemon=True)
            self._thread.start()
        log.info("= %s WebSocket transport: %s", self._name, self._transport_choice)
        log.debug("= started %s", self._name)
        return self

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Close every socket and join the threads within ``timeout_s`` (idempotent).

        A thread that did not end in time (an injected REST call that ignores cancellation) is
        left as a daemon and logged as a WARNING; this method still returns in time.
        """
        deadline = time.monotonic() + timeout_s
        with self._lock:
            if self._stopping:
                return  # stopped (or stopping) already
            self._stopping = True
            self._state = State.CLOSED
            loop, thread = self._loop, self._thread
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._engine.request_stop)
            except RuntimeError:
                pass  # the loop already closed: the thread is ending or ended
        if thread is not None and thread is not threading.current_thread():  # (stop() from a callback)
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("! WebSocket thread of %s did not end within %.1fs", self._name, timeout_s)
        # After the loop: its jobs were cancelled, and with them their queued calls.
        if self._own_rest is not None:
            self._own_rest.close(max(0.0, deadline - time.monotonic()))
        previous, self._previous_switch_interval_s = self._previous_switch_interval_s, None
        if previous is not None and sys.getswitchinterval() == self._switch_interval_s:
            sys.setswitchinterval(previous)  # unless someone else changed it since
        # Lifecycle news only for a WebSocket that ran; stopping one never started is internal.
        log.log(logging.INFO if loop is not None else logging.DEBUG, "= stopped %s", self._name)

    def __enter__(self) -> KuCoinWebSocket:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def state(self) -> State:
        """The lifecycle state."""
        return self._state

    @property
    def transport(self) -> str:
        """The library carrying the sockets: "picows" or "websocket-client" ("auto" resolved)."""
        return self._transport

    def is_healthy(self) -> bool:
        """True when running and every connection is open and has all its acks."""
        return self._state is State.RUNNING and self._engine.links.all_subscribed()

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._engine.run())
        except Exception:  # thread boundary: a bug must be visible, and the state must say so
            log.exception("! WebSocket thread of %s failed", self._name)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                # getaddrinfo of a host name runs on the loop's default executor: join it.
                loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), STOP_EXECUTOR_S))
            except (TimeoutError, RuntimeError):
                log.warning("! a DNS lookup of %s was still running at stop", self._name)
            finally:
                loop.close()
                with self._lock:
                    self._state = State.CLOSED

    def _on_engine_state(self, change: str) -> None:
        with self._lock:
            if self._state is State.CLOSED:
                return
            before = self._state
            if change == "up":
                self._state = State.RUNNING
            elif self._state in (State.RUNNING, State.RECONNECTING):
                # "down": a connection that was up is lost; "pending": only a new connection
                # (more topics than one holds) is still opening, the data already served is fine
                self._state = State.RECONNECTING if change == "down" else State.RUNNING
            after = self._state
        if after is not before and self._on_state is not None:
            try:
                self._on_state(after)
            except Exception:  # a bug of the listener must not stop the engine
                log.exception("on_state callback %r raised", self._on_state)

    def _post(self, fn: Callable[..., object], *args: Any) -> None:
        # Run fn(*args) on the loop (queued until start() if not started).
        with self._lock:
            if self._state is State.CLOSED:
                raise ClientClosed("KuCoinWebSocket was stopped")
            loop = self._loop
            if loop is None:
                self._pending.append((fn, args))
                return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError as exc:  # the loop closed under us
            raise ClientClosed("KuCoinWebSocket was stopped") from exc

    # -- subscriptions --------------------------------------------------------------------------
    def subscribe_ticker(self, symbol: str, *, last_trade: bool = True) -> None:
        """Keep the ticker of ``symbol``: best bid/ask (tickerV2) and, if ``last_trade``, the
        last trade (the trade-driven ticker topic) merged into one ``Ticker``."""
        self._post(self._engine.add_ticker, symbol, to_kucoin_id(symbol), last_trade)

    def unsubscribe_ticker(self, symbol: str) -> None:
        """Stop the ticker of ``symbol`` and forget its cached value."""
        kucoin_id = to_kucoin_id(symbol)
        self._tickers.discard(symbol)
        self._post(self._engine.remove_ticker, symbol, kucoin_id)

    def subscribe_candles(self, symbol: str, timeframe: str) -> None:
        """Keep up to ``max_candles`` candles of ``symbol``/``timeframe`` (REST history + pushes)."""
        timeframe_to_candle_type(timeframe)  # InvalidArgument now, not on the loop
        self._post(self._engine.add_candles, symbol, timeframe, to_kucoin_id(symbol))

    def unsubscribe_candles(self, symbol: str, timeframe: str) -> None:
        """Stop the candles of ``symbol``/``timeframe`` and forget them."""
        kucoin_id = to_kucoin_id(symbol)
        timeframe_to_candle_type(timeframe)
        self._candles.discard((symbol, timeframe))
        self._post(self._engine.remove_candles, kucoin_id, timeframe)

    def subscribe_order_book(self, symbol: str) -> None:
        """Keep the level-2 order book of ``symbol`` (REST snapshot + sequenced deltas)."""
        self._post(self._engine.add_book, symbol, to_kucoin_id(symbol))

    def unsubscribe_order_book(self, symbol: str) -> None:
        """Stop the order book of ``symbol`` and forget it."""
        kucoin_id = to_kucoin_id(symbol)
        self._books.discard(symbol)
        self._post(self._engine.remove_book, kucoin_id)

    def subscribe_topics(self, topics: Iterable[str]) -> None:
        """Keep raw KuCoin topics (e.g. private ones, with a private token from ``rest``); their
        pushes go to ``push_handlers`` by subject. Subscribing twice does nothing."""
        topics = list(topics)
        for topic in topics:
            split_topic(topic)  # InvalidArgument now, not on the loop
        self._post(self._engine.add_topics, topics)

    # -- reads ----------------------------------------------------------------------------------
    def get_ticker(self, symbol: str, *, max_age_s: float) -> Ticker | None:
        """Return the ticker of ``symbol`` if received within ``max_age_s``, else None."""
        return self._tickers.get(symbol, max_age_s=max_age_s)

    def get_candles(self, symbol: str, timeframe: str, *, max_age_s: float,
                    limit: int | None = None) -> CandleSeries | None:
        """Return the newest ``limit`` candles, oldest first, if the series is fresh, else None."""
        return self._candles.get(symbol, timeframe, max_age_s=max_age_s, limit=limit)

    def get_order_book(self, symbol: str, *, max_age_s: float, depth: int | None = None) -> OrderBook | None:
        """Return the synced book of ``symbol`` (``depth`` levels a side) if fresh, else None."""
        return self._books.get(symbol, max_age_s=max_age_s, depth=depth)

    def wait_for_ticker(self, symbol: str, *, timeout_s: float = DEFAULT_WAIT_S,
                        max_age_s: float = INFINITY) -> Ticker | None:
        """Return the ticker, waiting up to ``timeout_s`` for the first one; None on timeout."""
        return self._tickers.wait(symbol, timeout_s=timeout_s, max_age_s=max_age_s)

    def wait_for_candles(self, symbol: str, timeframe: str, *, timeout_s: float = DEFAULT_WAIT_S,
                         max_age_s: float = INFINITY, limit: int | None = None) -> CandleSeries | None:
        """Return the candles, waiting up to ``timeout_s`` for the first ones; None on timeout."""
        return self._candles.wait(symbol, timeframe, timeout_s=timeout_s, max_age_s=max_age_s, limit=limit)

    def wait_for_order_book(self, symbol: str, *, timeout_s: float = DEFAULT_WAIT_S,
                            max_age_s: float = INFINITY, depth: int | None = None) -> OrderBook | None:
        """Return the synced book, waiting up to ``timeout_s`` for it; None on timeout."""
        return self._books.wait(symbol, timeout_s=timeout_s, max_age_s=max_age_s, depth=depth)

    def stats(self) -> FeedStats:
        """Return message counts and ages per topic, reconnects, resyncs, connections, token ages."""
        return self._engine.stats(self._state, self._clock())


def _check_options(max_topics: int, renew_after_s: float, connect_timeout_s: float,
                   book_depth: int | None, switch_interval_s: float | None, rest_threads: int,
                   max_ping_interval_s: float | None) -> None:
    for name, value in (("max_topics_per_connection", max_topics), ("rest_threads", rest_threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"{name} must be an int >= 1, not {value!r}")
    if not renew_after_s > 0 or not connect_timeout_s > 0:
        raise InvalidArgument("renew_after_s and connect_timeout_s must be > 0")
    if book_depth is not None and (not isinstance(book_depth, int) or book_depth < 1):
        raise InvalidArgument(f"book_depth must be None or an int >= 1, not {book_depth!r}")
    if switch_interval_s is not None and not switch_interval_s > 0:
        raise InvalidArgument(f"gil_switch_interval_s must be > 0, not {switch_interval_s!r}")
    if max_ping_interval_s is not None and not max_ping_interval_s > 0:
        raise InvalidArgument(f"max_ping_interval_s must be > 0, not {max_ping_interval_s!r}")
