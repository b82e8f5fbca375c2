"""One KuCoin WebSocket socket on the client's event loop: picows listener + sans-I/O session.

Internal to ``kucoin_websocket``: everything here runs on the WebSocket thread's asyncio loop
(picows, a Cython WebSocket library, delivers many frames per socket read to ``on_ws_frame``).
A ``Connection`` only moves bytes: market pushes go straight to ``MarketFeed.on_data``; other
frames go to its ``WsSession`` through the owner's ``on_control``; frames the session wants
sent (subscribes, pings) are written by the owner. A ``Shard`` is one slot of topics that keeps
one live connection (reconnected, or renewed before the token's 24 h lifetime).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any, Protocol

from picows import WSFrame, WSHandshakeError, WSListener, WSMsgType, WSTransport, ws_connect

from kucoin_futures.ws.feed import MarketFeed
from kucoin_futures.protocol.session import WsSession
from kucoin_futures.protocol.types import WsEndpoint
from kucoin_futures.protocol.wire import redact_url, ws_connect_url

__all__ = ["Connection", "HandshakeRefused", "Owner", "Shard", "open_connection"]

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 4 * 1024 * 1024  # KuCoin pushes are < 10 kB; a full REST-sized frame never comes
READ_BUFFER_BYTES = 256 * 1024  # asyncio reads up to 256 KiB per recv; avoid regrowing
_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CLOSE = WSMsgType.CLOSE


class HandshakeRefused(ConnectionError):
    """The server answered the WebSocket upgrade with an HTTP error (``status_code``)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code  # classify_ws_error: 5xx/429 retry, other 4xx fatal


class Owner(Protocol):
    """What a connection calls back into (the engine)."""

    def on_control(self, conn: Connection, raw: bytes, now: float) -> None: ...

    def on_disconnected(self, conn: Connection) -> None: ...

    def on_lost(self, conn: Connection) -> None: ...  # a shard's current connection was lost


class Connection(WSListener):
    """One socket: feeds pushes to the ``MarketFeed`` and the rest to its owner."""

    def __init__(self, *, owner: Owner, feed: MarketFeed, session: WsSession,
                 clock: Callable[[], float], label: str) -> None:
        super().__init__()
        self.owner = owner
        self.session = session
        self.label = label  # the connectId
        self.transport: WSTransport | None = None
        self.sock: socket.socket | None = None  # ours until picows' transport owns it
        self.token_at: float | None = None  # when its bullet token was requested
        self.retired = False  # replaced by a renewal; its loss is not the shard's
        self.close_reason: str | None = None
        loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[str] = loop.create_future()
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self._clock = clock
        self._on_data = feed.on_data
        self._note_malformed = feed.note_malformed
        self._end_of_batch = feed.end_of_batch
        self._note_alive = session.note_activity
        self._debug = log.isEnabledFor(logging.DEBUG)  # cached: checked once per frame

    # -- picows callbacks (the hot path is on_ws_frame) -----------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        try:
            raw = frame.get_payload_as_bytes()
            now = self._clock()
            if self._debug:
                log.debug("< %s %.200r", self.label, raw)
            handled = self._on_data(raw, now, self)
            if handled is False:
                self.owner.on_control(self, raw, now)
            elif handled is None:
                self._not_json(transport, frame, raw, now)
            if frame.last_in_buffer:
                self._note_alive(now)
                self._end_of_batch(now)
        except Exception:  # safety net: a bug here must not kill the socket or the thread
            log.exception("! error handling a frame on %s", self.label)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        # Must not raise: the transport finishes closing its socket after this returns.
        try:
            reason = self.close_reason or "closed by the server"
            if not self.lost.done():
                self.lost.set_result(reason)
            if not self.subscribed.done():
                self.subscribed.set_exception(ConnectionError(reason))
                self.subscribed.exception()  # retrieved: nobody may be waiting for it
            self.owner.on_disconnected(self)
        except Exception:  # safety net in case of bugs
            log.exception("! error handling the disconnect of %s", self.label)

    def _not_json(self, transport: WSTransport, frame: WSFrame, raw: bytes, now: float) -> None:
        msg_type = frame.msg_type
        if msg_type is _CLOSE:
            self.close_reason = self.close_reason or f"server sent CLOSE {frame.get_close_code()}"
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif msg_type is _TEXT or msg_type is _BINARY:
            self._note_malformed(raw, now, "not JSON")

    # -- used by the owner ----------------------------------------------------------------------
    async def open_socket(self, url: Any, timeout_s: float) -> socket.socket:
        """Resolve and TCP-connect (picows' socket_factory): the socket stays ours to close if
        the WebSocket handshake never completes, so a failed or cancelled connect leaks nothing."""
        loop = asyncio.get_running_loop()
        host, port = url.host, url.port
        # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation (stop)
        # that arrives as the inner call completes.
        async with asyncio.timeout(timeout_s):
            try:
                ipaddress.ip_address(host)
                family, address = (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, port)
            except ValueError:  # a name: resolve it without blocking the loop
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                family, _, _, _, address = infos[0]
            sock = self.sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        return sock

    def discard_socket(self) -> None:
        """Close the socket of a connect that failed before the handshake completed."""
        if self.transport is None and self.sock is not None:
            self.sock.close()

    @property
    def is_open(self) -> bool:
        """True while the socket is connected."""
        return self.transport is not None and not self.lost.done()

    def send(self, frames: list[str] | str | None) -> None:
        """Write text frames (ignored once the socket is closing)."""
        if not frames or not self.is_open:
            return
        if isinstance(frames, str):
            frames = [frames]
        transport = self.transport
        for text in frames:
            if self._debug:
                log.debug("> %s %s", self.label, text)
            transport.send(_TEXT, text.encode())  # type: ignore[union-attr]

    def close(self, reason: str, *, graceful: bool = True) -> None:
        """Close the socket; ``lost`` resolves with ``reason`` once it is gone."""
        if self.close_reason is None:
            self.close_reason = reason
        transport = self.transport
        if transport is None:
            if not self.lost.done():
                self.lost.set_result(reason)
            return
        if graceful:
            transport.send_close()
        transport.disconnect(graceful=graceful)

    def mark_subscribed(self) -> bool:
        """Resolve ``subscribed`` (first time only); return True if this call did it."""
        if self.subscribed.done():
            return False
        self.subscribed.set_result(None)
        return True


class Shard:
    """A slot of at most ``max_topics`` topics served by one connection at a time."""

    def __init__(self, index: int, session: WsSession) -> None:
        self.index = index
        self.session = session  # the current connection's session; holds the desired topics
        self.conn: Connection | None = None
        self.candidate: Connection | None = None  # a renewal's new connection, until it takes over
        self.next_renewal_at = 0.0
        self.was_up = False  # had a fully subscribed connection once (so a loss is a reconnect)
        self.task: asyncio.Task[None] | None = None

    @property
    def topic_count(self) -> int:
        """Number of topics assigned here."""
        return len(self.session.desired_topics)


async def open_connection(
    *,
    owner: Owner,
    feed: MarketFeed,
    session: WsSession,
    endpoint: WsEndpoint,
    clock: Callable[[], float],
    connect_id: str,
    timeout_s: float,
) -> Connection:
    """Connect to ``endpoint`` and return the connection, its subscribes queued for the welcome.

    Raises:
        HandshakeRefused: the upgrade got an HTTP error status.
        OSError, TimeoutError: the network failed or the handshake took longer than timeout_s.
    """
    now = clock()
    # Reset before connecting: the welcome can arrive in the same read as the 101 response.
    session.reset(now, endpoint)
    session.resubscribe_all(now)  # held by the session until the welcome arrives
    conn = Connection(owner=owner, feed=feed, session=session, clock=clock, label=connect_id)
    url = ws_connect_url(endpoint, connect_id)
    try:
        # No outer timeout: cancelling ws_connect mid-handshake would orphan its transport.
        # TCP connect and handshake have their own (open_socket, websocket_handshake_timeout).
        await ws_connect(lambda: conn, url, websocket_handshake_timeout=timeout_s, enable_auto_ping=False,
                         enable_auto_pong=True, max_frame_size=MAX_FRAME_BYTES,
                         read_buffer_init_size=READ_BUFFER_BYTES,
                         socket_factory=lambda parsed: conn.open_socket(parsed, timeout_s))
    except WSHandshakeError as exc:
        conn.discard_socket()
        status = exc.response.status if exc.response is not None else 0
        raise HandshakeRefused(int(status or 0), f"upgrade refused with HTTP {status}") from exc
    except BaseException:  # failed or cancelled (stop): the socket must not outlive the attempt
        conn.discard_socket()
        raise
    log.info("= connected %s", redact_url(url))
    return conn
