"""The websocket-client transport: pure Python, one reader thread per socket.

Internal to ``kucoin_websocket``; for platforms without a picows wheel, or by choice
(``KuCoinWebSocket(transport="websocket-client")``). Each connection's thread connects with
``websocket.WebSocket`` and then only reads, up to 256 KiB per socket read: every data frame is
stamped with the clock and queued, and before its next socket read the thread hands the queue to
the WebSocket thread's loop (one ``call_soon_threadsafe`` per read, not per frame). The loop
drains it as one batch, so everything above the socket (feed, session, liveness checks, renewal)
runs on the loop exactly as with picows, a batch playing the part of one picows socket read.
Frames are written from the loop (websocket-client locks its sends, so the reader and a writer
may use the socket at once, as its own ``WebSocketApp`` does). Closing shuts the socket down,
which wakes the reader; its reads also time out every ``READ_TIMEOUT_S`` to check for a close.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import websocket

from kucoin_futures.ws.socket import Connection, HandshakeRefused

__all__ = ["WsClientConnection"]

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.5  # a blocked read checks this often whether the loop wants the socket closed
READ_BYTES = 256 * 1024  # per socket read, as picows' read buffer
JOIN_S = 0.5  # how long the loop waits for a reader that has ended (or been told to) to return
MAX_QUEUED_FRAMES = 50_000  # beyond this the reader waits for the loop: TCP then pushes back
_CLOSE = websocket.ABNF.OPCODE_CLOSE
_NO_STATUS = 1005  # RFC 6455 7.4.1: a CLOSE frame without a status code


class WsClientConnection(Connection):
    """One socket carried by websocket-client on a reader thread of its own."""

    NAME = "websocket-client"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._loop = asyncio.get_running_loop()
        # skip_utf8_validation: picows does not validate either; a bad frame is then "not JSON"
        # (counted as malformed) instead of an exception that ends the connection.
        self._ws = _ReadAheadWebSocket(before_read=self._hand_over, enable_multithread=True,
                                       skip_utf8_validation=True)
        self._frames: deque[tuple[bytes, float]] = deque()  # (payload, received_at), reader -> loop
        self._drain_queued = False  # a _drain is scheduled on the loop (written by both threads)
        self._room = threading.Event()  # set by the loop after a drain: a waiting reader goes on
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._gone: asyncio.Future[None] = self._loop.create_future()  # the reader has ended
        self._reader: threading.Thread | None = None
        self._sock: socket.socket | None = None  # ours to shut down from the loop
        self._connected = False  # the handshake completed and the loop was told
        self._closing = False  # closing (the loop asked, or the reader ended): no more reads or writes

    # -- the transport interface (on the loop) ----------------------------------------------------
    async def _open(self, url: str, timeout_s: float) -> None:
        self._reader = threading.Thread(target=self._run, args=(url, timeout_s),
                                        name=f"{self.label}-reader", daemon=True)
        self._reader.start()
        try:
            await self._opened
        except asyncio.CancelledError:  # stopped while connecting: wait (briefly) for the reader
            self._closing = True
            self._shut_down()  # wakes a handshake in progress; a TCP connect ends by its timeout
            await asyncio.wait([self._gone], timeout=JOIN_S)
            raise
        except Exception as exc:
            await asyncio.wait([self._gone], timeout=JOIN_S)  # its socket is closed, it returns
            mapped = _connect_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def _is_connected(self) -> bool:
        return self._connected

    def _write(self, text: str) -> None:
        if self._closing:
            return  # the socket is going (picows drops such writes too)
        # A blocking write on the loop: it waits only if the kernel's send buffer is full, and
        # then at most the socket's READ_TIMEOUT_S (our messages are small, <= 100 per 10 s).
        try:
            self._ws.send(text)
        except (OSError, websocket.WebSocketException) as exc:  # the reader sees the socket end too
            self.close(f"send failed: {exc}", graceful=False)

    def _disconnect(self, graceful: bool) -> bool:
        self._closing = True
        self._room.set()  # a reader waiting for the loop to drain goes on, and sees _closing
        if graceful and self._connected:
            try:
                self._ws.send_close()
            except (OSError, websocket.WebSocketException):
                pass  # already broken: shutting down is all that is left
        self._shut_down()
        return self._connected

    def _shut_down(self) -> None:
        sock = self._sock  # None until TCP and TLS are up
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # a blocked read returns at once
            except OSError:
                pass  # closed already

    # -- the reader thread --------------------------------------------------------------------------
    def _run(self, url: str, timeout_s: float) -> None:
        reason: str | None = None
        try:
            try:
                self._sock = _open_socket(url, timeout_s)
                # The handshake only: no Origin header (a browser's; picows sends none either).
                self._ws.connect(url, socket=self._sock, timeout=timeout_s, suppress_origin=True)
            except Exception as exc:  # the loop raises it from _open
                self._post(self._on_open_failed, exc)
                return
            self._ws.settimeout(READ_TIMEOUT_S)
            if self._post(self._on_open):
                reason = self._read()
        except Exception:  # thread boundary: a bug must be visible; the socket ends as if lost
            log.exception("! reader of %s failed", self.label)
        finally:
            self._closing = True  # no more writes from the loop
            self._ws.shutdown()  # closes the socket (websocket-client did if the handshake failed)
            if self._sock is not None:
                self._sock.close()
            self._post(self._on_reader_end, reason)

    def _read(self) -> str | None:
        # Returns why the socket ended when the server or the network ended it, else None.
        recv, clock, frames = self._ws.recv_data_frame, self._clock, self._frames
        while not self._closing:
            try:
                opcode, frame = recv()  # answers WS-level pings itself, like picows' auto-pong
            except websocket.WebSocketTimeoutException:
                continue
            except (OSError, websocket.WebSocketConnectionClosedException):
                return None  # EOF or reset: "closed by the server", unless we closed it
            except websocket.WebSocketException as exc:  # a protocol violation by the server
                return f"{type(exc).__name__}: {exc}"
            if opcode == _CLOSE:  # websocket-client has answered it with a CLOSE of its own
                data = frame.data
                return f"server sent CLOSE {int.from_bytes(data[:2], 'big') if len(data) >= 2 else _NO_STATUS}"
            frames.append((frame.data, clock()))  # handed over before the next socket read
            if len(frames) > MAX_QUEUED_FRAMES:
                self._hand_over()
                self._wait_for_room()
        return None

    def _hand_over(self) -> None:
        # Called before every socket read: the frames of the last read go to the loop as one batch
        # (picows' frame.last_in_buffer), so the loop wakes once per read, not once per frame.
        if self._frames and not self._drain_queued:
            self._drain_queued = True
            self._post(self._drain)

    def _wait_for_room(self) -> None:
        self._room.clear()
        while len(self._frames) > MAX_QUEUED_FRAMES and not self._closing:
            self._room.wait(READ_TIMEOUT_S)

    def _post(self, fn: Any, *args: Any) -> bool:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:  # the loop is closed: nobody is left to read for
            self._closing = True
            return False

    # -- reader -> loop (each runs on the loop) ---------------------------------------------------
    def _drain(self) -> None:
        # Deliver the frames queued so far as one batch. Cleared before reading the queue: a frame
        # queued after this line finds no drain scheduled and schedules the next one.
        self._drain_queued = False
        frames = self._frames
        if not self._connected:  # a connect abandoned (stop) as its handshake completed
            frames.clear()
            return
        now: float | None = None
        for _ in range(len(frames)):  # not `while frames`: a fast reader must not starve the loop
            raw, now = frames.popleft()
            try:
                if not self._deliver(raw, now):
                    self._note_malformed(raw, now, "not JSON")
            except Exception:  # safety net: a bug here must not kill the socket or the thread
                self._frame_failed()
        if now is None:
            return
        try:
            self._note_alive(now)
            self._end_of_batch(now)
        except Exception:  # safety net, as above
            self._frame_failed()
        if not self._room.is_set():
            self._room.set()

    def _on_open(self) -> None:
        if self._opened.done():  # cancelled (stop) while the handshake was completing
            self._closing = True
            self._shut_down()
            return
        self._connected = True
        self._opened.set_result(None)

    def _on_open_failed(self, exc: Exception) -> None:
        if not self._opened.done():
            self._opened.set_exception(exc)

    def _on_reader_end(self, reason: str | None) -> None:
        self._drain()  # what was read before the end comes first
        if self._reader is not None:
            self._reader.join(JOIN_S)  # it has only to return (this was its last act)
        if not self._gone.done():
            self._gone.set_result(None)
        if not self._connected:
            return  # never connected: _open raised (or was cancelled); nobody watches `lost`
        if self.close_reason is None and reason is not None:
            self.close_reason = reason
        self._ended()


class _ReadAheadWebSocket(websocket.WebSocket):
    """``websocket.WebSocket`` reading up to ``READ_BYTES`` per socket read.

    Its frame parser asks ``_recv`` for exactly the bytes of the next header or payload: 2 or 3
    socket reads a frame, each giving up the GIL (a 5 ms wait for it back while another thread
    computes). Here those asks are served from the last read's bytes until they are used up, and
    ``before_read`` runs before each real read. ``_recv`` is websocket-client's own read hook
    (1.9.2, pinned); the handshake reads the socket directly, so nothing is read ahead of it.
    """

    def __init__(self, *, before_read: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._before_read = before_read
        self._chunk = b""
        self._at = 0  # bytes of _chunk already served

    def _recv(self, bufsize: int) -> bytes:
        chunk, at = self._chunk, self._at
        if at >= len(chunk):
            self._before_read()
            chunk, at = super()._recv(READ_BYTES), 0  # raises on timeout and EOF, as before
            self._chunk = chunk
        self._at = at + bufsize
        return chunk[at:at + bufsize]


def _connect_error(exc: Exception) -> Exception:
    # websocket-client's connect errors as picows' path raises them (socket.open_connection).
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return HandshakeRefused(exc.status_code, f"upgrade refused with HTTP {exc.status_code}")
    if isinstance(exc, websocket.WebSocketTimeoutException):
        return TimeoutError(f"WebSocket handshake timed out: {exc}")
    if isinstance(exc, websocket.WebSocketException):  # a bad handshake answer, a redirect loop
        return ConnectionError(f"WebSocket handshake failed: {exc}")
    return exc  # OSError (refused, reset, DNS, TLS) and TimeoutError already are


def _open_socket(url: str, timeout_s: float) -> socket.socket:
    # TCP (and TLS for wss) to the endpoint, each within timeout_s. Done here rather than by
    # websocket-client, which would take a proxy from HTTP(S)_PROXY: like picows, the WebSocket
    # connects straight to the host the bullet token names (docs/websocket.md, "Proxies").
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    sock = socket.create_connection((host, parts.port or (443 if secure else 80)), timeout=timeout_s)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # pings and subscribes go at once
        if secure:
            return ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return sock
