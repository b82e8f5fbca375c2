"""Keeping every shard connected: token, connect, replay, ping, dead detection, reconnect, renewal.

Internal to ``kucoin_websocket``; runs on the WebSocket thread's event loop. A shard is a slot of
at most ``max_topics_per_connection`` topics with one live connection at a time. Per shard,
``_supervise`` fetches a fresh bullet token (on the REST worker thread), connects, lets the
session replay the shard's topics after the welcome, waits for the connection to be lost, and
reconnects after the delay ``ReconnectDelays`` gives (at once after losing a healthy connection,
within limits; backoff after failed attempts).
``_tick`` sends due pings and queued subscribes (paced by the session's uplink budget), drops a
connection ``WsSession.dead_reason`` condemns, and renews one whose token is ``renew_after_s``
old: a new connection is opened and fully subscribed before the old one is closed.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from kucoin_futures.ws.feed import MarketFeed
from kucoin_futures.protocol.policy import ReconnectDelays
from kucoin_futures.protocol.session import FATAL, WsSession, classify_ws_error
from kucoin_futures.protocol.types import WsEndpoint
from kucoin_futures.rest.public import PRIORITY_TOKEN, RestWorker
from kucoin_futures.ws.socket import Connection, Owner, Shard, open_connection

__all__ = ["LinkConfig", "Shards"]

log = logging.getLogger(__name__)

TICK_MAX_S = 0.1  # housekeeping period (shorter when the bullet's ping interval is short)
RENEW_SUBSCRIBE_TIMEOUT_S = 30.0  # a renewal's new connection must be fully subscribed by then
RENEW_RETRY_S = 60.0  # after a failed renewal, keep the old connection and try again later
STOP_GRACE_S = 1.0  # how long closing waits for tasks to end and sockets to close
DELAY_HISTORY = 32


class LinkConfig:
    """Connection settings (plain attributes; built by ``KuCoinWebSocket``)."""

    def __init__(self, *, name: str, transport: type[Connection], clock: Callable[[], float],
                 rng: random.Random, max_topics_per_connection: int, renew_after_s: float,
                 connect_timeout_s: float, backoff_initial_s: float, backoff_cap_s: float) -> None:
        self.name = name
        self.transport = transport  # the Connection class of the chosen library (ws/transports.py)
        self.clock = clock
        self.rng = rng
        self.max_topics = max_topics_per_connection
        self.renew_after_s = renew_after_s
        self.connect_timeout_s = connect_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_cap_s = backoff_cap_s


class Shards:
    """Every shard's connection, kept alive; statistics readable from any thread."""

    def __init__(self, *, config: LinkConfig, feed: MarketFeed, worker: RestWorker,
                 token_provider: Callable[[], WsEndpoint], owner: Owner,
                 on_change: Callable[[], object]) -> None:
        self._cfg = config
        self._feed = feed
        self._worker = worker
        self._token_provider = token_provider
        self._owner = owner
        self._on_change = on_change  # a connection came up or went down
        self.shards: list[Shard] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connect_ids = itertools.count(1)
        self._closing = False
        self.reconnects = 0  # established connections lost (each is then reconnected)
        self.connect_failures = 0  # connect attempts that failed before the welcome
        self.connections_opened = 0
        self.delays_s: deque[float] = deque(maxlen=DELAY_HISTORY)

    def start(self) -> None:
        """Start housekeeping (call on the loop)."""
        self._spawn(self._tick_loop())

    async def close(self) -> None:
        """Cancel every task and close every socket; wait briefly for them to go."""
        self._closing = True
        tasks = list(self._tasks)
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

    # -- topics -------------------------------------------------------------------------------
    def with_room(self, pending: dict[Shard, list[str]]) -> Shard:
        """Return the first shard with room for one more topic (a new one if none has)."""
        for shard in self.shards:
            if shard.topic_count + len(pending.get(shard, ())) < self._cfg.max_topics:
                return shard
        return self.new_shard()

    def new_shard(self) -> Shard:
        """Add a shard and start keeping it connected."""
        shard = Shard(len(self.shards), WsSession())
        self.shards.append(shard)
        shard.task = self._spawn(self._supervise(shard))
        if len(self.shards) > 1:
            log.info("= opening connection %d: %d topics per connection reached", shard.index, self._cfg.max_topics)
        return shard

    @staticmethod
    def sessions(shard: Shard) -> list[tuple[Connection | None, WsSession]]:
        """The shard's (connection, session) pairs: the current one and a renewal's new one."""
        pairs: list[tuple[Connection | None, WsSession]] = [(shard.conn, shard.session)]
        if shard.candidate is not None and shard.candidate.session is not shard.session:
            pairs.append((shard.candidate, shard.candidate.session))
        return pairs

    def all_subscribed(self) -> bool:
        """True when every shard's connection is open and has all its acks (any thread)."""
        return all(_is_up(s) for s in list(self.shards))

    def health(self) -> str:
        """"up": every shard subscribed; "down": a shard that was up is not; else "pending" (a
        new shard is still connecting for the first time, the others are fine)."""
        result = "up"
        for shard in list(self.shards):
            if _is_up(shard):
                shard.was_up = True
            elif shard.was_up:
                return "down"
            else:
                result = "pending"
        return result

    # -- one shard's connection ---------------------------------------------------------------
    async def _supervise(self, shard: Shard) -> None:
        delays = ReconnectDelays(initial_s=self._cfg.backoff_initial_s, cap_s=self._cfg.backoff_cap_s,
                                 rng=self._cfg.rng)
        while True:
            watched: Connection | None = None
            fatal = False
            try:
                watched = shard.conn = await self._connect(shard, shard.session)
                self._on_change()
                reason, watched = await self._watch(shard, watched)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                fatal = classify_ws_error(exc) == FATAL
                reason = f"{type(exc).__name__}: {exc}"
                if fatal:
                    log.error("! connection %d failed: %s", shard.index, reason, exc_info=exc)
            shard.conn = None
            if watched is not None:  # an established connection was lost
                self._owner.on_lost(watched)
                self.reconnects += 1
                healthy = watched.subscribed.done() and watched.subscribed.exception() is None
                delay = delays.after_loss(self._cfg.clock(), healthy=healthy)
            else:
                self.connect_failures += 1
                delay = delays.after_failure(fatal=fatal)
            self._on_change()
            self.delays_s.append(delay)
            log.info("= connection %d lost (%s); reconnecting in %.2fs", shard.index, reason, delay)
            if delay > 0:
                await asyncio.sleep(delay)

    @staticmethod
    async def _watch(shard: Shard, conn: Connection) -> tuple[str, Connection]:
        # Wait for the shard's connection to be lost; a renewal retires the watched one and
        # installs its successor, which is then watched instead.
        while True:
            reason = await asyncio.shield(conn.lost)  # cancelling us must not cancel conn.lost
            successor = shard.conn
            if not conn.retired or successor is None or successor is conn:
                return reason, conn
            conn = successor

    async def _connect(self, shard: Shard, session: WsSession) -> Connection:
        token_at = self._cfg.clock()
        endpoint = await asyncio.wrap_future(self._worker.submit(PRIORITY_TOKEN, self._token_provider))
        conn = await open_connection(
            transport=self._cfg.transport, owner=self._owner, feed=self._feed, session=session, endpoint=endpoint,
            clock=self._cfg.clock, connect_id=f"{self._cfg.name}-{next(self._connect_ids)}",
            timeout_s=self._cfg.connect_timeout_s)
        if self._closing:
            # Closing began while we connected and something below swallowed the cancellation
            # (3.11's wait_for can): this socket must not outlive the loop.
            conn.close("client stopped", graceful=False)
            raise asyncio.CancelledError
        conn.token_at = token_at
        self.connections_opened += 1
        return conn

    # -- housekeeping -------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while True:
            tick_s = min([TICK_MAX_S] + [shard.session.ping_interval_s / 10 for shard in self.shards])
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
            conn = shard.conn
            if (conn is not None and shard.candidate is None and conn.token_at is not None
                    and now >= shard.next_renewal_at and now - conn.token_at >= self._cfg.renew_after_s
                    and conn.subscribed.done()):
                shard.next_renewal_at = now + RENEW_RETRY_S
                self._spawn(self._renew(shard, conn))

    async def _renew(self, shard: Shard, old: Connection) -> None:
        session = WsSession()
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
        now = self._cfg.clock()  # subscriptions may have changed while the new one was opening
        wanted = shard.session.desired_topics
        new.send(new.session.unsubscribe([t for t in new.session.desired_topics if t not in set(wanted)], now))
        new.send(new.session.subscribe(wanted, now))
        shard.session, shard.conn = new.session, new
        shard.next_renewal_at = 0.0  # the next renewal is due renew_after_s after this token
        old.retired = True
        old.close("renewed before its token expires")
        log.info("= renewed connection %d after %.0fs", shard.index, now - (old.token_at or now))


def _is_up(shard: Shard) -> bool:
    conn = shard.conn
    return (conn is not None and conn.is_open and conn.subscribed.done()
            and conn.subscribed.exception() is None)
