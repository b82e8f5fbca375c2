"""HTTP control endpoints (/sim/...) so a simulator in another process can be driven.

Not part of KuCoin's API. Used by benchmarks and soaks against `python -m kucoin_sim`, and
handy by hand:
    curl -X POST 'http://127.0.0.1:PORT/sim/firehose?total=200000&symbols=XBTUSDTM'
    curl -X POST 'http://127.0.0.1:PORT/sim/firehose?total=200000&symbols=XBTUSDTM&topic=level2'
    curl -X POST 'http://127.0.0.1:PORT/sim/move_price?symbol=XBTUSDTM&price=85000[&only=mark]'
    curl -X POST 'http://127.0.0.1:PORT/sim/account_mode?mode=UNIFIED'
    curl -X POST 'http://127.0.0.1:PORT/sim/position_mode?hedged=true'
    curl -X POST 'http://127.0.0.1:PORT/sim/deleverage?symbol=XBTUSDTM[&lots=3]'
    curl -X POST 'http://127.0.0.1:PORT/sim/settle_funding?symbol=XBTUSDTM'
    curl 'http://127.0.0.1:PORT/sim/stop_orders'
The hooks answer 400 {"error": ...} when refused (an unknown symbol, hedge mode with a position).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from .appkeys import SIM
from aiohttp import web

from .errors import SimError
from .firehose import TOPICS, run_firehose


def _ok(data: object) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _bad(msg: str) -> web.Response:
    return web.Response(status=400, body=orjson.dumps({"error": msg}), content_type="application/json")


async def state(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    f = sim.faults
    return _ok({
        "connections": len(sim.hub.conns),
        "connectionsTotal": sim.hub.connections_total,
        "topics": sorted(sim.hub.by_topic),
        "faults": {"failed": f.failed, "lost": f.lost, "delayed": f.delayed, "wsRefused": f.ws_refused,
                   "wsDropped": f.ws_dropped, "malformedSent": f.malformed_sent,
                   "tokensExpired": f.tokens_expired, "sequencesSkipped": f.sequences_skipped},
        "rateLimitRejections": sim.limiter.rejections,
    })


async def firehose(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    q = request.query
    symbols = q.get("symbols", "XBTUSDTM").split(",")
    rate = float(q["rate"]) if "rate" in q else None
    topic = q.get("topic", "tickerV2")
    if topic not in TOPICS:
        return _bad(f"topic must be one of {', '.join(TOPICS)}")
    try:
        result = await run_firehose(sim.hub, symbols, int(q.get("total", "100000")), rate,
                                    topic=topic, market=sim.exchange.market)
    except SimError as exc:  # an unknown symbol for the level2 topic
        return _bad(exc.msg)
    return _ok({"sent": result.sent, "elapsedS": result.elapsed_s, "msgsPerS": result.msgs_per_s})


async def drop_ws(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    n = sim.hub.drop_all()
    sim.faults.ws_dropped += n
    return _ok({"dropped": n})


async def pause_market(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    sim._market_paused = request.query.get("paused", "true") == "true"
    return _ok({"paused": sim._market_paused})


def _hook(build: Callable[[Any], Callable[[Any, int], Any]]) -> Callable[[web.Request], Any]:
    """A /sim/ route that runs build(query)(exchange, now_ms) on the loop and pushes its events."""
    async def handler(request: web.Request) -> web.Response:
        try:
            result = request.app[SIM].apply(build(request.query))
        except SimError as exc:
            return _bad(f"{exc.code} {exc.msg}")
        except (KeyError, ValueError) as exc:  # a missing or malformed query parameter
            return _bad(f"bad request: {exc}")
        return _ok(result if result is not None else {"ok": True})
    return handler


def _lots(q: Any) -> int | None:
    return int(q["lots"]) if "lots" in q else None


HOOKS: dict[str, Callable[[Any], Callable[[Any, int], Any]]] = {
    "move_price": lambda q: lambda ex, now: ex.move_price(q["symbol"], float(q["price"]), now,
                                                          q.get("only") or None),
    "account_mode": lambda q: lambda ex, now: ex.set_account_mode(q["mode"]),
    "position_mode": lambda q: lambda ex, now: ex.set_position_mode(q["hedged"] == "true", now),
    "deleverage": lambda q: lambda ex, now: ex.deleverage(q["symbol"], now, _lots(q)),
    "settle_funding": lambda q: lambda ex, now: ex.settle_funding(q["symbol"], now),
}


async def stop_orders(request: web.Request) -> web.Response:
    return _ok(request.app[SIM].exchange.trading.all_stop_orders())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sim/state", state)
    app.router.add_post("/sim/firehose", firehose)
    app.router.add_post("/sim/drop_ws", drop_ws)
    app.router.add_post("/sim/pause_market", pause_market)
    app.router.add_get("/sim/stop_orders", stop_orders)
    for name, build in HOOKS.items():
        app.router.add_post(f"/sim/{name}", _hook(build))
