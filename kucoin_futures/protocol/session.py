"""The WebSocket session state (``WsSession``), the uplink budget and the error policy
(``classify_ws_error``) of the pure (sans-I/O) KuCoin Futures protocol layer.

No sockets, threads, clock reads or logging above DEBUG here or anywhere in ``protocol/``: time
comes in as ``now`` (monotonic seconds) and I/O is the caller's job. The rest of the layer lives
beside it: ``types`` (frozen values, symbols, timeframes), ``wire`` (topics, frame builders,
the REST envelope), ``parse`` (a parser per payload), ``book`` (level-2 sync), ``candles``
(columnar candle series) and ``policy`` (reconnect delays); the exception tree is
``kucoin_futures.errors``.

A connection's life with ``WsSession`` (the I/O thread only moves text)::

    session.reset(now, endpoint)          # new socket opened to ws_connect_url(endpoint, cid)
    send(session.resubscribe_all(now))    # replay; frames wait until the welcome arrives
    loop:
        for event in session.on_text(raw, now): ...      # Welcome/Ack/Pong/ServerError
        send(session.pending_frames(now)); send(session.due_ping(now))
        if session.is_dead(now): reconnect after next(backoff_delays)
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
from collections import deque
from collections.abc import Iterable
from typing import Literal

from kucoin_futures.errors import (
    AuthError,
    ClientClosed,
    ConfigError,
    InvalidArgument,
    ProtocolError,
    TransportError,
)
from kucoin_futures.protocol.parse import decode_frame, parse_frame
from kucoin_futures.protocol.types import Ack, Event, Pong, ServerError, Welcome, WsEndpoint
from kucoin_futures.protocol.wire import (
    MAX_TOPICS_PER_MESSAGE,
    TOPIC_LEVEL2,
    batch_topics,
    build_ping,
    build_subscribe,
    build_unsubscribe,
    split_topic,
)

__all__ = ["FATAL", "RETRY", "UplinkBudget", "WsSession", "classify_ws_error"]

log = logging.getLogger(__name__)

# -- WebSocket limits and timings (protocol notes sections 9.1, 9.2, 9.5) ---------------------
DEFAULT_PING_INTERVAL_S = 18.0  # bullet pingInterval 18000 ms
DEFAULT_PING_TIMEOUT_S = 10.0  # bullet pingTimeout 10000 ms
DEFAULT_WELCOME_TIMEOUT_S = 10.0  # docs: usable only after welcome; KuCoin's SDK waits 5 s
DEFAULT_ACK_TIMEOUT_S = 10.0  # not documented; an unanswered subscribe means a broken session
UPLINK_LIMIT = 100  # docs-new "Rate Limit": <= 100 client messages per 10 s per connection
UPLINK_WINDOW_S = 10.0
_LEVEL2_PREFIX = TOPIC_LEVEL2 + ":"

RETRY: Literal["retry"] = "retry"
FATAL: Literal["fatal"] = "fatal"
# WS error codes / handshake HTTP statuses. 401 is an expired token (24 h): a fresh bullet
# token fixes it. 509 is a rate limit (messages/s or topics per message). 4xx others mean our
# request or URL is wrong and repeating it cannot help.
RETRY_CODES = frozenset({401, 408, 429, 509})
FATAL_CODES = frozenset({400, 403, 404, 405, 415})
# Exceptions that are bugs or bad configuration, never fixed by reconnecting.
FATAL_EXCEPTIONS = (ConfigError, AuthError, InvalidArgument, ClientClosed, TypeError, ValueError,
                    AttributeError, NameError, LookupError, AssertionError, NotImplementedError, ImportError)


class UplinkBudget:
    """Sliding-window count of client messages: at most ``limit`` per ``window_s``."""

    def __init__(self, limit: int = UPLINK_LIMIT, window_s: float = UPLINK_WINDOW_S) -> None:
        self._limit = limit
        self._window_s = window_s
        self._sent_at: deque[float] = deque()

    def available(self, now: float) -> int:
        """Return how many messages may be sent at ``now``."""
        while self._sent_at and self._sent_at[0] <= now - self._window_s:
            self._sent_at.popleft()
        return self._limit - len(self._sent_at)

    def record(self, now: float) -> None:
        """Count one message sent at ``now``."""
        self._sent_at.append(now)

    def reset(self) -> None:
        """Forget all sends (the budget is per connection)."""
        self._sent_at.clear()


@dataclasses.dataclass(frozen=True, slots=True)
class _Request:
    msg_id: str
    kind: Literal["subscribe", "unsubscribe"]
    topic: str  # possibly comma-batched
    text: str


class WsSession:
    """Sans-I/O state of one logical KuCoin WebSocket feed across reconnects.

    Keeps the desired subscriptions (single-symbol topics, replayed after each reconnect), the
    requests awaiting an ack with their send time, heartbeat timing and the uplink budget.
    Methods take ``now`` (monotonic seconds) and return frames (JSON text) to send or events.
    """

    def __init__(
        self,
        *,
        # heartbeat (normally replaced by the bullet's values in reset())
        ping_interval_s: float = DEFAULT_PING_INTERVAL_S,
        ping_timeout_s: float = DEFAULT_PING_TIMEOUT_S,
        # liveness
        welcome_timeout_s: float = DEFAULT_WELCOME_TIMEOUT_S,
        ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
        # KuCoin limits
        uplink_limit: int = UPLINK_LIMIT,
        uplink_window_s: float = UPLINK_WINDOW_S,
        max_topics_per_message: int = MAX_TOPICS_PER_MESSAGE,
        # ping at least this often, whatever the server's pingInterval (None: the server's)
        max_ping_interval_s: float | None = None,
    ) -> None:
        self._max_ping_interval_s = max_ping_interval_s
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self._welcome_timeout_s = welcome_timeout_s
        self._ack_timeout_s = ack_timeout_s
        self._max_topics = max_topics_per_message
        self._budget = UplinkBudget(uplink_limit, uplink_window_s)
        self._ids = itertools.count(1)  # per session, never reused across reconnects
        self._desired: dict[str, None] = {}  # ordered set of single-symbol topics
        self._rejected: dict[str, ServerError] = {}
        # per-connection state, set by reset()
        self._active: set[str] = set()
        self._queue: deque[_Request] = deque()
        self._pending: dict[str, tuple[_Request, float]] = {}
        self._connected_at: float | None = None
        self._welcome_at: float | None = None
        self._connect_id: str | None = None
        self._last_message_at: float | None = None
        self._last_ping_at: float | None = None
        self._ping_unanswered_since: float | None = None

    # -- inspection ----------------------------------------------------------------------
    @property
    def desired_topics(self) -> tuple[str, ...]:
        """Single-symbol topics to keep subscribed, in subscription order."""
        return tuple(self._desired)

    @property
    def active_topics(self) -> frozenset[str]:
        """Single-symbol topics the server has acknowledged on this connection."""
        return frozenset(self._active)

    @property
    def rejected_topics(self) -> dict[str, ServerError]:
        """Topics the server refused as invalid (dropped from the desired set), with the error."""
        return dict(self._rejected)

    @property
    def is_welcomed(self) -> bool:
        """True once this connection's welcome frame arrived."""
        return self._welcome_at is not None

    @property
    def connect_id(self) -> str | None:
        """The connectId echoed by the welcome frame."""
        return self._connect_id

    @property
    def pending_ack_count(self) -> int:
        """Number of sent subscribe/unsubscribe requests still waiting for an ack."""
        return len(self._pending)

    def next_id(self) -> str:
        """Return a fresh message id (unique within this session)."""
        return str(next(self._ids))

    # -- connection lifecycle ------------------------------------------------------------
    def reset(self, now: float, endpoint: WsEndpoint | None = None) -> None:
        """Start a new connection at ``now``; take heartbeat timings from ``endpoint``.

        Desired subscriptions survive; everything tied to the old socket (acks, queue, budget,
        welcome, heartbeat) is forgotten.
        """
        if endpoint is not None:
            self.ping_interval_s = endpoint.ping_interval_s
            if self._max_ping_interval_s is not None:
                self.ping_interval_s = min(self.ping_interval_s, self._max_ping_interval_s)
            self.ping_timeout_s = endpoint.ping_timeout_s
        self._active.clear()
        self._queue.clear()
        self._pending.clear()
        self._budget.reset()
        self._connected_at = now
        self._welcome_at = None
        self._connect_id = None
        self._last_message_at = now
        self._last_ping_at = None
        self._ping_unanswered_since = None

    def resubscribe_all(self, now: float) -> list[str]:
        """Replay every desired topic on the current connection (call after ``reset``).

        Drops requests left from the old socket, queues batched subscribes and returns the
        frames that may go now (none before the welcome; ``pending_frames`` releases the rest).
        """
        self._queue.clear()
        self._pending.clear()
        self._active.clear()
        # Level-2 first: a book is usable again only after its REST snapshot, the slowest step of
        # a recovery, and each snapshot is asked for when its subscribe is acknowledged.
        replay = sorted(self._desired, key=lambda topic: not topic.startswith(_LEVEL2_PREFIX))
        self._enqueue("subscribe", replay)
        return self.pending_frames(now)

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(self, topics: str | Iterable[str], now: float) -> list[str]:
        """Add topics to the desired set and return the subscribe frames that may go now."""
        new = [topic for topic in _single_topics(topics) if topic not in self._desired]
        for topic in new:
            self._desired[topic] = None
            self._rejected.pop(topic, None)
        self._enqueue("subscribe", new)
        return self.pending_frames(now)

    def unsubscribe(self, topics: str | Iterable[str], now: float) -> list[str]:
        """Remove topics from the desired set and return the unsubscribe frames that may go now."""
        gone = [topic for topic in _single_topics(topics) if topic in self._desired]
        for topic in gone:
            del self._desired[topic]
        self._enqueue("unsubscribe", gone)
        return self.pending_frames(now)

    def pending_frames(self, now: float) -> list[str]:
        """Release queued requests within the uplink budget, once the welcome has arrived."""
        frames: list[str] = []
        if self._welcome_at is None:
            return frames
        while self._queue and self._budget.available(now) > 0:
            request = self._queue.popleft()
            self._budget.record(now)
            self._pending[request.msg_id] = (request, now)
            frames.append(request.text)
        return frames

    def send_allowed(self, now: float) -> bool:
        """Return True if one more client message fits the uplink budget at ``now``."""
        return self._budget.available(now) > 0

    def _enqueue(self, kind: Literal["subscribe", "unsubscribe"], topics: list[str]) -> None:
        build = build_subscribe if kind == "subscribe" else build_unsubscribe
        for topic in batch_topics(topics, self._max_topics):
            msg_id = self.next_id()
            self._queue.append(_Request(msg_id, kind, topic, build(topic, msg_id=msg_id)))

    # -- incoming ------------------------------------------------------------------------
    def on_text(self, raw: bytes | str, now: float) -> list[Event]:
        """Digest one received text frame; return its events (none for a push or an unhandled type).

        Raises:
            ProtocolError: the frame is malformed (it still counts as a sign of life).
        """
        self._last_message_at = now
        event = parse_frame(decode_frame(raw), received_at=now)
        if event is None:
            return []
        if isinstance(event, Welcome):
            self._welcome_at = now
            self._connect_id = event.connect_id
            log.debug("= welcome %s after %.3fs", event.connect_id, now - (self._connected_at or now))
        elif isinstance(event, Pong):
            self._ping_unanswered_since = None
        elif isinstance(event, Ack):
            event = self._on_ack(event)
        elif isinstance(event, ServerError):
            event = self._on_server_error(event)
        return [event]

    def _on_ack(self, ack: Ack) -> Ack:
        entry = self._pending.pop(ack.id, None)
        if entry is None:
            return ack
        request = entry[0]
        topics = _single_topics(request.topic)
        if request.kind == "subscribe":
            self._active.update(topic for topic in topics if topic in self._desired)
        else:
            self._active.difference_update(topics)
        return dataclasses.replace(ack, topic=request.topic)

    def _on_server_error(self, error: ServerError) -> ServerError:
        entry = self._pending.pop(error.id, None) if error.id is not None else None
        if entry is None:
            return error
        request = entry[0]
        if request.kind == "subscribe" and classify_ws_error(error) == FATAL:
            # The server refused the topic itself (e.g. 404 not found): replaying it after every
            # reconnect would fail again, so it leaves the desired set.
            for topic in _single_topics(request.topic):
                self._desired.pop(topic, None)
                self._rejected[topic] = error
            log.debug("! dropped %s: error %s %s", request.topic, error.code, error.message)
        return dataclasses.replace(error, topic=request.topic)

    # -- heartbeat and liveness ----------------------------------------------------------
    def note_activity(self, now: float) -> None:
        """Count a frame the caller decoded itself (a market push on the hot path) as a sign of
        life at ``now``; ``on_text`` does this for the frames it digests."""
        self._last_message_at = now

    def quiet_s(self, now: float) -> float | None:
        """Seconds since the last frame received (None before the first connection)."""
        return None if self._last_message_at is None else now - self._last_message_at

    def due_ping(self, now: float) -> str | None:
        """Return a ping frame when one is due (every ``ping_interval_s`` after the welcome)."""
        if self._welcome_at is None:
            return None
        since = self._last_ping_at if self._last_ping_at is not None else self._welcome_at
        if now - since < self.ping_interval_s or self._budget.available(now) <= 0:
            return None
        self._budget.record(now)
        self._last_ping_at = now
        if self._ping_unanswered_since is None:
            self._ping_unanswered_since = now
        return build_ping(msg_id=self.next_id())

    def dead_reason(self, now: float) -> str | None:
        """Return why the connection must be considered dead at ``now``, or None if alive."""
        if self._connected_at is None or self._last_message_at is None:
            return None
        if self._welcome_at is None:
            if now - self._connected_at > self._welcome_timeout_s:
                return f"no welcome within {self._welcome_timeout_s:g}s"
            return None
        silent_s = now - self._last_message_at
        if silent_s > self.ping_interval_s + self.ping_timeout_s:
            return f"no frame for {silent_s:.1f}s"
        # A ping unanswered for ping_timeout_s condemns the connection even while pushes keep
        # arriving: our uplink (or the server's session) is broken and KuCoin will drop us.
        unanswered = self._ping_unanswered_since
        if unanswered is not None and now - unanswered > self.ping_timeout_s:
            return f"no pong within {self.ping_timeout_s:g}s"
        for request, sent_at in self._pending.values():
            if now - sent_at > self._ack_timeout_s:
                return f"no ack for {request.kind} {request.topic} within {self._ack_timeout_s:g}s"
        return None

    def is_dead(self, now: float) -> bool:
        """Return True when the connection must be dropped and reopened."""
        return self.dead_reason(now) is not None


def _single_topics(topics: str | Iterable[str]) -> list[str]:
    if isinstance(topics, str):
        topics = [topics]
    singles: list[str] = []
    for topic in topics:
        prefix, symbols = split_topic(topic)
        if symbols:
            singles.extend(f"{prefix}:{symbol}" for symbol in symbols)
        else:
            singles.append(prefix)
    return singles


# -- Reconnect policy (backoff and ReconnectDelays live in kucoin_reconnect) -----------------------
def classify_ws_error(error: BaseException | ServerError | int) -> Literal["retry", "fatal"]:
    """Decide whether a WebSocket failure is worth a reconnect ("retry") or not ("fatal").

    Accepts an exception, a ``ServerError`` event, or a numeric code (KuCoin WS error code or
    handshake HTTP status). Retry: network errors (``OSError``, ``TransportError``,
    ``ProtocolError``), expired token 401 (reconnect with a fresh bullet token), rate limits
    (429, 509) and 5xx. Fatal: configuration/auth errors, bad requests (400, 403, 404, 405,
    415) and programming errors. An exception carrying an int ``status_code`` (a failed
    handshake, e.g. websocket-client's ``WebSocketBadStatusException``) is judged by that code.
    Other exceptions, such as a WebSocket library's own "connection closed" types, are retried.
    """
    if isinstance(error, ServerError):
        return RETRY if error.code is None else _classify_code(error.code)
    if isinstance(error, int) and not isinstance(error, bool):
        return _classify_code(error)
    if isinstance(error, (TransportError, ProtocolError)):
        return RETRY
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return _classify_code(status)
    if isinstance(error, OSError):
        return RETRY
    if isinstance(error, FATAL_EXCEPTIONS):
        return FATAL
    return RETRY


def _classify_code(code: int) -> Literal["retry", "fatal"]:
    if code in RETRY_CODES or code >= 500:
        return RETRY
    if code in FATAL_CODES or 400 <= code < 500:
        return FATAL
    return RETRY
