"""Alert receivers on loopback for the tests: a recording HTTP server (webhook, heartbeat, a fake
Telegram Bot API) whose answers are scripted, and a server that accepts and never answers."""
from __future__ import annotations

import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TELEGRAM_TOKEN = "123456789:AAE-secret-telegram-token-xyz"


class Receiver:
    """A loopback HTTP server recording each request (method, path, JSON body). `answers` is a
    list of (status, body) used in order, then (200, default) for the rest."""

    def __init__(self, *, default: Any = None) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.answers: list[tuple[int, Any]] = []
        self.default = {"ok": True} if default is None else default
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                receiver._handle(self, None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver._handle(self, json.loads(self.rfile.read(length) or b"null"))

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # a short poll: shutdown() waits for it (the default 0.5 s would add that to every test)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _handle(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        with self.arrived:
            status, answer = self.answers.pop(0) if self.answers else (200, self.default)
            self.requests.append((handler.command, handler.path, body))
            self.arrived.notify_all()
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def wait_for(self, count: int, timeout_s: float) -> list[tuple[str, str, Any]]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout_s):
                raise AssertionError(f"{len(self.requests)} requests arrived, waited for {count}")
            return list(self.requests)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class Hanging:
    """Accepts connections, reads the request, never answers; `arrived` is set at the first one."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._connections: list[socket.socket] = []
        self.arrived = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hook"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._connections.append(conn)
            conn.recv(65536)
            self.arrived.set()

    def __enter__(self) -> Hanging:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (a close alone may not)
        self._listener.close()
        for conn in self._connections:
            conn.close()
