"""The picows transport (the default): a ``Connection`` that is a picows listener on this loop.

Internal to ``kucoin_websocket``. picows, a Cython WebSocket library, runs on the WebSocket
thread's asyncio loop and delivers many frames per socket read to ``on_ws_frame``: the reader
keeps up while another thread computes. Imported only when this transport is chosen, so a
platform without a picows wheel can use websocket-client instead (``ws/transports.py``).
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

from picows import WSFrame, WSHandshakeError, WSListener, WSMsgType, WSTransport, ws_connect

from kucoin_futures.ws.socket import Connection, HandshakeRefused

__all__ = ["PicowsConnection"]

MAX_FRAME_BYTES = 4 * 1024 * 1024  # KuCoin pushes are < 10 kB; a full REST-sized frame never comes
READ_BUFFER_BYTES = 256 * 1024  # asyncio reads up to 256 KiB per recv; avoid regrowing
_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CLOSE = WSMsgType.CLOSE


class PicowsConnection(Connection, WSListener):
    """One socket carried by picows."""

    NAME = "picows"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transport: WSTransport | None = None
        self.sock: socket.socket | None = None  # ours until picows' transport owns it

    # -- picows callbacks (the hot path is on_ws_frame) -----------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        try:
            raw = frame.get_payload_as_bytes()
            now = self._clock()
            if not self._deliver(raw, now):
                self._not_json(transport, frame, raw, now)
            if frame.last_in_buffer:
                self._note_alive(now)
                self._end_of_batch(now)
        except Exception:  # safety net: a bug here must not kill the socket or the thread
            self._frame_failed()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._ended()  # must not raise: the transport finishes closing its socket after this

    def _not_json(self, transport: WSTransport, frame: WSFrame, raw: bytes, now: float) -> None:
        msg_type = frame.msg_type
        if msg_type is _CLOSE:
            self.close_reason = self.close_reason or f"server sent CLOSE {frame.get_close_code()}"
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif msg_type is _TEXT or msg_type is _BINARY:
            self._note_malformed(raw, now, "not JSON")

    # -- the transport interface ----------------------------------------------------------------
    async def _open(self, url: str, timeout_s: float) -> None:
        try:
            # No outer timeout: cancelling ws_connect mid-handshake would orphan its transport.
            # TCP connect and handshake have their own (_open_socket, websocket_handshake_timeout).
            await ws_connect(lambda: self, url, websocket_handshake_timeout=timeout_s, enable_auto_ping=False,
                             enable_auto_pong=True, max_frame_size=MAX_FRAME_BYTES,
                             read_buffer_init_size=READ_BUFFER_BYTES,
                             socket_factory=lambda parsed: self._open_socket(parsed, timeout_s))
        except WSHandshakeError as exc:
            self._discard_socket()
            status = exc.response.status if exc.response is not None else 0
            raise HandshakeRefused(int(status or 0), f"upgrade refused with HTTP {status}") from exc
        except BaseException:  # failed or cancelled (stop): the socket must not outlive the attempt
            self._discard_socket()
            raise

    def _is_connected(self) -> bool:
        return self.transport is not None

    def _write(self, text: str) -> None:
        self.transport.send(_TEXT, text.encode())  # type: ignore[union-attr]

    def _disconnect(self, graceful: bool) -> bool:
        transport = self.transport
        if transport is None:
            return False
        if graceful:
            transport.send_close()
        transport.disconnect(graceful=graceful)
        return True

    async def _open_socket(self, url: Any, timeout_s: float) -> socket.socket:
        # Resolve and TCP-connect (picows' socket_factory): the socket stays ours to close if
        # the WebSocket handshake never completes, so a failed or cancelled connect leaks nothing.
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

    def _discard_socket(self) -> None:
        # Close the socket of a connect that failed before the handshake completed.
        if self.transport is None and self.sock is not None:
            self.sock.close()
