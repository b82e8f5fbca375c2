"""Every REST call to KuCoin Futures, made through ccxt on a priority scheduler within KuCoin's
resource-pool rate limits.

    build_exchange(futures_url, ...)   the ccxt.kucoinfutures object, every URL key pointed at
                                       futures_url (a factory: no I/O)
    prepare_exchange(exchange)         what the gateway needs of any ccxt object (idempotent)
    RestGateway                        runs ccxt calls on a PriorityExecutor: CRITICAL orders,
                                       cancels, closes; HIGH positions, balance; NORMAL market
                                       scans and REST fallback; LOW analytics and history.
                                       Public market data here; orders and the account in
                                       kucoin_orders.py, through ``call()``
    map_ccxt_errors                    the one place ccxt exceptions become ours (kucoin_ccxt.py)

Each call is charged to its KuCoin pool with its weight (``ENDPOINTS``, protocol notes section
5.3) before it starts. After it, the response's gw-ratelimit-* headers correct our count
(``observe_headers``), and a 429 either empties the pool until the reset its headers give
(quota exhausted) or, without headers, makes non-CRITICAL calls back off (server overload).

ccxt's own throttle (``enableRateLimit``) is switched off: it is a per-object minimum spacing
that ignores priority and the reserve, sleeps on the calling thread (so it would delay a
CRITICAL order behind the spacing of the scan before it), and races across our worker threads.
The executor is the only limiter. ccxt's own retries (``maxRetriesOnFailure``) stay at 0: an
order must never be sent twice.
"""
from __future__ import annotations

import concurrent.futures
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from operator import methodcaller
from types import MappingProxyType
from typing import Any

import ccxt

from kucoin_futures.errors import (
    ClientClosed,
    ConfigError,
    InvalidArgument,
    OrderNotFound,
    OrderNotPlaced,
    OrderOutcomeUnknown,
)
from kucoin_futures.protocol.parse import parse_bullet
from kucoin_futures.protocol.types import timeframe_to_granularity
from kucoin_futures.rest.ccxt_seam import RedactingLogger, ResponseTap, UniqueNonce, map_ccxt_errors
from kucoin_futures.scheduling.executor import CallAbandoned, PriorityExecutor, SchedulerClosed
from kucoin_futures.scheduling.pools import Priority, RateLimit
from kucoin_futures.rest.public import PATH_BULLET_PUBLIC, PATH_KLINES, PATH_LEVEL2_SNAPSHOT, PublicRest

__all__ = [
    "DEFAULT_LIMITS", "ENDPOINTS", "Endpoint", "OrderNotFound", "OrderNotPlaced", "RestGateway",
    "build_exchange", "map_ccxt_errors", "prepare_exchange",
]

log = logging.getLogger(__name__)

# -- Rate-limit pools (protocol notes section 5.1, VIP0 quotas per 30 s window) -----------------
PUBLIC_POOL = "public"  # per IP
FUTURES_POOL = "futures"  # per account UID
DEFAULT_LIMITS = (RateLimit(PUBLIC_POOL, 2000), RateLimit(FUTURES_POOL, 2000))
DEFAULT_WORKERS = 4
DEFAULT_TIMEOUT_MS = 10_000  # ccxt's default request timeout
URL_KEYS = ("public", "private", "futuresPublic", "futuresPrivate", "utaPrivate", "uta", "utaV2",
            "webExchange", "broker", "earn")  # every REST host key of ccxt's kucoin (notes 8.1)
LOAD_MARKETS_PARAMS = {"marginables": False}  # skip the spot-host margin symbol calls (notes 8.1)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One KuCoin REST endpoint: its rate-limit pool and weight."""

    method: str
    path: str
    pool: str
    weight: int


# operation -> endpoint; weights from KuCoin's spec (protocol notes section 5.3).
ENDPOINTS: Mapping[str, Endpoint] = MappingProxyType({
    "load_markets": Endpoint("GET", "/api/v1/contracts/active", PUBLIC_POOL, 3),
    "fetch_time": Endpoint("GET", "/api/v1/timestamp", PUBLIC_POOL, 2),
    "fetch_ticker": Endpoint("GET", "/api/v1/ticker", PUBLIC_POOL, 2),
    "fetch_ohlcv": Endpoint("GET", PATH_KLINES, PUBLIC_POOL, 3),
    "fetch_order_book": Endpoint("GET", PATH_LEVEL2_SNAPSHOT, PUBLIC_POOL, 3),
    "fetch_trades": Endpoint("GET", "/api/v1/trade/history", PUBLIC_POOL, 5),
    "bullet_public": Endpoint("POST", PATH_BULLET_PUBLIC, PUBLIC_POOL, 10),
    "bullet_private": Endpoint("POST", "/api/v1/bullet-private", FUTURES_POOL, 10),
    "create_order": Endpoint("POST", "/api/v1/orders", FUTURES_POOL, 2),
    "close_position": Endpoint("POST", "/api/v1/orders", FUTURES_POOL, 2),  # closeOrder: true
    "cancel_order": Endpoint("DELETE", "/api/v1/orders/{orderId}", FUTURES_POOL, 1),
    "fetch_order": Endpoint("GET", "/api/v1/orders/{orderId}", FUTURES_POOL, 5),
    "fetch_order_by_client_oid": Endpoint("GET", "/api/v1/orders/byClientOid", FUTURES_POOL, 5),
    "fetch_open_orders": Endpoint("GET", "/api/v1/orders", FUTURES_POOL, 2),
    "fetch_balance": Endpoint("GET", "/api/v1/account-overview", FUTURES_POOL, 5),
    "fetch_positions": Endpoint("GET", "/api/v1/positions", FUTURES_POOL, 2),
    "fetch_position": Endpoint("GET", "/api/v1/position", FUTURES_POOL, 2),
    "set_leverage": Endpoint("POST", "/api/v2/changeCrossUserLeverage", FUTURES_POOL, 2),
    "fetch_account_mode": Endpoint("GET", "/api/ua/v1/account/mode", FUTURES_POOL, 2),
    "fetch_position_mode": Endpoint("GET", "/api/v2/position/getPositionMode", FUTURES_POOL, 2),
    "fetch_margin_mode": Endpoint("GET", "/api/v2/position/getMarginMode", FUTURES_POOL, 2),
    "set_margin_mode": Endpoint("POST", "/api/v2/position/changeMarginMode", FUTURES_POOL, 2),
    "fetch_funding_rate_history": Endpoint("GET", "/api/v1/contract/funding-rates", PUBLIC_POOL, 5),
    "fetch_mark_price": Endpoint("GET", "/api/v1/mark-price/{symbol}/current", PUBLIC_POOL, 3),
    "fetch_stop_orders": Endpoint("GET", "/api/v1/stopOrders", FUTURES_POOL, 6),
    "cancel_stop_orders": Endpoint("DELETE", "/api/v1/stopOrders", FUTURES_POOL, 15),
    "cancel_order_by_client_oid": Endpoint("DELETE", "/api/v1/orders/client-order/{clientOid}", FUTURES_POOL, 1),
})
# The account reads the private WebSocket feed seeds from (submit_private_get): ccxt's raw calls.
PRIVATE_READS = MappingProxyType({"fetch_positions": "futuresPrivateGetPositions",
                                  "fetch_balance": "futuresPrivateGetAccountOverview",
                                  "fetch_open_orders": "futuresPrivateGetOrders",
                                  "fetch_stop_orders": "futuresPrivateGetStopOrders"})
CCXT_PARSERS = frozenset({"parse_position", "parse_order", "safe_balance"})  # pure: ccxt_parse()
# Public GETs the WebSocket layer may route through submit_get(): path -> operation.
PUBLIC_GET_PATHS = MappingProxyType({
    e.path: op for op, e in ENDPOINTS.items() if e.method == "GET" and e.pool == PUBLIC_POOL
})


def build_exchange(
    futures_url: str,
    *,
    api_key: str | None = None,
    api_secret: str | None = None,
    api_passphrase: str | None = None,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
) -> ccxt.kucoinfutures:
    """Return a ccxt.kucoinfutures that talks to ``futures_url`` and no other host.

    Every REST URL key ccxt knows is pointed at ``futures_url``, and the spot and unified-account
    calls ccxt makes at load_markets are switched off (``prepare_exchange``). No I/O.
    """
    if not isinstance(futures_url, str) or not futures_url.startswith(("http://", "https://")):
        raise ConfigError(f"futures_url must be an http(s) URL, got {futures_url!r}", variable="futures_url")
    config: dict[str, Any] = {
        "urls": {"api": {key: futures_url.rstrip("/") for key in URL_KEYS}},
        "timeout": timeout_ms,
    }
    if api_key is not None:
        config.update(apiKey=api_key, secret=api_secret, password=api_passphrase)
    exchange = ccxt.kucoinfutures(config)
    prepare_exchange(exchange)
    return exchange


def prepare_exchange(exchange: Any) -> ResponseTap:
    """Make ``exchange`` fit for the gateway (idempotent) and return its response tap.

    Classic futures only (``uta``/``hf`` off, no currency list from the spot host), ccxt's throttle
    and retries off (see the module docstring), ``verbose`` off (it prints request headers),
    ccxt's logger wrapped so that credentials never reach a log record, and its KC-API-TIMESTAMP
    made unique per request (``UniqueNonce``: no two requests carry the same signature).
    """
    exchange.options["uta"] = False  # else ccxt probes GET /api/ua/v1/account/mode (notes 8.2)
    exchange.options["hf"] = False  # else GET /api/v1/hf/accounts/opened on the spot host
    exchange.options["maxRetriesOnFailure"] = 0
    exchange.has["fetchCurrencies"] = False  # else GET /api/v3/currencies on the spot host
    exchange.enableRateLimit = False
    exchange.verbose = False
    if not isinstance(exchange.logger, RedactingLogger):
        exchange.logger = RedactingLogger(exchange.logger)
    UniqueNonce.install(exchange)
    return ResponseTap.install(exchange)


def _lean_public_client(exchange: Any, tap: ResponseTap) -> PublicRest | None:
    """A PublicRest on the exchange's futures host, or None if it has none (a fake exchange)."""
    url = getattr(exchange, "urls", {}).get("api", {}).get("futuresPublic")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    return PublicRest(url, timeout_s=exchange.timeout / 1000, on_response=tap.record)


class State(enum.Enum):
    """Lifecycle of a ``RestGateway``."""

    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


# One worker runs only CRITICAL/HIGH calls: an order never waits for a scan's call in flight.
RESERVED_WORKERS = 1


class RestGateway:
    """Run ccxt calls by priority within KuCoin's rate limits; map their errors onto ours.

    ``start()`` loads the markets (the only I/O before the first call); ``close()`` drops queued
    calls (they fail with ``ClientClosed``) and lets running ones finish.

    Args:
        exchange: a ccxt.kucoinfutures (``build_exchange``); the gateway prepares it.
        executor: a shared ``PriorityExecutor`` with pools "public" and "futures"; by default the
            gateway builds and owns one from ``limits``, ``workers`` and ``on_start``.
        clock: monotonic seconds, for the executor the gateway builds.
    """

    def __init__(
        self,
        exchange: Any,
        *,
        executor: PriorityExecutor | None = None,
        limits: Iterable[RateLimit] = DEFAULT_LIMITS,
        workers: int = DEFAULT_WORKERS,
        on_start: Callable[[Priority, str], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._exchange = exchange
        self._owns_executor = executor is None
        self._executor = executor if executor is not None else PriorityExecutor(
            limits=limits, workers=workers, reserved_workers=min(RESERVED_WORKERS, workers - 1), clock=clock,
            on_start=on_start, name="kucoin-rest")
        self._tap: ResponseTap | None = None
        self._public: PublicRest | None = None  # lean public GETs (rest_get), built at start()
        self._state = State.NEW
        self._state_lock = threading.Lock()  # state transitions (never held across a call)

    def __repr__(self) -> str:
        return f"RestGateway(state={self._state.value})"

    # -- Lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Prepare the exchange and load the markets (HIGH priority). Idempotent. A close() from
        another thread fails a start still queued (behind a rate-limit reset) with ClientClosed."""
        with self._state_lock:
            if self._state is State.CLOSED:
                raise ClientClosed("RestGateway is closed")
            if self._state is State.RUNNING:
                return
            tap = self._tap = prepare_exchange(self._exchange)
            self._public = _lean_public_client(self._exchange, tap)
            try:
                self._executor.start()
            except SchedulerClosed as exc:
                raise ClientClosed("RestGateway: its executor is closed") from exc
            self._state = State.RUNNING
        try:
            self.call(Priority.HIGH, "load_markets", methodcaller("load_markets", True, LOAD_MARKETS_PARAMS))
        except BaseException:
            with self._state_lock:
                if self._state is State.RUNNING:  # not closed meanwhile: a later start may try again
                    self._state = State.NEW
            raise
        log.debug("REST gateway started: %d markets", len(self._exchange.markets))

    def close(self) -> None:
        """Fail queued calls with ``ClientClosed``; close the executor if the gateway owns it."""
        with self._state_lock:
            if self._state is State.CLOSED:
                return
            self._state = State.CLOSED
        if self._owns_executor:
            self._executor.close()
        if self._public is not None:
            self._public.close()
        session = getattr(self._exchange, "session", None)
        if session is not None:
            session.close()

    def __enter__(self) -> RestGateway:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- Markets ---------------------------------------------------------------------------------
    @property
    def markets(self) -> Mapping[str, Mapping[str, Any]]:
        """Return the loaded markets, unified symbol -> ccxt market dict."""
        self._check_running()
        return self._exchange.markets

    def market(self, symbol: str) -> Mapping[str, Any]:
        """Return the ccxt market of a unified symbol; ``InvalidArgument`` if it is not traded."""
        markets = self.markets
        if not isinstance(symbol, str) or symbol not in markets:
            raise InvalidArgument(f"symbol={symbol!r}: not a contract of this exchange "
                                  f"(e.g. {next(iter(markets), 'BTC/USDT:USDT')!r})")
        market = markets[symbol]
        if market.get("active") is False:
            raise InvalidArgument(f"symbol={symbol!r}: the contract is not open for trading")
        return market

    # -- Calls -----------------------------------------------------------------------------------
    def submit(
        self,
        priority: Priority,
        operation: str,
        fn: Callable[[Any], Any],
        *,
        places_order: bool = False,
        client_oid: str | None = None,
    ) -> concurrent.futures.Future:
        """Queue ``fn(exchange)`` as ``operation`` (an ``ENDPOINTS`` key) and return its Future.

        The Future's exception is one of ours, or ``SchedulerClosed`` if ``close()`` dropped the
        call before it started (``call()`` turns that into ``ClientClosed``).

        Args:
            places_order: the call places or cancels an order: "no answer" becomes
                ``OrderOutcomeUnknown`` (carrying ``client_oid``) instead of ``TransportError``.
        """
        self._check_running()
        try:
            endpoint = ENDPOINTS[operation]
        except KeyError:
            raise InvalidArgument(f"operation={operation!r}: not in the endpoint weight table") from None
        run = partial(self._run, operation, endpoint.pool, fn, places_order, client_oid)
        try:
            return self._executor.submit(priority, run, cost=endpoint.weight, pool=endpoint.pool,
                                         label=operation)
        except SchedulerClosed as exc:
            raise ClientClosed(f"{operation}: the REST scheduler is closed") from exc

    def call(self, priority: Priority, operation: str, fn: Callable[[Any], Any], *,
             places_order: bool = False, client_oid: str | None = None) -> Any:
        """Run ``fn(exchange)`` through the scheduler and return its result (see ``submit``)."""
        future = self.submit(priority, operation, fn, places_order=places_order, client_oid=client_oid)
        return self._result(future, operation, places_order=places_order, client_oid=client_oid)

    @staticmethod
    def _result(future: concurrent.futures.Future, operation: str, *, places_order: bool = False,
                client_oid: str | None = None) -> Any:
        try:
            return future.result()
        except SchedulerClosed as exc:
            # Dropped from the queue by close(): never started, so never sent.
            raise ClientClosed(f"{operation}: closed before the call started") from exc
        except CallAbandoned as exc:
            # close() stopped waiting for it while it ran: a request may have left.
            if places_order:
                raise OrderOutcomeUnknown(f"{operation}: closed while the call was running; look the order "
                                          f"up by clientOid {client_oid}", client_oid=client_oid) from exc
            raise ClientClosed(f"{operation}: closed while the call was running") from exc

    def _run(self, operation: str, pool: str, fn: Callable[[Any], Any], places_order: bool,
             client_oid: str | None) -> Any:
        # On a worker thread: the tap's record of this thread's response belongs to this call.
        tap = self._tap
        assert tap is not None
        tap.reset()
        try:
            with map_ccxt_errors(operation, places_order=places_order, client_oid=client_oid,
                                 response=tap.last, sent=tap.sent):
                return fn(self._exchange)
        finally:
            self._observe(pool, tap.last())

    def _observe(self, pool: str, response: Any) -> None:
        if response is None:
            return
        headers = response.rate_limit
        if response.http_status == 429:
            self._executor.observe_rate_limited(pool, headers.reset_ms if headers is not None else None)
        elif headers is not None:
            self._executor.observe_headers(pool, headers.limit, headers.remaining, headers.reset_ms)

    def _check_running(self) -> None:
        if self._state is not State.RUNNING:
            raise ClientClosed(f"RestGateway is {self._state.value}; call start() first"
                               if self._state is State.NEW else "RestGateway is closed")

    # -- Market data (NORMAL unless said otherwise) ----------------------------------------------
    def fetch_ticker(self, symbol: str, *, priority: Priority = Priority.NORMAL) -> dict[str, Any]:
        """Return ccxt's ticker dict from GET /api/v1/ticker."""
        self.market(symbol)
        return self.call(priority, "fetch_ticker", methodcaller("fetch_ticker", symbol))

    def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", *, since_ms: int | None = None,
                    limit: int | None = None, priority: Priority = Priority.NORMAL) -> list[list[float]]:
        """Return ccxt's ``[ts_ms, o, h, l, c, v]`` rows from GET /api/v1/kline/query."""
        self.market(symbol)
        timeframe_to_granularity(timeframe)  # InvalidArgument for an unsupported timeframe
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidArgument(f"limit={limit!r}: must be a positive int")
        fetch = methodcaller("fetch_ohlcv", symbol, timeframe, since_ms, limit)
        return self.call(priority, "fetch_ohlcv", fetch)

    def submit_get(self, path: str, params: Mapping[str, Any], priority: Priority) -> concurrent.futures.Future:
        """Queue a GET of a public futures endpoint; its Future gives the raw envelope.

        With ``submit_token`` this is the WebSocket feed's REST seam (``ws.rest_port.RestPort``):
        its snapshots and kline history run on this scheduler, charged to the same pool, with the
        rate-limit headers fed back the same way. Sent with the stdlib HTTP client + orjson
        (``PublicRest``) rather than ccxt's ``request``: ~0.6 ms of CPU a level-2 snapshot instead
        of ~2.7 ms, which is what a reconnect's book resyncs and a first scan's history spend.
        """
        operation = PUBLIC_GET_PATHS.get(path)
        if operation is None:
            raise InvalidArgument(f"path={path!r}: not a public GET in the endpoint weight table")
        public = self._public
        if public is not None:  # same scheduling, pool and header feedback; a quarter of the CPU
            return self.submit(priority, operation, lambda _exchange: public.get(path, params))
        relative = path.removeprefix("/api/v1/")
        return self.submit(priority, operation, methodcaller("request", relative, ["futuresPublic"], "GET", dict(params)))

    def rest_get(self, path: str, params: Mapping[str, Any], *,
                 priority: Priority = Priority.NORMAL) -> Any:
        """GET a public futures endpoint and return the raw envelope (``submit_get``, waited for)."""
        return self._result(self.submit_get(path, params, priority), PUBLIC_GET_PATHS[path])

    def submit_token(self) -> concurrent.futures.Future:
        """Queue POST bullet-public (HIGH); its Future gives a fresh public ``WsEndpoint``."""
        return self.submit(Priority.HIGH, "bullet_public",
                           lambda exchange: parse_bullet(exchange.futuresPublicPostBulletPublic()))

    def submit_private_token(self) -> concurrent.futures.Future:
        """Queue POST bullet-private (HIGH, signed); its Future gives a fresh private ``WsEndpoint``."""
        return self.submit(Priority.HIGH, "bullet_private",
                           lambda exchange: parse_bullet(exchange.futuresPrivatePostBulletPrivate()))

    def submit_private_get(self, operation: str, params: Mapping[str, Any]) -> concurrent.futures.Future:
        """Queue a signed account read (HIGH: the private feed's seed); its Future gives KuCoin's
        raw envelope. ``operation``: "fetch_positions", "fetch_balance", "fetch_open_orders" or "fetch_stop_orders"."""
        method = PRIVATE_READS.get(operation)
        if method is None:
            raise InvalidArgument(f"operation={operation!r}: not one of {sorted(PRIVATE_READS)}")
        return self.submit(Priority.HIGH, operation, methodcaller(method, dict(params)))

    def ccxt_parse(self, parser: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Return ccxt's unified structure of a KuCoin object, as its fetch_* would (no I/O):
        ``parser`` is "parse_position", "parse_order" or "safe_balance"."""
        if parser not in CCXT_PARSERS:
            raise InvalidArgument(f"parser={parser!r}: not one of {sorted(CCXT_PARSERS)}")
        return getattr(self._exchange, parser)(payload)

    # -- Health ----------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Return the rate-limit budget per pool, the queue depth per priority and the calls
        started so far per priority."""
        return {
            "rate_limit": self._executor.budget(),
            "queue_depths": {p.name: n for p, n in self._executor.queue_depths().items()},
            "in_flight": self._executor.in_flight(),
            "calls_started": {p.name: n for p, n in self._executor.started_counts().items()},
        }
