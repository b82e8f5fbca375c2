"""Public REST: the default fetcher, paged kline history and level-2 snapshots.

The fetcher seam is ``RestGet = Callable[[path, params], payload]``: it performs
``GET <rest_url><path>?<params>`` and returns the decoded JSON body (KuCoin's envelope
``{"code": "200000", "data": ...}``); the parse functions unwrap it. The client facade injects one
that goes through its priority scheduler; ``PublicRest`` is the stdlib default (http.client, one
keep-alive connection per concurrent caller, a timeout, and ``close()`` that aborts the calls in
flight so that ``stop()`` never waits for a slow server). ``KlinePager`` is the paging rule of
kline history as pure steps, driven by ``fetch_klines`` (blocking) and by the WebSocket feed's
backfill (awaiting each page on its loop).
"""
from __future__ import annotations

import http.client
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from kucoin_futures.errors import ProtocolError, RateLimited, TransportError, error_for_code
from kucoin_futures.protocol.parse import parse_bullet, parse_rest_klines, parse_rest_order_book
from kucoin_futures.protocol.types import (
    Candle,
    OrderBook,
    WsEndpoint,
    timeframe_ms,
    timeframe_to_granularity,
)

__all__ = [
    "DEFAULT_REST_TIMEOUT_S", "PATH_KLINES", "PATH_LEVEL2_SNAPSHOT", "KlinePager", "PublicRest", "RestGet",
    "fetch_klines", "fetch_order_book",
]

log = logging.getLogger(__name__)

RestGet = Callable[[str, Mapping[str, Any]], Any]

# -- Endpoints (protocol notes sections 7.1 and 9.1) ------------------------------------------
PATH_BULLET_PUBLIC = "/api/v1/bullet-public"  # POST, no auth, no body: a WS token + endpoint
PATH_KLINES = "/api/v1/kline/query"  # symbol, granularity (minutes), from/to (ms)
PATH_LEVEL2_SNAPSHOT = "/api/v1/level2/snapshot"  # full book with its sequence
DEFAULT_REST_TIMEOUT_S = 10.0
# Rows per kline answer: docs-new say at most 500, classic docs 200 (ccxt assumes 200). An answer
# this long may have been cut off; a shorter one is whole (notes sections 1 and 16).
KLINE_MIN_CAP = 200
KLINE_MAX_REQUESTS = 12  # 500 candles take 1 request at a 500-row cap, 3 at a 200-row cap


class PublicRest:
    """Stdlib HTTP client for KuCoin's public REST endpoints (keep-alive connections).

    Thread-safe: each call borrows an idle connection (or opens one) and gives it back, so the
    worker's threads never share a socket. ``on_response(status, headers, body)`` (optional) sees
    every response before it is decoded (the REST gateway reads its rate-limit headers). ``close()`` may be called from any thread and aborts
    the requests in flight by shutting their sockets down.
    """

    def __init__(self, base_url: str, *, timeout_s: float = DEFAULT_REST_TIMEOUT_S,
                 on_response: Callable[[int, Mapping[str, str], bytes], object] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"rest_url must be an http(s) URL, not {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout_s = timeout_s
        self._on_response = on_response  # (status, headers, body) of every response, on the caller's thread
        self._lock = threading.Lock()  # guards the connection lists only, never held for I/O
        self._idle: list[http.client.HTTPConnection] = []
        self._busy: set[http.client.HTTPConnection] = set()
        self._closed = False

    def get(self, path: str, params: Mapping[str, Any]) -> Any:
        """GET ``path?params``; return the decoded JSON body (a KuCoin envelope)."""
        query = urlencode(params)
        return self._request("GET", f"{self._prefix}{path}?{query}" if query else f"{self._prefix}{path}")

    def post(self, path: str) -> Any:
        """POST ``path`` with no body; return the decoded JSON body."""
        return self._request("POST", f"{self._prefix}{path}")

    def bullet_public(self) -> WsEndpoint:
        """Fetch a public WebSocket token and endpoint (a fresh one every call)."""
        return parse_bullet(self.post(PATH_BULLET_PUBLIC))

    def close(self) -> None:
        """Abort the requests in flight and refuse new ones."""
        with self._lock:
            self._closed = True
            conns = [*self._idle, *self._busy]
            self._idle.clear()
            self._busy.clear()
        for conn in conns:
            _abort(conn)

    def _borrow(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._closed:
                raise TransportError("REST client closed")
            if self._idle:
                conn = self._idle.pop()
            else:
                cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                conn = cls(self._host, self._port, timeout=self._timeout_s)
            self._busy.add(conn)
            return conn

    def _give_back(self, conn: http.client.HTTPConnection, reusable: bool) -> None:
        with self._lock:
            owned = conn in self._busy  # not if close() took it meanwhile
            self._busy.discard(conn)
            if owned and reusable and not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def _request(self, method: str, target: str) -> Any:
        conn = self._borrow()
        try:
            conn.request(method, target, headers={"Accept": "application/json"})
            response = conn.getresponse()
            status, body = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._give_back(conn, reusable=False)
            raise TransportError(f"{method} {target.partition('?')[0]}: {exc!r}") from exc
        self._give_back(conn, reusable=not response.will_close)
        if self._on_response is not None:
            self._on_response(status, dict(response.getheaders()), body)
        return _decode(status, body, _retry_after_s(response))


def _abort(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed or never connected: nothing in flight to abort
    conn.close()


def _retry_after_s(response: http.client.HTTPResponse) -> float | None:
    # Retry-After (s) if given, else KuCoin's gw-ratelimit-reset (ms until the window resets).
    retry_after = _seconds(response.getheader("Retry-After"))
    if retry_after is None:
        reset_ms = _seconds(response.getheader("gw-ratelimit-reset"))
        retry_after = reset_ms / 1000 if reset_ms is not None else None
    return retry_after


def _decode(status: int, body: bytes, retry_after_s: float | None) -> Any:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if status == 200:
        if payload is None:
            raise ProtocolError(f"REST body is not JSON: {body[:200]!r}")
        return payload
    code = payload.get("code") if isinstance(payload, dict) else None
    if isinstance(code, str) and code:
        error = error_for_code(code, str(payload.get("msg", "")), http_status=status)
        if isinstance(error, RateLimited) and error.retry_after_s is None:
            error.retry_after_s = retry_after_s
        raise error
    if status == 429:
        raise RateLimited(f"HTTP 429: {body[:200]!r}", retry_after_s=retry_after_s, http_status=status)
    raise TransportError(f"HTTP {status}: {body[:200]!r}", http_status=status)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# -- Public data fetches ----------------------------------------------------------------------
class KlinePager:
    """The requests that cover candles starting in [from_ms, to_ms], one page at a time (pure).

    One request for the whole window first. KuCoin caps an answer at 200 or 500 rows (the docs
    disagree) and does not say which end it keeps, nor whether ``from``/``to`` are inclusive
    (protocol notes section 16): the window is widened by a millisecond each side, and when an
    answer of at least ``KLINE_MIN_CAP`` rows leaves a side of the window uncovered, that side is
    asked for again, until nothing new comes (at most ``KLINE_MAX_REQUESTS`` requests)::

        pager = KlinePager(kucoin_id, timeframe, from_ms=..., to_ms=...)
        while (params := pager.next_params()) is not None:
            pager.add(parse_rest_klines(get(PATH_KLINES, params), received_at=...))
        candles = pager.candles()
    """

    def __init__(self, kucoin_id: str, timeframe: str, *, from_ms: int, to_ms: int) -> None:
        self._kucoin_id = kucoin_id
        self._span_ms = timeframe_ms(timeframe)
        self._granularity = timeframe_to_granularity(timeframe)
        self._found: dict[int, Candle] = {}
        self._windows = [(from_ms, to_ms)]
        self._asked: tuple[int, int] | None = None
        self._requests = 0

    def next_params(self) -> dict[str, Any] | None:
        """The query of the next request, or None when the window is covered."""
        if not self._windows or self._requests >= KLINE_MAX_REQUESTS:
            return None
        lo, hi = self._asked = self._windows.pop()
        self._requests += 1
        return {"symbol": self._kucoin_id, "granularity": self._granularity, "from": lo - 1, "to": hi + 1}

    def add(self, answer: tuple[Candle, ...]) -> None:
        """Take the parsed answer to the last ``next_params`` query."""
        assert self._asked is not None, "add() without next_params()"
        lo, hi = self._asked
        self._asked = None
        rows = [c for c in answer if lo <= c.ts_ms <= hi]
        fresh = [c for c in rows if c.ts_ms not in self._found]
        self._found.update((c.ts_ms, c) for c in fresh)
        if len(answer) < KLINE_MIN_CAP or not fresh:
            return  # a whole answer (nothing was cut off), or nothing new: done here
        if rows[0].ts_ms - self._span_ms >= lo:
            self._windows.append((lo, rows[0].ts_ms - 1))  # the older part was cut off
        if rows[-1].ts_ms + self._span_ms <= hi:
            self._windows.append((rows[-1].ts_ms + 1, hi))  # the newer part was cut off

    def candles(self) -> tuple[Candle, ...]:
        """The candles found, oldest first (the newest may be in progress)."""
        return tuple(self._found[start] for start in sorted(self._found))


def fetch_klines(rest_get: RestGet, kucoin_id: str, timeframe: str, *, from_ms: int, to_ms: int,
                 received_at: float) -> tuple[Candle, ...]:
    """Return the candles starting in [from_ms, to_ms], oldest first (``KlinePager``'s requests)."""
    pager = KlinePager(kucoin_id, timeframe, from_ms=from_ms, to_ms=to_ms)
    while (params := pager.next_params()) is not None:
        pager.add(parse_rest_klines(rest_get(PATH_KLINES, params), received_at=received_at))
    return pager.candles()


def fetch_order_book(rest_get: RestGet, kucoin_id: str, *, received_at: float) -> OrderBook:
    """Return the full level-2 snapshot of a contract with its sequence."""
    return parse_rest_order_book(rest_get(PATH_LEVEL2_SNAPSHOT, {"symbol": kucoin_id}), received_at=received_at)
