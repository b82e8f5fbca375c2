"""The simulator's REST side: KuCoin's envelope, signing check, rate limits and REST faults."""
from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qsl

import orjson
from .appkeys import SIM
from aiohttp import web

from . import auth
from .errors import SimError
from .ratelimit import Charge
from .routes import PRIVATE, PUBLIC, Route

log = logging.getLogger(__name__)

TOO_MANY = "Too Many Requests"  # 429000 message


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")


def error_response(exc: SimError, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"code": exc.code, "msg": exc.msg}, exc.http_status, headers)


def _params(request: web.Request, body_text: str) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
    if body_text:
        try:
            body = orjson.loads(body_text)
        except orjson.JSONDecodeError:
            raise SimError(400, "400100", "Invalid request body") from None
        if not isinstance(body, dict):
            raise SimError(400, "400100", "Invalid request body")
        params.update(body)
    params.update(request.match_info)
    return params


def _bullet(sim: Any, private: bool, now_ms: int) -> dict[str, Any]:
    token = sim.hub.issue_token(private=private, now_ms=now_ms)
    return {
        "token": token,
        "instanceServers": [{
            "endpoint": sim.ws_url,
            "encrypt": False,  # plain ws:// on loopback (KuCoin: wss:// with encrypt true)
            "protocol": "websocket",
            "pingInterval": sim.hub.ping_interval_ms,
            "pingTimeout": sim.hub.ping_timeout_ms,
        }],
    }


BULLETS = [
    Route("POST", "/api/v1/bullet-public", "public", 10, False, lambda ex, p, now: None),
    Route("POST", "/api/v1/bullet-private", "futures", 10, True, lambda ex, p, now: None),
]


async def _serve(request: web.Request, route: Route) -> web.Response:
    sim = request.app[SIM]
    now_ms = sim.now_ms()
    method, path = request.method, request.path
    sim.record_request(method, path)
    # Not request.text(): that raises on a body that is not UTF-8 (a 500). Undecodable bytes
    # survive as surrogates, so the signature is still checked over the bytes sent.
    body_text = (await request.read()).decode("utf-8", "surrogateescape")
    key = request.headers.get("KC-API-KEY", "") if route.private else (request.remote or "")
    charge: Charge = sim.limiter.charge(route.pool, key, route.weight, now_ms)
    # with rate limits off (--no-rate-limits) no gw-ratelimit-* headers are sent: a client that
    # obeys them would otherwise throttle itself on a count nobody enforces
    pool_headers = charge.headers() if sim.limiter.enabled else None
    rule = sim.faults.take_fail(method, path)
    if rule is not None:
        headers = None
        if rule.rate_headers:  # a 429 reports the pool as exhausted; anything else the real count
            shown = Charge(True, charge.limit, 0, charge.reset_ms) if rule.status == 429 else charge
            headers = shown.headers()
        return error_response(SimError(rule.status, rule.code, rule.msg), headers)
    if not charge.allowed:
        return error_response(SimError(429, "429000", TOO_MANY), charge.headers())
    delay_s = sim.faults.delay_for(method, path)
    if delay_s > 0:
        await asyncio.sleep(delay_s)
        now_ms = sim.now_ms()
    try:
        if route.private:
            auth.verify(sim.credentials, request.headers, method=method, path=path,
                        raw_query=request.rel_url.raw_query_string, body=body_text, now_ms=now_ms,
                        replays=sim.replays)
        params = _params(request, body_text)
        if route.path.startswith("/api/v1/bullet-"):
            data = _bullet(sim, route.private, now_ms)
        else:
            data = route.handler(sim.exchange, params, now_ms)
    except SimError as exc:
        return error_response(exc, pool_headers)
    finally:
        sim.pump(now_ms)
    lose = sim.faults.take_lose(method, path)
    if lose is not None:
        return await sim.withhold(request, lose.mode)
    return _json({"code": "200000", "data": data}, headers=pool_headers)


def add_routes(app: web.Application) -> None:
    for route in [*BULLETS, *PUBLIC, *PRIVATE]:
        app.router.add_route(route.method, route.path, _make_handler(route))


def _make_handler(route: Route):
    async def handler(request: web.Request) -> web.Response:
        return await _serve(request, route)
    return handler


@web.middleware
async def not_found_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _json({"code": "404000", "msg": "Not Found"}, 404)
    except web.HTTPMethodNotAllowed:
        return _json({"code": "405000", "msg": "Method Not Allowed"}, 405)
