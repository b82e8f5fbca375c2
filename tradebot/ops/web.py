"""The web server inside the bot: probes, metrics, the owner's API and the dashboard.

    GET  /health               200 {"status": "ok", ...} or 503 {"status": "unhealthy", "reasons": [...]}
    GET  /metrics              Prometheus text (a token is needed only off loopback)
    GET  /api/v1/status        open positions (entry, mark, PnL, stops), health, equity, feeds
    GET  /api/v1/trades        closed trades, newest first (?limit=N, at most 1000)
    POST /api/v1/stopentry     no new entries until startentry
    POST /api/v1/startentry
    POST /api/v1/forceexit     {"symbol": "BTC/USDT:USDT"}: closed by the trader's protection thread
    GET  /                     the dashboard (?token=... once: it becomes a cookie and leaves the URL)

The /api/ routes need `Authorization: Bearer <token>` (401 without it). The server runs its own
asyncio loop on its own thread: a slow client or a long request never touches the trading loop,
and no handler calls the exchange (BotView reads what the bot keeps). Requests are logged at
DEBUG without their query string, so the dashboard token never reaches a log.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import html
import json
import logging
import math
import os
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

__all__ = ["WebServer"]

log = logging.getLogger(__name__)

COOKIE = "kucoin_bot_token"
START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 3.0
SHUTDOWN_TIMEOUT_S = 0.5  # requests still running at the bot's stop get this long (aiohttp's default: 60 s)
FORCE_EXIT_WAIT_S = 10.0  # the answer waits this long for the trader's outcome, then says 202
MAX_TRADES = 1000
# The page may load nothing from elsewhere: inline script and style, its own API.
SECURITY_HEADERS = {
    "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'",
}


class _AccessLog(AbstractAccessLogger):
    # aiohttp's default line carries the query string (the dashboard's ?token=): the path only.
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug("%s %s %d %.1fms", request.method, request.path, response.status, time * 1000)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(_finite(body), allow_nan=False, default=str), status=status,
                        content_type="application/json", headers={"Cache-Control": "no-store"})


def _finite(value: Any) -> Any:
    # JSON has no NaN or Infinity (the page's JSON.parse refuses them): an unknown number is null.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class WebServer:
    """Serves one bot on (host, port) from its own thread; `start` says whether it could bind."""

    def __init__(self, view: Any, *, host: str, port: int, token: str, metrics_need_token: bool,
                 render_metrics: Callable[[], bytes], metrics_content_type: str) -> None:
        self._view = view
        self._host, self._port = host, port
        self._token = token
        self._metrics_need_token = metrics_need_token
        self._render_metrics = render_metrics
        self._metrics_content_type = metrics_content_type
        self._page = resources.files(__package__).joinpath("dashboard.html").read_text(encoding="utf-8")
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: OSError | None = None
        self.port: int | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> bool:
        """Bind and serve on a thread of its own; False (one WARNING line) if the address is taken
        or cannot be used: the bot trades on without its web server."""
        self._thread = threading.Thread(target=self._serve, name="bot-web", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            log.warning("web server did not start within %.0fs: trading on without it", START_TIMEOUT_S)
            self.stop()
            return False
        if self._error is not None:
            why = ("is in use (another bot?)" if self._error.errno == errno.EADDRINUSE else
                   f"cannot be used ({os.strerror(self._error.errno) if self._error.errno else self._error})")
            log.warning("web server not started: %s:%d %s: trading on without it", self._host, self._port, why)
            return False
        return self.port is not None  # None: it failed otherwise (logged with its traceback)

    def stop(self) -> None:
        """Stop serving and join the thread (bounded)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to stop
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("web server thread still running after %.0fs", STOP_TIMEOUT_S)

    @property
    def base_url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._run())
            # Handlers still running (a forceexit waiting on the trader) end with the loop.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending))
        except Exception:  # the thread's boundary: a bug here must not pass silently
            log.exception("web server failed")
        finally:
            self._ready.set()
            loop.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(self._app(), access_log_class=_AccessLog, access_log=log, handle_signals=False,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            try:
                await site.start()
            except OSError as exc:
                self._error = exc
                return
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    # -- the application -------------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/v1/status", self._status)
        app.router.add_get("/api/v1/trades", self._trades)
        app.router.add_post("/api/v1/stopentry", self._stop_entry)
        app.router.add_post("/api/v1/startentry", self._start_entry)
        app.router.add_post("/api/v1/forceexit", self._force_exit)
        app.router.add_get("/", self._dashboard)
        return app

    def _valid(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode(), self._token.encode())

    def _bearer_ok(self, request: web.Request) -> bool:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self._valid(presented.strip())

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        needs_token = request.path.startswith("/api/") or (request.path == "/metrics" and self._metrics_need_token)
        if needs_token and not self._bearer_ok(request):
            return web.json_response({"error": "unauthorized: send Authorization: Bearer <WEB_TOKEN>"},
                                     status=401, headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    async def _health(self, request: web.Request) -> web.Response:
        verdict = self._view.health()
        body = {"status": "ok" if verdict.ok else "unhealthy", "reasons": list(verdict.reasons),
                "mode": self._view.mode, "uptime_s": round(self._view.uptime_s(), 3), "checks": dict(verdict.checks)}
        return _json(body, 200 if verdict.ok else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self._render_metrics(), headers={"Content-Type": self._metrics_content_type})

    async def _status(self, request: web.Request) -> web.Response:
        return _json(self._view.status())

    async def _trades(self, request: web.Request) -> web.Response:
        raw = request.query.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_TRADES:
            return _json({"error": f"limit must be a whole number from 1 to {MAX_TRADES}"}, 400)
        trades = self._view.trades(int(raw))
        return _json({"trades": trades, "count": len(trades)})

    async def _stop_entry(self, request: web.Request) -> web.Response:
        changed = self._view.trader.controls.stop_entries(_source(request))
        return _json({"entries_stopped": True, "changed": changed})

    async def _start_entry(self, request: web.Request) -> web.Response:
        changed = self._view.trader.controls.start_entries(_source(request))
        return _json({"entries_stopped": False, "changed": changed})

    async def _force_exit(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        symbol = body.get("symbol") if isinstance(body, dict) else None
        if not isinstance(symbol, str) or not symbol:
            return _json({"error": 'send JSON {"symbol": "BTC/USDT:USDT"}'}, 400)
        trader = self._view.trader
        if symbol not in trader.holdings:
            return _json({"error": f"no open position on {symbol}", "symbol": symbol}, 404)
        if not trader.loops.running:
            return _json({"error": "the trading loop is not running", "symbol": symbol}, 503)
        try:
            future = trader.controls.request_exit(symbol, _source(request))
        except OverflowError as exc:
            return _json({"error": str(exc), "symbol": symbol}, 503)
        try:
            outcome = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), FORCE_EXIT_WAIT_S)
        except asyncio.TimeoutError:
            return _json({"symbol": symbol, "result": "requested"}, 202)
        return _json({"symbol": symbol, "result": outcome}, 200 if outcome in ("closed", "exit sent") else 409)

    async def _dashboard(self, request: web.Request) -> web.Response:
        given = request.query.get("token")
        if given is not None:
            if not self._valid(given):
                return _page(_NO_TOKEN, 401)
            # The token moves into a cookie and out of the address bar (and its history).
            redirect = web.HTTPSeeOther("/", headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
            redirect.set_cookie(COOKIE, self._token, httponly=True, samesite="Strict", path="/")
            raise redirect
        if not self._valid(request.cookies.get(COOKIE)):
            return _page(_NO_TOKEN, 401)
        return _page(self._page.replace("{{TOKEN}}", html.escape(self._token, quote=True)), 200)


_NO_TOKEN = ("<!doctype html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
             "<title>kucoin bot</title></head><body><p>Open the dashboard with the URL the bot logged at "
             "start (it carries the token): <code>dashboard: http://HOST:PORT/?token=...</code></p></body></html>")


def _page(text: str, status: int) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", headers=SECURITY_HEADERS)


def _source(request: web.Request) -> str:
    return f"web {request.remote or 'unknown'}"
