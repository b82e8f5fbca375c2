"""Keeping every link connected: token, connect, replay, ping, dead detection, reconnect, renewal.

Internal to ``kucoin_websocket``; runs on the WebSocket thread's event loop. A link is a slot of
at most ``max_topics_per_connection`` topics with one live connection at a time. Per link,
``_supervise`` fetches a fresh bullet token (through the ``RestPort``), connects, lets the
session replay the link's topics after the welcome, waits for the connection to be lost, and
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
from kucoin_futures.ws.rest_port import RestPort
from kucoin_futures.ws.owner import Owner
from kucoin_futures.ws.socket import Connection, Link, open_connection

__all__ = ["LinkConfig", "Links"]

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
                 connect_timeout_s: float, backoff_initial_s: float, backoff_cap_s: float,
                 max_ping_interval_s: float | None = None) -> None:
        self.name = name
        self.transport = transport  # the Connection class of the chosen library (ws/transports.py)
        self.clock = clock
        self.rng = rng
        self.max_topics = max_topics_per_connection
        self.renew_after_s = renew_after_s
        self.connect_timeout_s = connect_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_cap_s = backoff_cap_s
        self.max_ping_interval_s = max_ping_interval_s  # None: the server's pingInterval

    def new_session(self) -> WsSession:
        return WsSession(max_ping_interval_s=self.max_ping_interval_s)


class Links:
    """Every link's connection, kept alive; statistics readable from any thread."""

    def __init__(self, *, config: LinkConfig, feed: MarketFeed, rest: RestPort, owner: Owner) -> None:
        self._cfg = config
        self._feed = feed
        self._rest = rest
        self._owner = owner
        self.members: list[Link] = []
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
        conns = [c for link in self.members for c in (link.conn, link.candidate) if c is not None]
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
    def with_room(self, pending: dict[Link, list[str]]) -> Link:
        """Return the first link with room for one more topic (a new one if none has)."""
        for link in self.members:
            if link.topic_count + len(pending.get(link, ())) < self._cfg.max_topics:
                return link
        return self.new_link()

    def new_link(self) -> Link:
        """Add a link and start keeping it connected."""
        link = Link(len(self.members), self._cfg.new_session())
        self.members.append(link)
        link.task = self._spawn(self._supervise(link))
        if len(self.members) > 1:
            log.info("= opening connection %d: %d topics per connection reached", link.index, self._cfg.max_topics)
        return link

    @staticmethod
    def sessions(link: Link) -> list[tuple[Connection | None, WsSession]]:
        """The link's (connection, session) pairs: the current one and a renewal's new one."""
        pairs: list[tuple[Connection | None, WsSession]] = [(link.conn, link.session)]
        if link.candidate is not None and link.candidate.session is not link.session:
            pairs.append((link.candidate, link.candidate.session))
        return pairs

    def all_subscribed(self) -> bool:
        """True when every link's connection is open and has all its acks (any thread)."""
        return all(_is_up(s) for s in list(self.members))

    def health(self) -> str:
        """"up": every link subscribed; "down": a link that was up is not; else "pending" (a
        new link is still connecting for the first time, the others are fine)."""
        result = "up"
        for link in list(self.members):
            if _is_up(link):
                link.was_up = True
            elif link.was_up:
                return "down"
            else:
                result = "pending"
        return result

    # -- one link's connection ---------------------------------------------------------------
    async def _supervise(self, link: Link) -> None:
        delays = ReconnectDelays(initial_s=self._cfg.backoff_initial_s, cap_s=self._cfg.backoff_cap_s,
                                 rng=self._cfg.rng)
        while True:
            watched: Connection | None = None
            fatal = False
            try:
                watched = link.conn = await self._connect(link, link.session)
                self._owner.on_links_changed()
                reason, watched = await self._watch(link, watched)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                fatal = classify_ws_error(exc) == FATAL
                reason = f"{type(exc).__name__}: {exc}"
                if fatal:
                    log.error("! connection %d failed: %s", link.index, reason, exc_info=exc)
            link.conn = None
            if watched is not None:  # an established connection was lost
                self._owner.on_lost(watched)
                self.reconnects += 1
                healthy = watched.subscribed.done() and watched.subscribed.exception() is None
                delay = delays.after_loss(self._cfg.clock(), healthy=healthy)
            else:
                self.connect_failures += 1
                delay = delays.after_failure(fatal=fatal)
            self._owner.on_links_changed()
            self.delays_s.append(delay)
            log.info("= connection %d lost (%s); reconnecting in %.2fs", link.index, reason, delay)
            if delay > 0:
                await asyncio.sleep(delay)

    @staticmethod
    async def _watch(link: Link, conn: Connection) -> tuple[str, Connection]:
        # Wait for the link's connection to be lost; a renewal retires the watched one and
        # installs its successor, which is then watched instead.
        while True:
            reason = await asyncio.shield(conn.lost)  # cancelling us must not cancel conn.lost
            successor = link.conn
            if not conn.retired or successor is None or successor is conn:
                return reason, conn
            conn = successor

    async def _connect(self, link: Link, session: WsSession) -> Connection:
        token_at = self._cfg.clock()
        endpoint = await asyncio.wrap_future(self._rest.submit_token())
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
            tick_s = min([TICK_MAX_S] + [link.session.ping_interval_s / 10 for link in self.members])
            await asyncio.sleep(tick_s)
            try:
                self._tick(self._cfg.clock())
            except Exception:  # a bug here must not stop pings and liveness checks for good
                log.exception("! housekeeping failed")

    def _tick(self, now: float) -> None:
        for link in self.members:
            for conn in (link.conn, link.candidate):
                if conn is None or not conn.is_open:
                    continue
                session = conn.session
                conn.send(session.pending_frames(now))
                conn.send(session.due_ping(now))
                reason = session.dead_reason(now)
                if reason is not None:
                    log.warning("! %s is dead: %s", conn.label, reason)
                    conn.close(reason, graceful=False)
            conn = link.conn
            if (conn is not None and link.candidate is None and conn.token_at is not None
                    and now >= link.next_renewal_at and now - conn.token_at >= self._cfg.renew_after_s
                    and conn.subscribed.done()):
                link.next_renewal_at = now + RENEW_RETRY_S
                self._spawn(self._renew(link, conn))

    async def _renew(self, link: Link, old: Connection) -> None:
        session = self._cfg.new_session()
        session.subscribe(link.session.desired_topics, self._cfg.clock())
        new: Connection | None = None
        try:
            new = link.candidate = await self._connect(link, session)
            await asyncio.wait_for(asyncio.shield(new.subscribed), RENEW_SUBSCRIBE_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("! renewal of connection %d failed (%s); keeping the old one", link.index, exc)
            if new is not None:
                new.close("renewal failed", graceful=False)
            link.candidate = None
            return
        link.candidate = None
        if link.conn is not old or not old.is_open:
            new.close("superseded: the old connection was lost meanwhile", graceful=False)
            return
        now = self._cfg.clock()  # subscriptions may have changed while the new one was opening
        wanted = link.session.desired_topics
        new.send(new.session.unsubscribe([t for t in new.session.desired_topics if t not in set(wanted)], now))
        new.send(new.session.subscribe(wanted, now))
        link.session, link.conn = new.session, new
        link.next_renewal_at = 0.0  # the next renewal is due renew_after_s after this token
        old.retired = True
        old.close("renewed before its token expires")
        log.info("= renewed connection %d after %.0fs", link.index, now - (old.token_at or now))


def _is_up(link: Link) -> bool:
    conn = link.conn
    return (conn is not None and conn.is_open and conn.subscribed.done()
            and conn.subscribed.exception() is None)
