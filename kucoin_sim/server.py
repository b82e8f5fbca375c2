"""Simulator: the local KuCoin Futures exchange, REST and WebSocket on one loopback port.

Runs an asyncio loop in one background thread; the core (Exchange) is only touched on that thread.
Tests drive faults and read state through thread-safe methods here.

    with Simulator(seed=7) as sim:
        ex = ccxt.kucoinfutures({"urls": {"api": {"futuresPublic": sim.url, ...}}})
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, TypeVar

from .appkeys import SIM
from aiohttp import web

from . import control, rest
from .auth import Credentials, ReplayGuard
from .exchange import Exchange
from .faults import Faults, FailRule, LoseRule
from .firehose import FirehoseResult, run_firehose
from .orders import fill_payload
from .ratelimit import RateLimiter
from .ws import WsHub, ws_handler

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_API_KEY = "sim-key"
DEFAULT_API_SECRET = "sim-secret"
DEFAULT_API_PASSPHRASE = "sim-passphrase"
DEPTH_PUSH_MS = 100
WATCHDOG_MS = 1000
HOLD_MAX_S = 3600.0  # a withheld ("lost") response is held at most this long


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Simulator:
    """A KuCoin Futures exchange in miniature on 127.0.0.1; a context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 1,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        api_passphrase: str = DEFAULT_API_PASSPHRASE,
        # market
        tick_ms: int = 100,
        vol_scale: float = 1.0,
        balances: Mapping[str, float] | None = None,
        # WebSocket
        ping_interval_ms: int = 18_000,
        ping_timeout_ms: int = 10_000,
        token_ttl_s: float = 86_400.0,
        # limits and time
        rate_limits: bool = True,
        rate_limit_quotas: Mapping[str, int] | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.host, self._port = host, port
        self.seed = seed
        self.credentials = Credentials(api_key, api_secret, api_passphrase)
        self.replays = ReplayGuard()  # signed requests seen in the timestamp window (loop thread only)
        self._market_args = dict(tick_ms=tick_ms, vol_scale=vol_scale, balances=balances)
        self._ws_args = dict(ping_interval_ms=ping_interval_ms, ping_timeout_ms=ping_timeout_ms,
                             token_ttl_ms=int(token_ttl_s * 1000))
        self.tick_ms = tick_ms
        self.now_ms = clock_ms
        self.limiter = RateLimiter(rate_limit_quotas, enabled=rate_limits)
        self.faults = Faults()
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self.exchange: Exchange | None = None
        self.hub: WsHub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._changed = threading.Condition()
        self._held: set[asyncio.Future] = set()
        self._market_paused = False
        # immutable snapshots for other threads (replaced, never mutated)
        self._topics: frozenset[str] = frozenset()
        self._connections = 0
        self._connections_total = 0

    def __repr__(self) -> str:
        return f"Simulator(url={self.url if self._ready.is_set() else None!r}, seed={self.seed})"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "Simulator":
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._thread = threading.Thread(target=self._run, name="kucoin-sim", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise self._startup_error
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout_s)
        thread.join(timeout_s)

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """REST base URL, e.g. http://127.0.0.1:43121 (KuCoin's https://api-futures.kucoin.com)."""
        return f"http://{self.host}:{self._port}"

    @property
    def ws_url(self) -> str:
        """The endpoint bullet-public/-private hand out."""
        return f"ws://{self.host}:{self._port}/endpoint"

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # surfaced to start() in the caller's thread
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _startup(self) -> None:
        now = self.now_ms()
        self.exchange = Exchange(seed=self.seed, now_ms=now, **self._market_args)
        self.hub = WsHub(known_symbols=set(self.exchange.market.symbols()),
                         user_id=self.exchange.trading.user_id, on_change=self.notify, **self._ws_args)
        app = web.Application(middlewares=[rest.not_found_middleware])
        app[SIM] = self
        app.router.add_get("/endpoint", ws_handler)
        control.add_routes(app)
        rest.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port, reuse_address=True)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]
        self._tasks = [asyncio.create_task(coro) for coro in
                       (self._market_loop(), self._depth_loop(), self._watchdog_loop())]

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for fut in self._held:
            fut.cancel()
        if self.hub is not None:
            self.hub.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
        asyncio.get_running_loop().stop()

    # -- loops ---------------------------------------------------------------------------------
    async def _market_loop(self) -> None:
        was_paused = False
        while True:
            if not self._market_paused:
                now = self.now_ms()
                if was_paused:
                    self.exchange.resume(now)  # a paused market does not replay its pause
                self.exchange.advance(now)
                self.pump(now)
            was_paused = self._market_paused
            await asyncio.sleep(self.tick_ms / 1000)

    async def _depth_loop(self) -> None:
        while True:
            await asyncio.sleep(DEPTH_PUSH_MS / 1000)
            self.hub.publish_depth(self.exchange.market, self.now_ms())

    async def _watchdog_loop(self) -> None:
        while True:
            await asyncio.sleep(WATCHDOG_MS / 1000)
            self.hub.watchdog(self.now_ms())

    # -- used by rest/ws on the loop thread ----------------------------------------------------
    def pump(self, now_ms: int) -> None:
        """Publish what the core emitted since the last pump."""
        events = self.exchange.drain_events()
        if events:
            self.hub.publish(events)

    def record_request(self, method: str, path: str) -> None:
        self.requests[(method, path)] += 1

    async def withhold(self, request: web.Request, mode: str) -> web.StreamResponse:
        if mode == "reset":
            request.transport.abort()
            raise asyncio.CancelledError
        fut = asyncio.get_running_loop().create_future()
        self._held.add(fut)
        try:
            await asyncio.wait_for(fut, HOLD_MAX_S)
        finally:
            self._held.discard(fut)
        raise asyncio.CancelledError

    def notify(self) -> None:
        """Refresh the snapshots other threads read and wake anyone waiting on a change."""
        hub = self.hub
        self._topics = hub.subscribed_topics()
        self._connections = len(hub.conns)
        self._connections_total = hub.connections_total
        with self._changed:
            self._changed.notify_all()

    # -- thread-safe API for tests and tools ---------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, timeout_s: float = 10.0) -> T:
        """Run fn(*args) on the simulator's loop thread and return its result."""
        async def run() -> T:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout_s)

    @property
    def subscriptions(self) -> frozenset[str]:
        """Every single-symbol topic some open connection is subscribed to."""
        return self._topics

    @property
    def connection_count(self) -> int:
        return self._connections

    @property
    def connections_total(self) -> int:
        return self._connections_total

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        """Wait until predicate() (reading snapshots, not calling into the loop) holds."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout_s)

    def wait_for_subscription(self, topic: str, timeout_s: float = 5.0) -> bool:
        return self.wait_until(lambda: topic in self._topics, timeout_s)

    def request_count(self, method: str, path: str) -> int:
        return self.call(lambda: self.requests[(method, path)])

    def orders(self) -> list[dict[str, Any]]:
        """Every order the account ever placed (KuCoin order dicts), oldest first."""
        return self.call(self.exchange.trading.all_orders)

    def positions(self) -> list[dict[str, Any]]:
        """Every open position of the account (KuCoin position dicts, with markPrice)."""
        return self.call(lambda: self.exchange.trading.positions({}, self.now_ms()))

    def fills(self) -> list[dict[str, Any]]:
        """Every fill of the account, liquidations included (KuCoin fill dicts), oldest first."""
        return self.call(lambda: [fill_payload(f) for f in self.exchange.trading.engine.fills])

    def last_prices(self, symbols: list[str]) -> dict[str, float]:
        """The last trade price of each symbol."""
        return self.call(lambda: {s: self.exchange.market.last_price(s) for s in symbols})

    def stop_orders(self) -> list[dict[str, Any]]:
        """Every untriggered stop order (KuCoin order dicts), oldest first."""
        return self.call(self.exchange.trading.all_stop_orders)

    # -- market and account hooks (no KuCoin counterpart; also under /sim/, control.py) --------
    def apply(self, fn: Callable[[Exchange, int], T]) -> T:
        """Run fn(exchange, now_ms) on the loop thread (the caller is on it) and push its events."""
        now = self.now_ms()
        try:
            return fn(self.exchange, now)
        finally:
            self.pump(now)

    def move_price(self, symbol: str, price: float, *, only: str | None = None) -> dict[str, float]:
        """Move `symbol` to `price` now: book, last trade, mark and index (or only="mark" /
        "index"); what that triggers (stops, liquidation) happens and is pushed before this
        returns. Returns the new {"last", "mark", "index"}."""
        return self.call(self.apply, lambda ex, now: ex.move_price(symbol, price, now, only))

    def set_account_mode(self, mode: str) -> None:
        """"CLASSIC" or "UNIFIED": what GET /api/ua/v1/account/mode reports."""
        self.call(self.apply, lambda ex, now: ex.set_account_mode(mode))

    def set_position_mode(self, hedged: bool) -> None:
        """Switch the account to hedge (or one-way) mode; SimError when it has anything open."""
        self.call(self.apply, lambda ex, now: ex.set_position_mode(hedged, now))

    def deleverage(self, symbol: str, lots: int | None = None) -> None:
        """Auto-deleverage `lots` (default all) of the position at the mark price (tradeType adl)."""
        self.call(self.apply, lambda ex, now: ex.deleverage(symbol, now, lots))

    def settle_funding(self, symbol: str) -> None:
        """Charge the symbol's current funding rate to its position now (position.settlement)."""
        self.call(self.apply, lambda ex, now: ex.settle_funding(symbol, now))

    # -- faults --------------------------------------------------------------------------------
    def drop_ws(self) -> int:
        """Abort every open WebSocket connection (a network drop); return how many."""
        def act() -> int:
            n = self.hub.drop_all()
            self.faults.ws_dropped += n
            return n
        return self.call(act)

    def half_open(self, *, private_only: bool = False) -> int:
        """Make every open connection (or every private one) half-open: kept open, nothing sent,
        pings unanswered; return how many."""
        return self.call(partial(self.hub.half_open_all, private_only=private_only))

    def send_malformed(self) -> int:
        def act() -> int:
            n = self.hub.send_malformed()
            self.faults.malformed_sent += n
            return n
        return self.call(act)

    def send_raw(self, payloads: list[bytes], *, binary: bool = False) -> int:
        """Push these payloads, as they are, to every open WebSocket connection, one frame each
        (text frames, or binary with ``binary``); return the connections written to."""
        frames = list(payloads)
        return self.call(self.hub.send_raw, frames, binary)

    def expire_tokens(self) -> int:
        """Expire every issued token: open connections get error 401 and are closed."""
        def act() -> int:
            n = self.hub.expire_tokens()
            self.faults.tokens_expired += n
            return n
        return self.call(act)

    def skip_level2_sequence(self, symbol: str) -> int:
        """Burn one level-2 sequence number of `symbol` (a lost delta); return it."""
        def act() -> int:
            self.faults.sequences_skipped += 1
            return self.exchange.market.skip_level2_sequence(symbol)
        return self.call(act)

    def refuse_ws(self, count: int) -> None:
        """Answer the next `count` WebSocket upgrades with HTTP 503."""
        def act() -> None:
            self.faults.refuse_ws_remaining = count
        self.call(act)

    def fail_next(self, method: str, path: str, *, status: int = 429, code: str = "429000",
                  msg: str = rest.TOO_MANY, rate_headers: bool = True, count: int = 1) -> None:
        """Answer the next `count` requests to (method, path) with this error, unserved."""
        rule = FailRule(method, path, status, code, msg, rate_headers, count)
        self.call(self.faults.fail_rules.append, rule)

    def lose_response(self, method: str, path: str, *, mode: str = "timeout", count: int = 1) -> None:
        """Serve the next `count` matching requests but never answer ("timeout") or reset."""
        if mode not in ("timeout", "reset"):
            raise ValueError("mode must be 'timeout' or 'reset'")
        self.call(self.faults.lose_rules.append, LoseRule(method, path, mode, count))

    @contextlib.contextmanager
    def delay_rest(self, seconds: float, method: str | None = None,
                   path: str | None = None) -> Iterator[None]:
        """Delay matching REST requests by `seconds` while the block runs."""
        def set_delay(s: float, m: str | None, p: str | None) -> None:
            self.faults.delay_s, self.faults.delay_method, self.faults.delay_path = s, m, p
        self.call(set_delay, seconds, method, path)
        try:
            yield
        finally:
            self.call(set_delay, 0.0, None, None)

    def set_maintenance(self, on: bool) -> None:
        self.call(setattr, self.exchange, "maintenance", on)

    def pause_market(self, paused: bool = True) -> None:
        """Freeze (or resume) the simulated market: no ticks, no market pushes."""
        self.call(setattr, self, "_market_paused", paused)

    def firehose(self, total: int, *, symbols: list[str] | None = None, rate_per_s: float | None = None,
                 topic: str = "tickerV2", timeout_s: float = 120.0) -> FirehoseResult:
        """Push `total` frames of `topic` ("tickerV2" or "level2") to the subscribers of `symbols`
        (default XBTUSDTM); level-2 frames are changes of the simulator's own books."""
        coro = run_firehose(self.hub, symbols or ["XBTUSDTM"], total, rate_per_s, topic=topic,
                            market=self.exchange.market)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)
