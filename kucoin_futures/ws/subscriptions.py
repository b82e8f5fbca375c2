"""The event-loop side of ``KuCoinWebSocket``: subscriptions, control frames, state and stats.

Internal. ``Engine`` runs on one asyncio loop in the WebSocket thread and owns the feed
(``MarketFeed``), the links' connections (``Links``) and the REST jobs (``RestJobs``); the
public class talks to it only through ``loop.call_soon_threadsafe``, except for ``stats`` and
``is_healthy``, which read counters and snapshots that are safe from any thread.

A subscription becomes single-symbol topics, each assigned to the first link with room. When
the server acknowledges a topic on a connection, the engine starts what that topic needs: a
level-2 book is attached to that connection and synced from a REST snapshot; a candle series is
refilled from REST kline history (everything the socket may have missed). A server error for
one of our subscribes either drops the topic (refused: 4xx) or, like an expired token, closes
the connection so that a fresh one replays everything.
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from kucoin_futures.ws.caches import CandleCache, OrderBookCache, TickerCache
from kucoin_futures.ws.feed import MarketFeed, PushHandler
from kucoin_futures.errors import ProtocolError
from kucoin_futures.protocol.session import FATAL, classify_ws_error
from kucoin_futures.protocol.types import Ack, Candle, OrderBook, ServerError, Ticker, Welcome
from kucoin_futures.protocol.wire import (
    TOPIC_CANDLE,
    TOPIC_LEVEL2,
    split_topic,
    topic_candle,
    topic_level2,
    topic_ticker,
    topic_ticker_v2,
)
from kucoin_futures.ws.socket import Connection, Link
from kucoin_futures.ws.backfill import RestJobs
from kucoin_futures.ws.links import LinkConfig, Links
from kucoin_futures.ws.rest_port import RestPort

__all__ = ["Callbacks", "Engine", "FeedStats", "State", "TopicStats"]

log = logging.getLogger(__name__)


class State(enum.Enum):
    """Lifecycle of a ``KuCoinWebSocket``."""

    NEW = "new"  # constructed; nothing started
    CONNECTING = "connecting"  # started, not every connection subscribed yet
    RUNNING = "running"  # every connection is up and has all its acks
    RECONNECTING = "reconnecting"  # was running; a connection is being re-established
    CLOSED = "closed"  # stopped (or its thread died); cannot be restarted


@dataclasses.dataclass(frozen=True, slots=True)
class TopicStats:
    """Messages received on one topic and the age of the newest (None: none yet)."""

    messages: int
    age_s: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class FeedStats:
    """A snapshot of the feed's health (``KuCoinWebSocket.stats()``)."""

    state: State
    topics: Mapping[str, TopicStats]
    messages: int
    malformed: int  # frames dropped: not JSON, a wrong shape, or a value no market has
    connections: int  # open now
    connections_opened: int  # since start
    reconnects: int  # established connections lost (and reconnected)
    connect_failures: int  # connect attempts that failed before a connection was established
    reconnect_delays_s: tuple[float, ...]  # the most recent backoff delays, oldest first
    resyncs: Mapping[str, int]  # order-book resyncs per symbol
    token_ages_s: tuple[float, ...]  # per open connection
    quiet_s: tuple[float, ...]  # per open connection: seconds since it last received a frame
    refused_topics: Mapping[str, str]  # topics the server refused, with its error


@dataclasses.dataclass(frozen=True, slots=True)
class Callbacks:
    """The user's callbacks (each may be None)."""

    on_ticker: Callable[[Ticker], object] | None = None
    on_candle: Callable[[str, str, Candle], object] | None = None
    on_order_book: Callable[[OrderBook], object] | None = None
    push_handlers: Mapping[str, PushHandler] = dataclasses.field(default_factory=dict)  # other subjects


class Engine:
    """Loop-side owner of the feed, the links' connections and the REST jobs."""

    def __init__(self, *, link: LinkConfig, tickers: TickerCache, candles: CandleCache,
                 books: OrderBookCache, callbacks: Callbacks, book_depth: int | None, rest: RestPort,
                 wall_clock: Callable[[], float], rng: random.Random, confirm_delay_s: float | None,
                 on_state: Callable[[str], object]) -> None:
        # The feed, the connections and the links report here (ws.owner.Owner); the engine
        # forwards what the REST jobs must do.
        self.feed = MarketFeed(tickers=tickers, candles=candles, books=books, owner=self,
                               on_ticker=callbacks.on_ticker, on_candle=callbacks.on_candle,
                               on_order_book=callbacks.on_order_book, book_depth=book_depth,
                               push_handlers=callbacks.push_handlers)
        self.jobs = RestJobs(rest=rest, books=self.feed.books, candles=candles, clock=link.clock,
                             wall_clock=wall_clock, rng=rng, confirm_delay_s=confirm_delay_s)
        self.links = Links(config=link, feed=self.feed, rest=rest, owner=self)
        self._clock = link.clock
        self._on_state = on_state  # Links.health(): "up", "down" (a link lost) or "pending"
        self._topic_link: dict[str, Link] = {}
        self._refused: dict[str, str] = {}
        self._stop = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until ``request_stop``; then close every socket and cancel every task."""
        if not self.links.members:
            self.links.new_link()
        self.links.start()
        try:
            await self._stop.wait()
        finally:
            jobs = self.jobs.cancel_all()
            await self.links.close()
            if jobs:
                await asyncio.wait(jobs, timeout=0.1)

    def request_stop(self) -> None:
        """Ask ``run`` to finish (call on the loop)."""
        self._stop.set()

    # -- subscriptions (call on the loop) -------------------------------------------------------
    def add_ticker(self, symbol: str, kucoin_id: str, last_trade: bool) -> None:
        """Keep the ticker of ``symbol`` (best bid/ask, and the last trade if ``last_trade``)."""
        self.feed.want_ticker(symbol, kucoin_id)
        self._subscribe([topic_ticker_v2(kucoin_id)] + ([topic_ticker(kucoin_id)] if last_trade else []))

    def remove_ticker(self, symbol: str, kucoin_id: str) -> None:
        """Drop the ticker of ``symbol``."""
        self.feed.unwant_ticker(symbol, kucoin_id)
        self._unsubscribe([topic_ticker_v2(kucoin_id), topic_ticker(kucoin_id)])

    def add_candles(self, symbol: str, timeframe: str, kucoin_id: str) -> None:
        """Keep the candles of ``symbol``/``timeframe`` (REST history once subscribed)."""
        topic = topic_candle(kucoin_id, timeframe)
        self.feed.want_candles(topic, symbol, timeframe)
        self.jobs.want_candles(topic, symbol, timeframe, kucoin_id)
        self._subscribe([topic])

    def remove_candles(self, kucoin_id: str, timeframe: str) -> None:
        """Drop the candles of ``kucoin_id``/``timeframe``."""
        topic = topic_candle(kucoin_id, timeframe)
        self.feed.unwant_candles(topic)
        self.jobs.unwant_candles(topic)
        self._unsubscribe([topic])

    def add_book(self, symbol: str, kucoin_id: str) -> None:
        """Keep the level-2 book of ``symbol``."""
        self.feed.books.want(symbol, kucoin_id)
        self._subscribe([topic_level2(kucoin_id)])

    def remove_book(self, kucoin_id: str) -> None:
        """Drop the level-2 book of ``kucoin_id``."""
        self.feed.books.unwant(kucoin_id)
        self._unsubscribe([topic_level2(kucoin_id)])

    def add_topics(self, topics: Iterable[str]) -> None:
        """Keep raw topics (their pushes go to the callbacks' ``push_handlers``)."""
        self._subscribe(topics)

    def _subscribe(self, topics: Iterable[str]) -> None:
        now = self._clock()
        groups: dict[Link, list[str]] = {}
        for topic in topics:
            if topic not in self._topic_link:
                link = self.links.with_room(groups)
                self._topic_link[topic] = link
                groups.setdefault(link, []).append(topic)
                self._refused.pop(topic, None)
        for link, group in groups.items():
            for conn, session in self.links.sessions(link):
                frames = session.subscribe(group, now)
                if conn is not None:
                    conn.send(frames)

    def _unsubscribe(self, topics: Iterable[str]) -> None:
        now = self._clock()
        for topic in topics:
            link = self._topic_link.pop(topic, None)
            if link is not None:
                for conn, session in self.links.sessions(link):
                    frames = session.unsubscribe(topic, now)
                    if conn is not None:
                        conn.send(frames)

    # -- reports from below (ws.owner.Owner) -----------------------------------------------------
    def on_snapshot_needed(self, kucoin_id: str) -> None:
        """The feed: a book needs a REST snapshot."""
        self.jobs.request_snapshot(kucoin_id)

    def on_period_closed(self, topic: str, start_ms: int) -> None:
        """The feed: a push for a later candle period arrived; re-read the closed one."""
        self.jobs.candle_period_closed(topic, start_ms)

    def on_links_changed(self) -> None:
        """The links: a connection came up or went down."""
        self._update_state()

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

    def on_disconnected(self, conn: Connection) -> None:
        """A socket closed: its books go out of sync until a new connection re-attaches them."""
        self.feed.books.detach(conn)

    def on_lost(self, conn: Connection) -> None:
        """A link's connection was lost: its candle series may get a hole until the refill."""
        for topic in conn.session.desired_topics:
            if topic.startswith(TOPIC_CANDLE):
                self.jobs.note_gap(topic)
        self.feed.hide_candles(conn.session.desired_topics)

    def _on_ack(self, conn: Connection, ack: Ack) -> None:
        if ack.topic is not None:
            prefix, symbols = split_topic(ack.topic)
            desired = set(conn.session.desired_topics)  # an unsubscribe's topics are gone from it
            for topic in (f"{prefix}:{symbol}" for symbol in symbols):
                if topic not in desired:
                    continue
                if prefix == TOPIC_LEVEL2:
                    self.feed.books.attach(topic.partition(":")[2], conn)  # buffer, then snapshot
                elif prefix == TOPIC_CANDLE:
                    self.jobs.request_backfill(topic)  # whatever the socket missed, or the history
        self._check_subscribed(conn)

    def _check_subscribed(self, conn: Connection) -> None:
        session = conn.session
        if session.is_welcomed and set(session.desired_topics) <= session.active_topics and conn.mark_subscribed():
            # A connection opened before anything was subscribed is internal; a replay is news.
            log.log(logging.INFO if session.desired_topics else logging.DEBUG, "= %s subscribed to %d topics",
                    conn.label, len(session.desired_topics))
            self._update_state()

    def _update_state(self) -> None:
        # The acks may all arrive before Links has installed the connection: both call this.
        self._on_state(self.links.health())

    def _on_server_error(self, conn: Connection, error: ServerError) -> None:
        if error.topic is not None and classify_ws_error(error) == FATAL:
            # The session dropped the refused topics (e.g. 404 unknown contract). A batch is
            # refused whole for one bad symbol: retry its topics one by one (each alone in its
            # subscribe message) to keep the good ones; a single topic refused is forgotten.
            prefix, symbols = split_topic(error.topic)
            topics = [f"{prefix}:{symbol}" for symbol in symbols]
            if len(topics) > 1:
                log.info("= %s refused a batch (%s %s); subscribing its %d topics one by one",
                         conn.label, error.code, error.message, len(topics))
                now = self._clock()
                for topic in topics:
                    conn.send(conn.session.subscribe(topic, now))
                return
            log.warning("! %s refused %s: %s %s", conn.label, error.topic, error.code, error.message)
            self._topic_link.pop(topics[0], None)
            self._refused[topics[0]] = f"{error.code} {error.message}"
            self._check_subscribed(conn)
            return
        # Expired token (401), rate limits (509) and the like: a fresh connection with a fresh
        # token replays everything (a retryable subscribe failure is not re-sent otherwise).
        log.warning("! %s: server error %s %s; reconnecting", conn.label, error.code, error.message)
        conn.close(f"server error {error.code} {error.message}")

    # -- read from any thread ---------------------------------------------------------------------
    def stats(self, state: State, now: float) -> FeedStats:
        """Return a snapshot of counters (dict and deque copies are atomic in CPython)."""
        received = dict(self.feed.topic_stats)
        topics = {}
        for topic in list(self._topic_link):
            stat = received.get(topic)
            topics[topic] = TopicStats(stat[0], now - stat[1]) if stat else TopicStats(0, None)
        conns = [s.conn for s in list(self.links.members) if s.conn is not None and s.conn.is_open]
        return FeedStats(
            state=state,
            topics=MappingProxyType(topics),
            messages=sum(stat[0] for stat in received.values()),
            malformed=self.feed.malformed,
            connections=len(conns),
            connections_opened=self.links.connections_opened,
            reconnects=self.links.reconnects,
            connect_failures=self.links.connect_failures,
            reconnect_delays_s=tuple(self.links.delays_s),
            resyncs=MappingProxyType(self.feed.books.resync_counts()),
            token_ages_s=tuple(now - c.token_at for c in conns if c.token_at is not None),
            quiet_s=tuple(q for q in (c.session.quiet_s(now) for c in conns) if q is not None),
            refused_topics=MappingProxyType(dict(self._refused)),
        )
