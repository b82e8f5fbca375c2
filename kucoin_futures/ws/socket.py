"""One KuCoin WebSocket socket as the layers above see it, whatever library carries it.

Internal to ``kucoin_websocket``: everything here runs on the WebSocket thread's asyncio loop.
A ``Connection`` only moves bytes: market pushes go straight to ``MarketFeed.on_data``; other
frames go to its ``WsSession`` through the owner's ``on_control``; frames the session wants
sent (subscribes, pings) are written by the owner. A ``Link`` is one slot of topics that keeps
one live connection (reconnected, or renewed before the token's 24 h lifetime).

The transport seam: ``Connection`` is the whole interface the layers above use, and a transport
is a subclass of it (``ws/transports.py`` picks one by name):

- ``transport_picows.PicowsConnection``: picows (Cython) on this loop; many frames per socket read.
- ``transport_wsclient.WsClientConnection``: websocket-client (pure Python) on a reader thread of
  its own, handing frames to this loop in batches.

A subclass implements ``_open`` (connect and handshake), ``_is_connected``, ``_write`` and
``_disconnect``; it hands each frame of a batch read to ``_deliver`` (``feed.on_data``, else
``owner.on_control``; not JSON: the transport's to judge), then calls ``note_activity`` and
``end_of_batch`` once per batch, and calls ``_ended`` when its socket is gone. Its connect errors are ``HandshakeRefused``, ``OSError`` or
``TimeoutError``, which ``classify_ws_error`` judges the same for every transport.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import ClassVar

from kucoin_futures.ws.feed import MarketFeed
from kucoin_futures.ws.owner import Owner
from kucoin_futures.protocol.session import WsSession
from kucoin_futures.protocol.types import WsEndpoint
from kucoin_futures.protocol.wire import redact_url, ws_connect_url

__all__ = ["Connection", "HandshakeRefused", "Link", "open_connection"]

log = logging.getLogger(__name__)


class HandshakeRefused(ConnectionError):
    """The server answered the WebSocket upgrade with an HTTP error (``status_code``)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code  # classify_ws_error: 5xx/429 retry, other 4xx fatal


class Connection:
    """One socket: feeds pushes to the ``MarketFeed`` and the rest to its owner (abstract: see
    the module docstring for what a transport implements)."""

    NAME: ClassVar[str] = ""  # the transport's name, as in KuCoinWebSocket(transport=...)

    def __init__(self, *, owner: Owner, feed: MarketFeed, session: WsSession,
                 clock: Callable[[], float], label: str) -> None:
        super().__init__()  # picows' WSListener comes next in PicowsConnection's MRO
        self.owner = owner
        self.session = session
        self.label = label  # the connectId
        self.token_at: float | None = None  # when its bullet token was requested
        self.retired = False  # replaced by a renewal; its loss is not the link's
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

    # -- implemented by a transport ---------------------------------------------------------------
    async def _open(self, url: str, timeout_s: float) -> None:
        # Connect and complete the handshake, each step within timeout_s; raise HandshakeRefused,
        # OSError or TimeoutError. A failed or cancelled open leaves no socket or thread behind.
        raise NotImplementedError

    def _is_connected(self) -> bool:
        raise NotImplementedError

    def _write(self, text: str) -> None:
        raise NotImplementedError

    def _disconnect(self, graceful: bool) -> bool:
        # Start closing the socket (_ended follows); False if there is no socket yet.
        raise NotImplementedError

    # -- used by the owner ----------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """True while the socket is connected."""
        return self._is_connected() and not self.lost.done()

    def send(self, frames: list[str] | str | None) -> None:
        """Write text frames (ignored once the socket is closing)."""
        if not frames or not self.is_open:
            return
        if isinstance(frames, str):
            frames = [frames]
        for text in frames:
            if self._debug:
                log.debug("> %s %s", self.label, text)
            self._write(text)

    def close(self, reason: str, *, graceful: bool = True) -> None:
        """Close the socket; ``lost`` resolves with ``reason`` once it is gone."""
        if self.close_reason is None:
            self.close_reason = reason
        if not self._disconnect(graceful) and not self.lost.done():
            self.lost.set_result(reason)

    def mark_subscribed(self) -> bool:
        """Resolve ``subscribed`` (first time only); return True if this call did it."""
        if self.subscribed.done():
            return False
        self.subscribed.set_result(None)
        return True

    # -- called by a transport ------------------------------------------------------------------
    def _deliver(self, raw: bytes, now: float) -> bool:
        # One frame read: a market push to the feed, anything else JSON to the owner (one call
        # per frame, the hot path). False if it is not JSON: the transport knows what else it is.
        if self._debug:
            log.debug("< %s %.200r", self.label, raw)
        handled = self._on_data(raw, now, self)
        if handled is False:
            self.owner.on_control(self, raw, now)
        return handled is not None

    def _frame_failed(self) -> None:
        # From a transport's safety net (an except block): a bug in the frame path lost a frame.
        log.exception("! error handling a frame on %s", self.label)

    def _ended(self) -> None:
        # The socket is gone. Must not raise: picows finishes closing its socket after this.
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


class Link:
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
    transport: type[Connection],
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
    conn = transport(owner=owner, feed=feed, session=session, clock=clock, label=connect_id)
    url = ws_connect_url(endpoint, connect_id)
    await conn._open(url, timeout_s)
    log.info("= connected %s", redact_url(url))
    return conn
