"""The WebSocket thread's event-loop side of ``KuCoinWebSocket``: shards, reconnects, renewals.

Internal. ``Engine`` runs on one asyncio loop in the WebSocket thread and owns every socket and
every ``FeedSession``; the public class talks to it only through ``loop.call_soon_threadsafe``.
Blocking REST calls (bullet tokens, level-2 snapshots, kline history) run on the ``RestWorker``
thread; the loop awaits their futures, so the reader never blocks on REST.

Per shard (a slot of at most ``max_topics_per_connection`` topics), ``_supervise`` keeps one
connection: fresh token, connect, welcome, replay of the shard's topics (batched and paced by
the session's uplink budget); then it waits for the loss and reconnects after the next backoff
delay (reset once a connection got all its acks). ``_tick`` sends due pings and queued
subscribes, drops connections ``WsSession.dead_reason`` condemns, and renews a connection
before its token's lifetime ends (a new connection is subscribed before the old one closes).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kucoin_cache import CandleCache
from kucoin_feed import FeedSession, MarketFeed
from kucoin_protocol import (
    FATAL,
    TOPIC_CANDLE,
    TOPIC_LEVEL2,
    Ack,
    BookStatus,
    ProtocolError,
    RateLimited,
    ServerError,
    Welcome,
    WsEndpoint,
    backoff,
    classify_ws_error,
    split_topic,
    timeframe_seconds,
)
from kucoin_restfeed import (
    PRIORITY_CANDLES,
    PRIORITY_SNAPSHOT,
    PRIORITY_TOKEN,
    RestGet,
    RestWorker,
    fetch_klines,
    fetch_order_book,
)
from kucoin_wsconn import Connection, Shard, open_connection

__all__ = ["Engine", "EngineConfig"]

log = logging.getLogger(__name__)

TICK_MAX_S = 0.1  # housekeeping period (shorter when the bullet's ping interval is short)
RENEW_SUBSCRIBE_TIMEOUT_S = 30.0  # a renewal's new connection must be fully subscribed by then
RENEW_RETRY_S = 60.0  # after a failed renewal, keep the old connection and try again later
JOB_BACKOFF_CAP_S = 30.0
SNAPSHOT_RETRY_INITIAL_S = 0.1  # a snapshot older than the buffered deltas: REST lags the stream
SNAPSHOT_RETRY_CAP_S = 5.0
STOP_GRACE_S = 0.5  # how long stop waits for sockets to report closed
DELAY_HISTORY = 32


class EngineConfig:
    """Settings the engine needs (plain attributes; built by ``KuCoinWebSocket``)."""

    def __init__(self, *, name: str, clock: Callable[[], float], wall_clock: Callable[[], float],
                 rng: random.Random, max_topics_per_connection: int, renew_after_s: float,
                 connect_timeout_s: float, backoff_initial_s: float, backoff_cap_s: float,
                 max_candles: int, confirm_delay_s: float | None) -> None:
        self.name = name
        self.clock = clock
        self.wall_clock = wall_clock
        self.rng = rng
        self.max_topics = max_topics_per_connection
        self.renew_after_s = renew_after_s
        self.connect_timeout_s = connect_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_cap_s = backoff_cap_s
        self.max_candles = max_candles
        self.confirm_delay_s = confirm_delay_s


class Engine:
    """Loop-side owner of shards, connections, REST jobs and the feed's subscriptions."""

    def __init__(self, *, config: EngineConfig, feed: MarketFeed, candles: CandleCache,
                 worker: RestWorker, token_provider: Callable[[], WsEndpoint], rest_get: RestGet,
                 on_state: Callable[[str], object]) -> None:
        self._cfg = config
        self.feed = feed
        self._candles = candles
        self._worker = worker
        self._token_provider = token_provider
        self._rest_get = rest_get
        self._on_state = on_state  # "up" when every shard is subscribed, "down" when one is lost
        self.shards: list[Shard] = []
        self._topic_shard: dict[str, Shard] = {}
        self._candle_topics: dict[str, tuple[str, str, str]] = {}  # topic -> (symbol, tf, kucoin id)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._book_tasks: dict[str, asyncio.Task[Any]] = {}
        self._backfill_tasks: dict[str, asyncio.Task[Any]] = {}
        self._backfill_from: dict[str, set[int | None]] = {}  # requested starts; None: newest held
        self._stop = asyncio.Event()
        self._connect_ids = itertools.count(1)
        # statistics, read (atomically) from other threads
        self.reconnects = 0
        self.connections_opened = 0
        self.delays_s: deque[float] = deque(maxlen=DELAY_HISTORY)

    @property
    def topics(self) -> list[str]:
        """Every subscribed single-symbol topic (safe to read from any thread)."""
        return list(self._topic_shard)

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until ``request_stop``; then close every socket and cancel every task."""
        if not self.shards:
            self._new_shard()
        tick = asyncio.ensure_future(self._tick_loop())
        try:
            await self._stop.wait()
        finally:
            tick.cancel()
            await self._shutdown()

    def request_stop(self) -> None:
        """Ask ``run`` to finish (call on the loop)."""
        self._stop.set()

    async def _shutdown(self) -> None:
        tasks = [shard.task for shard in self.shards if shard.task is not None] + list(self._tasks)
        for task in tasks:
            task.cancel()
        conns = [c for shard in self.shards for c in (shard.conn, shard.candidate) if c is not None]
        for conn in conns:
            conn.close("client stopped", graceful=False)
        waits = [t for t in tasks if not t.done()] + [c.lost for c in conns if not c.lost.done()]
        if waits:
            await asyncio.wait(waits, timeout=STOP_GRACE_S)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- subscriptions (called on the loop) -----------------------------------------------------
    def subscribe(self, topics: Iterable[str], candles: dict[str, tuple[str, str, str]] | None = None) -> None:
        """Add topics, each to the first shard with room (new shards as needed)."""
        if candles:
            self._candle_topics.update(candles)
        now = self._cfg.clock()
        groups: dict[Shard, list[str]] = {}
        for topic in topics:
            if topic in self._topic_shard:
                continue
            shard = self._shard_with_room(groups)
            self._topic_shard[topic] = shard
            groups.setdefault(shard, []).append(topic)
        for shard, group in groups.items():
            for conn, session in self._sessions(shard):
                frames = session.subscribe(group, now)
                if conn is not None:
                    conn.send(frames)

    def unsubscribe(self, topics: Iterable[str]) -> None:
        """Remove topics from their shards."""
        now = self._cfg.clock()
        for topic in topics:
            shard = self._topic_shard.pop(topic, None)
            self._candle_topics.pop(topic, None)
            if shard is None:
                continue
            for conn, session in self._sessions(shard):
                frames = session.unsubscribe(topic, now)
                if conn is not None:
                    conn.send(frames)

    def _sessions(self, shard: Shard) -> list[tuple[Connection | None, FeedSession]]:
        pairs: list[tuple[Connection | None, FeedSession]] = [(shard.conn, shard.session)]
        if shard.candidate is not None and shard.candidate.session is not shard.session:
            pairs.append((shard.candidate, shard.candidate.session))
        return pairs

    def _shard_with_room(self, pending: dict[Shard, list[str]]) -> Shard:
        for shard in self.shards:
            if shard.topic_count + len(pending.get(shard, ())) < self._cfg.max_topics:
                return shard
        return self._new_shard()

    def _new_shard(self) -> Shard:
        shard = Shard(len(self.shards), FeedSession())
        self.shards.append(shard)
        shard.task = asyncio.ensure_future(self._supervise(shard))
        if len(self.shards) > 1:
            log.info("= opening connection %d: %d topics per connection reached",
                     shard.index, self._cfg.max_topics)
        return shard

    # -- one shard's connection -----------------------------------------------------------------
    async def _supervise(self, shard: Shard) -> None:
        delays = self._backoff()
        while True:
            watched: Connection | None = None
            fatal = False
            try:
                watched = shard.conn = await self._connect(shard, shard.session)
                self._update_state()
                reason, watched = await self._watch(shard, watched)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                fatal = classify_ws_error(exc) == FATAL
                reason = f"{type(exc).__name__}: {exc}"
                if fatal:
                    log.error("! connection %d failed: %s", shard.index, reason, exc_info=exc)
            if watched is not None and watched.subscribed.done() and watched.subscribed.exception() is None:
                delays = self._backoff()  # it worked: start over from a sub-second delay
            shard.conn = None
            self._on_state("down")
            self.reconnects += 1
            delay = self._cfg.backoff_cap_s if fatal else next(delays)
            self.delays_s.append(delay)
            log.info("= connection %d lost (%s); reconnecting in %.2fs", shard.index, reason, delay)
            await asyncio.sleep(delay)

    @staticmethod
    async def _watch(shard: Shard, conn: Connection) -> tuple[str, Connection]:
        # Wait for the shard's connection to be lost; a renewal retires the watched one and
        # installs its successor, which is then watched instead.
        while True:
            reason = await conn.lost
            successor = shard.conn
            if not conn.retired or successor is None or successor is conn:
                return reason, conn
            conn = successor

    async def _connect(self, shard: Shard, session: FeedSession) -> Connection:
        token_at = self._cfg.clock()
        endpoint = await asyncio.wrap_future(self._worker.submit(PRIORITY_TOKEN, self._token_provider))
        shard.connects += 1
        conn = await open_connection(
            owner=self, feed=self.feed, shard=shard, session=session, endpoint=endpoint,
            clock=self._cfg.clock, connect_id=f"{self._cfg.name}-{next(self._connect_ids)}",
            timeout_s=self._cfg.connect_timeout_s)
        conn.token_at = token_at
        self.connections_opened += 1
        return conn

    def _backoff(self) -> Iterator[float]:
        return backoff(initial_s=self._cfg.backoff_initial_s, cap_s=self._cfg.backoff_cap_s, rng=self._cfg.rng)

    # -- frames other than market pushes (called by Connection) --------------------------------
    def on_control(self, conn: Connection, raw: bytes, now: float) -> None:
        """Feed a welcome/ack/pong/error frame to the connection's session and act on it."""
        try:
            events = conn.session.on_text(raw, now)
        except ProtocolError as exc:
            self.feed.note_malformed(raw, now, str(exc))
            return
        for event in events:
            if isinstance(event, Welcome):
                conn.send(conn.session.pending_frames(now))
                self._check_subscribed(conn)
            elif isinstance(event, Ack):
                self._on_ack(conn, event)
            elif isinstance(event, ServerError):
                self._on_server_error(conn, event)

    def _on_ack(self, conn: Connection, ack: Ack) -> None:
        if ack.topic is not None:
            prefix, symbols = split_topic(ack.topic)
            desired = set(conn.session.desired_topics)  # an unsubscribe's topics are gone from it
            for topic in (f"{prefix}:{symbol}" for symbol in symbols):
                if topic in desired:
                    self._on_subscribed(conn, topic)
        self._check_subscribed(conn)

    def _on_subscribed(self, conn: Connection, topic: str) -> None:
        prefix, _, arg = topic.partition(":")
        if prefix == TOPIC_LEVEL2:
            self.feed.attach_book(arg, conn)  # buffers this socket's deltas, asks for a snapshot
        elif prefix == TOPIC_CANDLE and topic in self._candle_topics:
            self._request_backfill(topic)  # fills whatever the socket missed (or the history)

    def _check_subscribed(self, conn: Connection) -> None:
        session = conn.session
        if not session.is_welcomed or not set(session.desired_topics) <= session.active_topics:
            return
        if conn.mark_subscribed():
            log.info("= %s subscribed to %d topics", conn.label, len(session.desired_topics))
            self._update_state()

    def _update_state(self) -> None:
        # The acks may all arrive before _supervise has installed the connection: both call this.
        if all(s.conn is not None and s.conn.subscribed.done() and s.conn.subscribed.exception() is None
               for s in self.shards):
            self._on_state("up")

    def _on_server_error(self, conn: Connection, error: ServerError) -> None:
        if error.topic is not None and classify_ws_error(error) == FATAL:
            log.warning("! %s refused topic %s: %s %s", conn.label, error.topic, error.code, error.message)
            self._check_subscribed(conn)  # the session dropped the refused topics
            return
        # Expired token (401), rate limits (509) and the like: a fresh connection with a fresh
        # token replays everything (a retryable subscribe failure is not re-sent otherwise).
        log.warning("! %s: server error %s %s; reconnecting", conn.label, error.code, error.message)
        conn.close(f"server error {error.code} {error.message}")

    def on_disconnected(self, conn: Connection) -> None:
        """A socket closed: its books go out of sync until a new connection re-attaches them."""
        self.feed.detach(conn)

    # -- housekeeping ---------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while True:
            tick_s = TICK_MAX_S
            for shard in self.shards:
                tick_s = min(tick_s, shard.session.ping_interval_s / 10)
            await asyncio.sleep(tick_s)
            try:
                self._tick(self._cfg.clock())
            except Exception:  # a bug here must not stop pings and liveness checks for good
                log.exception("! housekeeping failed")

    def _tick(self, now: float) -> None:
        for shard in self.shards:
            for conn in (shard.conn, shard.candidate):
                if conn is None or not conn.is_open:
                    continue
                session = conn.session
                conn.send(session.pending_frames(now))
                conn.send(session.due_ping(now))
                reason = session.dead_reason(now)
                if reason is not None:
                    log.warning("! %s is dead: %s", conn.label, reason)
                    conn.close(reason, graceful=False)
            self._maybe_renew(shard, now)

    def _maybe_renew(self, shard: Shard, now: float) -> None:
        conn = shard.conn
        if conn is None or shard.candidate is not None or conn.token_at is None or now < shard.next_renewal_at:
            return
        if now - conn.token_at >= self._cfg.renew_after_s and conn.subscribed.done():
            shard.next_renewal_at = now + RENEW_RETRY_S
            self._spawn(self._renew(shard, conn))

    async def _renew(self, shard: Shard, old: Connection) -> None:
        session = FeedSession()
        session.subscribe(shard.session.desired_topics, self._cfg.clock())
        new: Connection | None = None
        try:
            new = shard.candidate = await self._connect(shard, session)
            await asyncio.wait_for(asyncio.shield(new.subscribed), RENEW_SUBSCRIBE_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("! renewal of connection %d failed (%s); keeping the old one", shard.index, exc)
            if new is not None:
                new.close("renewal failed", graceful=False)
            shard.candidate = None
            return
        shard.candidate = None
        if shard.conn is not old or not old.is_open:
            new.close("superseded: the old connection was lost meanwhile", graceful=False)
            return
        # Subscriptions changed while the new connection was being opened.
        now = self._cfg.clock()
        wanted = shard.session.desired_topics
        new.send(new.session.unsubscribe([t for t in new.session.desired_topics if t not in set(wanted)], now))
        new.send(new.session.subscribe(wanted, now))
        shard.session, shard.conn = new.session, new
        shard.next_renewal_at = 0.0  # the next renewal is due renew_after_s after this token
        old.retired = True
        old.close("renewed before its token expires")
        log.info("= renewed connection %d after %.0fs", shard.index, now - (old.token_at or now))

    # -- REST jobs on the worker thread ----------------------------------------------------------
    def request_snapshot(self, kucoin_id: str) -> None:
        """Start syncing ``kucoin_id``'s book from a REST snapshot unless that already runs."""
        task = self._book_tasks.get(kucoin_id)
        if task is None or task.done():
            self._book_tasks[kucoin_id] = self._spawn(self._sync_book(kucoin_id))

    async def _sync_book(self, kucoin_id: str) -> None:
        delays = backoff(initial_s=SNAPSHOT_RETRY_INITIAL_S, cap_s=SNAPSHOT_RETRY_CAP_S, rng=self._cfg.rng)
        while self.feed.book_needs_snapshot(kucoin_id):
            snapshot = await self._job(f"level2 snapshot {kucoin_id}", PRIORITY_SNAPSHOT, self._fetch_book,
                                       kucoin_id)
            if snapshot is None:
                return
            status = self.feed.apply_snapshot(snapshot, kucoin_id, self._cfg.clock())
            if status is not BookStatus.GAP:
                if status is BookStatus.OK:
                    log.info("= %s book synced at sequence %d", kucoin_id, snapshot.sequence)
                return
            await asyncio.sleep(next(delays))

    def _fetch_book(self, kucoin_id: str) -> Any:
        return fetch_order_book(self._rest_get, kucoin_id, received_at=self._cfg.clock())

    def candle_period_closed(self, topic: str, start_ms: int) -> None:
        """Re-read a period that just closed from REST, once REST has its last trades."""
        if self._cfg.confirm_delay_s is not None:
            asyncio.get_running_loop().call_later(self._cfg.confirm_delay_s, self._request_backfill, topic, start_ms)

    def _request_backfill(self, topic: str, from_ms: int | None = None) -> None:
        # from_ms None: from the newest candle held (a refill after a (re)subscribe). Requests
        # arriving while a fetch runs are merged into one more fetch after it.
        if topic not in self._candle_topics:
            return
        self._backfill_from.setdefault(topic, set()).add(from_ms)
        task = self._backfill_tasks.get(topic)
        if task is None or task.done():
            self._backfill_tasks[topic] = self._spawn(self._backfill(topic))

    async def _backfill(self, topic: str) -> None:
        while topic in self._candle_topics and self._backfill_from.get(topic):
            starts = self._backfill_from.pop(topic)
            symbol, timeframe, kucoin_id = self._candle_topics[topic]
            explicit = min((start for start in starts if start is not None), default=None)
            await self._job(f"klines {kucoin_id} {timeframe}", PRIORITY_CANDLES, self._fetch_candles,
                            symbol, timeframe, kucoin_id, explicit, None in starts)

    def _fetch_candles(self, symbol: str, timeframe: str, kucoin_id: str, from_ms: int | None,
                       from_newest: bool) -> int:
        # Runs on the worker thread: fetch from the newest candle held (it may have been partial)
        # and/or from an explicit start, to now; merge. Without history: the last max_candles.
        span_ms = timeframe_seconds(timeframe) * 1000
        now_ms = int(self._cfg.wall_clock() * 1000)
        oldest_ms = now_ms - self._cfg.max_candles * span_ms
        starts = [from_ms] if from_ms is not None else []
        if from_newest:
            newest_ms = self._candles.last_start_ms(symbol, timeframe)
            starts.append(oldest_ms if newest_ms is None else newest_ms)
        start_ms = max(min(starts), oldest_ms)
        received_at = self._cfg.clock()  # request start: a push received after it wins the merge
        candles = fetch_klines(self._rest_get, kucoin_id, timeframe, from_ms=start_ms, to_ms=now_ms,
                               received_at=received_at)
        self._candles.merge(symbol, timeframe, candles, received_at=received_at)
        return len(candles)

    async def _job(self, label: str, priority: int, fn: Callable[..., Any], *args: Any) -> Any:
        # Run fn on the worker thread; retry retryable failures with backoff (a rate limit's
        # retry_after_s when given); return None after a fatal one.
        delays = backoff(initial_s=0.5, cap_s=JOB_BACKOFF_CAP_S, rng=self._cfg.rng)
        while True:
            try:
                return await asyncio.wrap_future(self._worker.submit(priority, fn, *args))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if classify_ws_error(exc) == FATAL:
                    log.error("! %s failed: %s", label, exc, exc_info=exc)
                    return None
                retry_after = exc.retry_after_s if isinstance(exc, RateLimited) else None
                delay = retry_after if retry_after is not None else next(delays)
                log.warning("! %s failed (%s); retrying in %.1fs", label, exc, delay)
                await asyncio.sleep(delay)
