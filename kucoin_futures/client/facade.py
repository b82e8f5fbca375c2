"""KuCoinClient: the library's facade for KuCoin Futures (USDT-margined perpetuals and more).

    from kucoin_client import KuCoinClient

    with KuCoinClient(api_key, api_secret, api_passphrase) as client:
        client.get_ticker("BTC/USDT:USDT")              # {"bid": ..., "source": "websocket"}
        client.get_ohlcv("BTC/USDT:USDT", "1m", limit=100)
        client.create_market_order("BTC/USDT:USDT", "buy", 1, leverage=5)

Market data (`get_ticker`, `get_ohlcv`, `get_order_book`) is served from the WebSocket cache when
it is fresh — ticker and book within 10 s, candles when the newest one was refreshed within half
a candle — and otherwise from REST, transparently; the result's `source` says which. The first
read of a symbol subscribes and waits up to 500 ms for WebSocket data before falling back;
`prefetch(symbols)` subscribes a whole universe at once and waits once instead.
Orders and account calls go over REST through ccxt on a priority scheduler (CRITICAL orders,
HIGH account, NORMAL market data, LOW history) within KuCoin's rate limits; an order is never
sent twice and an ambiguous outcome is resolved by looking the order up (kucoin_orders.py).

Nothing happens on the network until the first call (or `start()`); `close()` is idempotent and
leaves no thread behind. Errors are the one tree of kucoin_errors.py.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kucoin_futures.protocol.wire import DEFAULT_FUTURES_URL
from kucoin_futures.errors import (
    AccountModeError,
    AuthError,
    ClientClosed,
    ConfigError,
    ExchangeRejected,
    InsufficientFunds,
    InvalidArgument,
    InvalidOrder,
    KuCoinError,
    NoPosition,
    OrderNotFound,
    OrderNotPlaced,
    OrderOutcomeUnknown,
    ProtocolError,
    RateLimited,
    TransportError,
)
from kucoin_futures.client.account import AccountData, AccountEvent, build_account_feed, placed_hook, sent_hook
from kucoin_futures.client.health import health_report
from kucoin_futures.client.history import fetch_candle_history, fetch_funding_history
from kucoin_futures.client.market import PREFETCH_TIMEOUT_S, MarketData
from kucoin_futures.client.options import check_client_options, gil_switch_interval_s_of
from kucoin_futures.orders.manager import OrderManager
from kucoin_futures.orders.modes import AccountModes, check_account_modes
from kucoin_futures.orders.stops import StopOrders
from kucoin_futures.client.prefetch import PrefetchResult
from kucoin_futures.rest.gateway import RestGateway, build_exchange
from kucoin_futures.client.ccxt_shapes import OHLCV
from kucoin_futures.ws.client import KuCoinWebSocket
from kucoin_futures.ws.private_feed import DEFAULT_QUEUE_SIZE
from kucoin_futures.ws.subscriptions import State as WsState

__all__ = [
    "OHLCV", "AccountModeError", "AuthError", "ClientClosed", "ConfigError", "ExchangeRejected", "InsufficientFunds",
    "InvalidArgument", "InvalidOrder", "KuCoinClient", "KuCoinError", "NoPosition", "OrderNotFound",
    "OrderNotPlaced", "OrderOutcomeUnknown", "PrefetchResult", "ProtocolError", "RateLimited", "TransportError",
]

log = logging.getLogger(__name__)

TICKER_MAX_AGE_S = 10.0  # a cached ticker older than this is not served
BOOK_MAX_AGE_S = 10.0
FIRST_READ_WAIT_S = 0.5  # the first read of a symbol waits this long for WebSocket data


class KuCoinClient:
    """Market data from a WebSocket cache with REST fallback; orders that are never lost.

    Args:
        api_key, api_secret, api_passphrase: KuCoin API credentials (all three, or none for
            market data only). Never logged, never in repr() or error messages.
        enable_websocket: serve market data from the WebSocket cache (else REST only).
        ws_transport: the WebSocket library, KuCoinWebSocket's ``transport``: "auto" (picows if
            it imports, else websocket-client), "picows" or "websocket-client".
        futures_url: KuCoin Futures REST base URL; the only host the client talks to.
        gil_switch_interval_s: passed to KuCoinWebSocket (sys.setswitchinterval while it runs;
            None leaves the process's setting alone).
        on_account_event: with credentials and the WebSocket, called on the private feed's thread
            with each account event (see account_events); keep it short, never call REST from it.
            Given, the private feed starts with the client; else at the first account read.
        account_queue_size: account events kept for account_events(); beyond, the oldest drop.
        exchange, gateway, websocket, orders: injected parts (tests, shared executors); by default
            built from the arguments above, without I/O.
        clock: monotonic seconds, for freshness.
        wall_clock: epoch seconds, for kline time ranges and clientOids.
    """

    def __init__(
        self,
        api_key: str | None = None,
        api_secret: str | None = None,
        api_passphrase: str | None = None,
        *,
        enable_websocket: bool = True,
        ws_transport: str = "auto",
        futures_url: str = DEFAULT_FUTURES_URL,
        request_timeout_s: float = 10.0,
        gil_switch_interval_s: float | None = None,
        on_account_event: Callable[[AccountEvent], object] | None = None,
        account_queue_size: int = DEFAULT_QUEUE_SIZE,
        # injected parts
        exchange: Any = None,
        gateway: RestGateway | None = None,
        websocket: KuCoinWebSocket | None = None,
        orders: OrderManager | None = None,
        # freshness policy and time
        ticker_max_age_s: float = TICKER_MAX_AGE_S,
        book_max_age_s: float = BOOK_MAX_AGE_S,
        first_read_wait_s: float = FIRST_READ_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        check_client_options(api_key=api_key, api_secret=api_secret, api_passphrase=api_passphrase,
                             enable_websocket=enable_websocket, ws_transport=ws_transport, futures_url=futures_url,
                             request_timeout_s=request_timeout_s, gil_switch_interval_s=gil_switch_interval_s,
                             ticker_max_age_s=ticker_max_age_s, book_max_age_s=book_max_age_s,
                             first_read_wait_s=first_read_wait_s, clock=clock, wall_clock=wall_clock)
        if exchange is None and gateway is None:
            exchange = build_exchange(futures_url, api_key=api_key, api_secret=api_secret,
                                      api_passphrase=api_passphrase, timeout_ms=int(request_timeout_s * 1000))
        self._gateway = gateway if gateway is not None else RestGateway(exchange, clock=clock)
        feed = build_account_feed(  # the private feed: with credentials and the WebSocket
            self._gateway, enabled=enable_websocket and api_key is not None, on_event=on_account_event,
            max_queued=account_queue_size, transport=ws_transport, clock=clock, wall_clock=wall_clock)
        self._orders = orders if orders is not None else OrderManager(
            self._gateway, clock=clock, wall_clock=wall_clock, on_placed=placed_hook(feed), on_sent=sent_hook(feed))
        self._account = AccountData(self._gateway, self._orders, feed, start_early=on_account_event is not None)
        self._ws: KuCoinWebSocket | None = None
        if enable_websocket:
            self._ws = websocket if websocket is not None else KuCoinWebSocket(
                rest_url=futures_url, rest=self._gateway,  # one scheduler for all of the client's REST
                transport=ws_transport, clock=clock, wall_clock=wall_clock, gil_switch_interval_s=gil_switch_interval_s)
        self.futures_url = futures_url
        self._lock = threading.Lock()  # lifecycle
        self._start_lock = threading.Lock()  # one start at a time
        # Held through a whole close: a second close() (the bot's stop watcher and its exit) returns only
        # once the first has joined every thread; reentrant for a close() from a callback.
        self._close_lock = threading.RLock()
        self._started = False
        self._closed = False
        self._market = MarketData(gateway=self._gateway, ws=self._ws, ensure_started=self._ensure_started,
                                  ticker_max_age_s=ticker_max_age_s, book_max_age_s=book_max_age_s,
                                  first_read_wait_s=first_read_wait_s, clock=clock, wall_clock=wall_clock)
        self._stops = StopOrders(self._gateway, self._orders, reference_price=self._market.reference_price)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "started" if self._started else "new"
        return f"KuCoinClient(futures_url={self.futures_url!r}, websocket={self._ws is not None}, state={state})"

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> KuCoinClient:
        """Build a client from config.Settings (credentials, URL, ENABLE_WEBSOCKET, WS_TRANSPORT,
        GIL switch).

        Raises:
            InvalidArgument: `settings` is not a Settings, or one of its values is unusable.
        """
        try:
            credentials = (settings.api_key, settings.api_secret, settings.api_passphrase)
            enable_websocket, futures_url = settings.enable_websocket, settings.futures_url
            switch_ms, ws_transport = settings.gil_switch_interval_ms, settings.ws_transport
        except AttributeError:
            raise InvalidArgument(f"settings must be a config.Settings, not {type(settings).__name__}") from None
        kwargs.setdefault("gil_switch_interval_s", gil_switch_interval_s_of(switch_ms))
        kwargs.setdefault("ws_transport", ws_transport)
        return cls(*credentials, enable_websocket=enable_websocket, futures_url=futures_url, **kwargs)

    @property
    def source_counts(self) -> dict[str, int]:
        """Market-data reads served so far, by source: {"websocket": n, "rest": m} (a copy)."""
        return self._market.counts.snapshot()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> KuCoinClient:
        """Load the markets and start the WebSocket thread (done lazily by the first call)."""
        # Starts have their own lock, not the lifecycle one: close() must not wait for a start queued
        # behind a rate-limit reset; it fails that start with ClientClosed.
        with self._start_lock:
            with self._lock:
                if self._closed:
                    raise ClientClosed("KuCoinClient is closed")
                if self._started:
                    return self
            self._gateway.start()
            with self._lock:
                if self._closed:
                    raise ClientClosed("KuCoinClient is closed")
                if self._ws is not None and self._ws.state is WsState.NEW:  # an injected one may run
                    self._ws.start()
                self._account.start()
                self._started = True
        return self

    def check_credentials(self) -> dict[str, Any]:
        """Check the API keys with one private call (the balance) before anything else starts.

        Loads the markets if needed but leaves the WebSocket alone (start() or the first
        market-data call starts it), so bad keys are found before a socket opens or a
        subscription is sent.

        Returns:
            The USDT balance, as get_balance("USDT").

        Raises:
            AuthError: the keys were refused (or none were given); its ``code`` is KuCoin's
                (400003 unknown key, 400004 passphrase, 400005 signature, ...).
            ClientClosed: after close().
        """
        with self._start_lock:
            with self._lock:
                if self._closed:
                    raise ClientClosed("KuCoinClient is closed")
            self._gateway.start()  # idempotent; a later start() does not load the markets again
        return self._orders.get_balance("USDT")

    def close(self) -> None:
        """Stop the WebSocket, fail queued calls with ClientClosed, join every thread. Idempotent."""
        with self._close_lock:
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                self._market.closed = True
            self._orders.close()
            if self._ws is not None:
                self._ws.stop()
            self._account.close()
            self._gateway.close()

    def __enter__(self) -> KuCoinClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def markets(self) -> Any:
        """ccxt's markets (unified symbol -> market), loaded at start."""
        self._ensure_started()
        return self._gateway.markets

    @property
    def websocket(self) -> KuCoinWebSocket | None:
        return self._ws

    # -- market data (client/market.py) ---------------------------------------------------------
    def get_ticker(self, symbol: str) -> dict[str, Any]:
        """Return ccxt's ticker for `symbol`, plus `source` ("websocket" or "rest")."""
        return self._market.get_ticker(symbol)

    def get_ohlcv(self, symbol: str, timeframe: str = "1m", limit: int = 100) -> OHLCV:
        """Return the newest `limit` candles, oldest first: [ts_ms, open, high, low, close, volume].

        The last row is the candle in progress. Served from the WebSocket cache while its newest
        candle was refreshed within half a candle, otherwise from REST kline history.
        """
        return self._market.get_ohlcv(symbol, timeframe, limit)

    def get_order_book(self, symbol: str, limit: int = 20) -> dict[str, Any]:
        """Return ccxt's order book with `limit` levels per side, plus `source`."""
        return self._market.get_order_book(symbol, limit)

    def prefetch(self, symbols: Iterable[str], *, timeframes: Iterable[str] = ("1m",), tickers: bool = True,
                 order_books: bool = False, timeout_s: float = PREFETCH_TIMEOUT_S,
                 on_symbol_done: Callable[[str], object] | None = None) -> PrefetchResult:
        """Subscribe the market data of many symbols at once, then wait once for it to arrive.

        One wait of at most `timeout_s` replaces a wait of up to FIRST_READ_WAIT_S per first
        read; no later read of these series waits. Late data is no error: its symbols are the
        result's `missing` (every symbol without the WebSocket), read from REST until it arrives.
        `on_symbol_done(symbol)` is called on this thread as each symbol's wait ends, arrived or
        not (at once for every symbol without the WebSocket): a progress bar's hook.

        Returns:
            PrefetchResult(ready=(...), missing=(...)), symbols in the order given; ready: its
            ticker (if `tickers`), candles of every timeframe and book (if `order_books`) arrived.

        Raises:
            InvalidArgument: an unknown symbol or timeframe, a bad timeout (before any subscribe).
        """
        return self._market.prefetch(symbols, timeframes=timeframes, tickers=tickers, order_books=order_books,
                                     timeout_s=timeout_s, on_symbol_done=on_symbol_done)

    # -- history (client/history.py: paged at LOW priority, for backtests) -----------------------
    def fetch_ohlcv_history(self, symbol: str, timeframe: str = "1m", *, since_ms: int, until_ms: int,
                            on_page: Callable[[int, int], object] | None = None) -> list[list[float]]:
        """Return every candle opening in [since_ms, until_ms), oldest first, as ccxt rows; missing
        candles stay missing. ``on_page(done, total)`` after each page (a progress bar's hook)."""
        self._ensure_started()
        return fetch_candle_history(self._gateway, symbol, timeframe, since_ms=since_ms, until_ms=until_ms,
                                    on_page=on_page)

    def fetch_funding_rate_history(self, symbol: str, *, since_ms: int, until_ms: int) -> list[tuple[int, float]]:
        """Return (settlement ms, rate) of every funding settlement in [since_ms, until_ms), oldest first."""
        self._ensure_started()
        return fetch_funding_history(self._gateway, symbol, since_ms=since_ms, until_ms=until_ms)

    # -- orders and account (CRITICAL / HIGH on the scheduler) ---------------------------------
    def create_market_order(self, symbol: str, side: str, amount: int, *, leverage: int | None = None,
                            reduce_only: bool = False, client_oid: str | None = None) -> dict[str, Any]:
        """Place a market order of `amount` contracts; never sent twice (see kucoin_orders)."""
        self._ensure_started()
        return self._orders.create_market_order(symbol, side, amount, leverage=leverage,
                                                reduce_only=reduce_only, client_oid=client_oid)

    def create_limit_order(self, symbol: str, side: str, amount: int, price: float, *,
                           leverage: int | None = None, post_only: bool = False,
                           reduce_only: bool = False, client_oid: str | None = None) -> dict[str, Any]:
        """Place a limit order of `amount` contracts at `price`."""
        self._ensure_started()
        return self._orders.create_limit_order(symbol, side, amount, price, leverage=leverage,
                                               post_only=post_only, reduce_only=reduce_only,
                                               client_oid=client_oid)

    def cancel_order(self, order_id: str, symbol: str | None = None) -> dict[str, Any]:
        self._ensure_started()
        return self._orders.cancel_order(order_id, symbol)

    def get_order(self, order_id: str | None = None, symbol: str | None = None, *,
                  client_oid: str | None = None) -> dict[str, Any]:
        """Return an order by exchange id or by our client_oid."""
        self._ensure_started()
        return self._account.get_order(order_id, symbol, client_oid)

    def get_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        self._ensure_started()
        return self._orders.get_open_orders(symbol)

    def close_position(self, symbol: str) -> dict[str, Any]:
        """Close the whole position with a reduce-only market order; return it (like
        create_market_order: ids, no fill yet). NoPosition (an InvalidOrder) when there is no
        position: nothing is sent."""
        self._ensure_started()
        return self._orders.close_position(symbol)

    def get_balance(self, currency: str = "USDT") -> dict[str, Any]:
        """Return ccxt's balance of the futures account in `currency` (a settle currency's ccxt
        code: "USDT", "BTC", ...; InvalidArgument for anything else, before anything is sent)."""
        self._ensure_started()
        return self._account.get_balance(currency)

    def get_positions(self, *, force_rest: bool = False) -> list[dict[str, Any]]:
        """The open positions (ccxt dicts, `source`); `force_rest`: REST whatever the cache."""
        self._ensure_started()
        return self._account.get_positions(force_rest=force_rest)

    def account_events(self, timeout_s: float = 0.0) -> list[AccountEvent]:
        """Drain the account events queued by the private feed (OrderUpdate, StopOrderUpdate,
        PositionChange, FundingSettlement, WalletChange), waiting up to `timeout_s` for the first."""
        self._ensure_started()
        return self._account.account_events(timeout_s)

    def set_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        self._ensure_started()
        return self._orders.set_leverage(symbol, leverage)

    # -- stop orders (orders/stops.py) ---------------------------------------------------------
    def create_stop_order(self, symbol: str, side: str, amount: int, stop_price: float, *,
                          price_type: str = "mark", reduce_only: bool = True, close_order: bool = False,
                          limit_price: float | None = None, client_oid: str | None = None,
                          expect_direction: str | None = None) -> dict[str, Any]:
        """Place a stop that rests on the exchange until ``price_type``'s price ("mark", "last" or
        "index") reaches ``stop_price``, then sends a market order (a limit one at
        ``limit_price``); return ccxt's order dict.

        The direction is not yours to give: below the current price the stop triggers on a fall,
        above it on a rise, whatever the side (a sell below is a long's stop-loss, a sell above
        its take-profit); a stop price equal to the current price is refused. ``expect_direction``
        ("down": a long's stop-loss, "up": a short's) refuses the stop, nothing sent, when the price
        has already passed it, so it would trigger the other way. ``close_order``
        closes the whole position when it triggers. Checked and sent as every order: never twice,
        an ambiguous send looked up by clientOid.

        Raises:
            InvalidArgument: a bad argument or a stop price on the current price (nothing sent).
            ExchangeRejected (e.g. 300004: 50 stops wait on this contract), OrderNotPlaced,
            OrderOutcomeUnknown: as create_market_order.
        """
        self._ensure_started()
        return self._stops.create_stop_order(symbol, side, amount, stop_price, price_type=price_type,
                                             reduce_only=reduce_only, close_order=close_order,
                                             limit_price=limit_price, client_oid=client_oid,
                                             expect_direction=expect_direction)

    def get_stop_orders(self, symbol: str | None = None, *, force_rest: bool = False) -> list[dict[str, Any]]:
        """Return the untriggered stops (of `symbol`, or all) as ccxt order dicts, oldest first, each
        with `source`: "websocket" (the private feed's cache, when fresh; not with `force_rest`) or "rest"."""
        self._ensure_started()
        return self._account.get_stop_orders(symbol, self._stops.get_stop_orders, force_rest=force_rest)

    def cancel_stop_order(self, order_id: str | None = None, *, client_oid: str | None = None,
                          symbol: str | None = None) -> dict[str, Any]:
        """Cancel one untriggered stop by exchange id, or by `client_oid` with its `symbol`;
        return its order dict. OrderNotFound if there is no such stop."""
        self._ensure_started()
        return self._account.stop_cancelled(self._stops.cancel_stop_order(order_id, client_oid=client_oid,
                                                                          symbol=symbol))

    def cancel_stop_orders(self, symbol: str) -> list[str]:
        """Cancel every untriggered stop of `symbol`; return the exchange ids cancelled."""
        self._ensure_started()
        return self._account.stops_gone(self._stops.cancel_stop_orders(symbol))

    def check_account_modes(self, symbols: Iterable[str], margin_mode: str = "isolated") -> AccountModes:
        """Refuse an account this client cannot trade, and set each symbol's margin mode to
        `margin_mode` ("isolated" or "cross") before the first order (so none meets 330005).

        Raises:
            AccountModeError (a ConfigError): a UNIFIED account, hedge position mode, or a symbol
                whose margin mode KuCoin refuses to change (it has a position or open orders).
        """
        self._ensure_started()
        return check_account_modes(self._gateway, symbols, margin_mode)

    def get_mark_price(self, symbol: str) -> dict[str, Any]:
        """Return {"symbol", "markPrice", "indexPrice", "timestamp", "source"} (REST)."""
        mark = self._market.get_mark_price(symbol)
        return {"symbol": mark.symbol, "markPrice": mark.mark, "indexPrice": mark.index,
                "timestamp": mark.ts_ms, "source": mark.source}

    # -- health --------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """WebSocket state, data ages, reconnects, rate-limit budget left, queue depth per priority.

        Returns a plain dict: ``started``, ``closed``, ``source_counts``, ``rate_limit`` (pool -> limit,
        remaining, reset_in_s), ``queue_depths`` (priority name -> queued calls), ``in_flight``,
        ``websocket`` (``enabled``; when enabled ``state``, ``healthy``, ``connections``, ``reconnects``,
        ``connect_failures``, ``messages``, ``malformed``, ``resyncs``, ``data_ages_s``: topic -> seconds since
        its newest message, None before the first) and ``private_websocket`` (state, ``fresh``, seeds, ``events``).
        """
        return health_report(started=self._started, closed=self._closed, source_counts=self.source_counts,
                             gateway=self._gateway, ws=self._ws, account=self._account.health())

    # -- internals -----------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._closed:
            raise ClientClosed("KuCoinClient is closed")
        if not self._started:
            self.start()
