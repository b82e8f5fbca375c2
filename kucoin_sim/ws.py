"""The simulator's WebSocket side: tokens, welcome, ping/pong, subscriptions, pushes, faults.

All of it runs on the simulator's event loop thread. Pushes are written as whole unmasked
frames straight to the transport, so a burst costs one syscall, not one await per message.
"""
from __future__ import annotations

import collections
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson
from .appkeys import SIM
from aiohttp import WSMsgType, web

from .events import Event
from .wsframes import TopicError, depth_payload, event_payload, event_topics, expand_topic, ws_frame

log = logging.getLogger(__name__)

UPLINK_LIMIT = 100  # client messages per connection per 10 s (protocol notes §9.5)
UPLINK_WINDOW_MS = 10_000
MAX_WRITE_BUFFER = 64 * 1024 * 1024  # a client this far behind is dropped as a slow consumer
MALFORMED = b'{"type":"message","topic":"/contractMarket/tickerV2:XBTUSDTM","subject":"tickerV2","data":{"sym'


@dataclass(slots=True)
class Token:
    private: bool
    issued_ms: int
    expired: bool = False


@dataclass(eq=False, slots=True)
class Conn:
    ws: web.WebSocketResponse
    transport: Any
    connect_id: str
    private: bool
    opened_ms: int
    last_client_ms: int
    topics: set[str] = field(default_factory=set)
    uplink: collections.deque = field(default_factory=collections.deque)
    zombie: bool = False  # half-open: socket kept open, nothing sent or answered

    def write(self, frame: bytes) -> bool:
        transport = self.transport
        if self.zombie or transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("dropping slow WebSocket consumer %s", self.connect_id)
            transport.abort()
            return False
        transport.write(frame)
        return True

    def send_obj(self, obj: dict) -> bool:
        return self.write(ws_frame(orjson.dumps(obj)))


class WsHub:
    """Open connections, their topics, and the fan-out of core events to them."""

    def __init__(self, *, known_symbols: set[str], user_id: str, ping_interval_ms: int,
                 ping_timeout_ms: int, token_ttl_ms: int, on_change) -> None:
        self.known_symbols = known_symbols
        self.user_id = user_id
        self.ping_interval_ms = ping_interval_ms
        self.ping_timeout_ms = ping_timeout_ms
        self.token_ttl_ms = token_ttl_ms
        self.tokens: dict[str, Token] = {}
        self.conns: set[Conn] = set()
        self.by_topic: dict[str, set[Conn]] = {}
        self.connections_total = 0
        self.pings_answered = 0
        self.silent_closed = 0
        self.uplink_closed = 0
        self._on_change = on_change  # called (loop thread) after any change tests may wait for
        self._depth_seq: dict[str, int] = {}

    # -- tokens --------------------------------------------------------------------------------
    def issue_token(self, *, private: bool, now_ms: int) -> str:
        token = secrets.token_urlsafe(48)
        self.tokens[token] = Token(private, now_ms)
        return token

    def token_error(self, token: str | None, now_ms: int) -> str | None:
        info = self.tokens.get(token or "")
        if info is None:
            return "token is invalid"
        if info.expired or now_ms - info.issued_ms > self.token_ttl_ms:
            return "token is expired"
        return None

    # -- connection lifecycle ------------------------------------------------------------------
    def add(self, conn: Conn) -> None:
        self.conns.add(conn)
        self.connections_total += 1
        self._on_change()

    def remove(self, conn: Conn) -> None:
        self.conns.discard(conn)
        for topic in conn.topics:
            subs = self.by_topic.get(topic)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self.by_topic[topic]
        conn.topics.clear()
        self._on_change()

    def subscribed_topics(self) -> frozenset[str]:
        return frozenset(self.by_topic)

    # -- client messages -----------------------------------------------------------------------
    def on_client_text(self, conn: Conn, text: str, now_ms: int) -> None:
        if conn.zombie:
            return
        conn.last_client_ms = now_ms
        conn.uplink.append(now_ms)
        while conn.uplink and now_ms - conn.uplink[0] >= UPLINK_WINDOW_MS:
            conn.uplink.popleft()
        if len(conn.uplink) > UPLINK_LIMIT:
            self.uplink_closed += 1
            log.info("closing %s: more than %d messages in 10 s", conn.connect_id, UPLINK_LIMIT)
            conn.transport.close()
            return
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            conn.send_obj({"type": "error", "code": 400, "data": "invalid message format"})
            return
        if not isinstance(msg, dict):
            conn.send_obj({"type": "error", "code": 400, "data": "invalid message format"})
            return
        kind, msg_id = msg.get("type"), msg.get("id")
        if kind == "ping":
            self.pings_answered += 1
            conn.send_obj({"id": msg_id, "type": "pong", "timestamp": now_ms * 1000})
        elif kind in ("subscribe", "unsubscribe"):
            self._on_subscribe(conn, msg, kind == "subscribe")
        else:
            conn.send_obj({"id": msg_id, "type": "error", "code": 400, "data": f"unknown message type {kind}"})

    def _on_subscribe(self, conn: Conn, msg: dict, subscribe: bool) -> None:
        msg_id = msg.get("id")
        try:
            topic = msg.get("topic")
            if not isinstance(topic, str):
                raise TopicError(400, "topic is required")
            request = expand_topic(topic, self.known_symbols)
            if request.private and not conn.private:
                raise TopicError(401, f"topic {topic} requires a private channel token")
        except TopicError as exc:
            conn.send_obj({"id": msg_id, "type": "error", "code": exc.code, "data": exc.text})
            return
        for single in request.topics:
            if subscribe:
                conn.topics.add(single)
                self.by_topic.setdefault(single, set()).add(conn)
            else:
                conn.topics.discard(single)
                subs = self.by_topic.get(single)
                if subs is not None:
                    subs.discard(conn)
                    if not subs:
                        del self.by_topic[single]
        if msg.get("response", True):
            conn.send_obj({"id": msg_id, "type": "ack"})
        self._on_change()

    # -- pushes --------------------------------------------------------------------------------
    def publish(self, events: list[Event]) -> int:
        by_topic, sent = self.by_topic, 0
        for event in events:
            for topic in event_topics(event):
                subs = by_topic.get(topic)
                if not subs:
                    continue
                frame = ws_frame(event_payload(event, topic, self.user_id))
                for conn in tuple(subs):
                    sent += conn.write(frame)
        return sent

    def publish_depth(self, market, now_ms: int) -> None:
        """level2Depth5/50: the top of the book, pushed at most every 100 ms and only on change."""
        for topic, subs in list(self.by_topic.items()):
            if not topic.startswith("/contractMarket/level2Depth"):
                continue
            prefix, _, symbol = topic.partition(":")
            levels = 5 if prefix.endswith("Depth5") else 50
            sequence = market.book(symbol).sequence
            if self._depth_seq.get(topic) == sequence:
                continue
            self._depth_seq[topic] = sequence
            frame = ws_frame(depth_payload(topic, market.depth(symbol, levels, now_ms)))
            for conn in tuple(subs):
                conn.write(frame)

    def watchdog(self, now_ms: int) -> None:
        """Close clients that went silent (no ping) or outlived their token."""
        silence_ms = self.ping_interval_ms + self.ping_timeout_ms
        for conn in tuple(self.conns):
            if conn.zombie:
                continue
            if now_ms - conn.last_client_ms > silence_ms or now_ms - conn.opened_ms > self.token_ttl_ms:
                self.silent_closed += 1
                log.info("closing silent or expired connection %s", conn.connect_id)
                if conn.transport is not None:
                    conn.transport.close()

    # -- faults --------------------------------------------------------------------------------
    def drop_all(self) -> int:
        dropped = 0
        for conn in tuple(self.conns):
            if conn.transport is not None:
                conn.transport.abort()
                dropped += 1
        return dropped

    def half_open_all(self, *, private_only: bool = False) -> int:
        chosen = [conn for conn in self.conns if conn.private or not private_only]
        for conn in chosen:
            conn.zombie = True
        return len(chosen)

    def send_malformed(self) -> int:
        return sum(conn.write(ws_frame(MALFORMED)) for conn in tuple(self.conns))

    def send_raw(self, payloads: list[bytes], binary: bool) -> int:
        # One write per connection: the burst reaches the client in as few reads as the
        # network allows, like a real server's backlog.
        burst = b"".join(ws_frame(payload, binary=binary) for payload in payloads)
        return sum(conn.write(burst) for conn in tuple(self.conns))

    def expire_tokens(self) -> int:
        for token in self.tokens.values():
            token.expired = True
        for conn in tuple(self.conns):
            conn.send_obj({"type": "error", "code": 401, "data": "token is expired"})
            if conn.transport is not None:
                conn.transport.close()
        return len(self.tokens)


async def ws_handler(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    hub: WsHub = sim.hub
    faults = sim.faults
    if faults.refuse_ws_remaining > 0:
        faults.refuse_ws_remaining -= 1
        faults.ws_refused += 1
        sim.notify()
        return web.Response(status=503, text="Service Unavailable")
    now_ms = sim.now_ms()
    ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
    await ws.prepare(request)
    token = request.query.get("token")
    error = hub.token_error(token, now_ms)
    connect_id = request.query.get("connectId") or secrets.token_hex(8)
    conn = Conn(ws, request.transport, connect_id, not error and hub.tokens[token].private, now_ms, now_ms)
    if error:
        conn.send_obj({"id": connect_id, "type": "error", "code": 401, "data": error})
        await ws.close()
        return ws
    hub.add(conn)
    conn.send_obj({"id": connect_id, "type": "welcome"})
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                hub.on_client_text(conn, msg.data, sim.now_ms())
            elif msg.type == WSMsgType.BINARY:
                hub.on_client_text(conn, msg.data.decode("utf-8", "replace"), sim.now_ms())
            else:
                break
    finally:
        hub.remove(conn)
    return ws
