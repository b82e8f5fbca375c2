"""HTTP control endpoints (/sim/...) so a simulator in another process can be driven.

Not part of KuCoin's API. Used by benchmarks against `python -m kucoin_sim`, and handy by hand:
    curl -X POST 'http://127.0.0.1:PORT/sim/firehose?total=200000&symbols=XBTUSDTM'
    curl -X POST 'http://127.0.0.1:PORT/sim/firehose?total=200000&symbols=XBTUSDTM&topic=level2'
"""
from __future__ import annotations

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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sim/state", state)
    app.router.add_post("/sim/firehose", firehose)
    app.router.add_post("/sim/drop_ws", drop_ws)
    app.router.add_post("/sim/pause_market", pause_market)
