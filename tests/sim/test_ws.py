"""The simulator's WebSocket over real sockets: protocol, topics, limits and faults."""
from __future__ import annotations

import pytest
import websocket

from kucoin_sim import Simulator
from tests.helpers import TIMEOUT_S, wait_until
from tests.sim.wsclient import WsClient, http


def test_bullet_points_at_the_simulator(sim: Simulator) -> None:
    status, headers, body = http(sim, "POST", "/api/v1/bullet-public")
    assert status == 200 and body["code"] == "200000"
    server = body["data"]["instanceServers"][0]
    assert server == {"endpoint": sim.ws_url, "encrypt": False, "protocol": "websocket",
                      "pingInterval": 18000, "pingTimeout": 10000}
    assert isinstance(body["data"]["token"], str) and len(body["data"]["token"]) > 20
    assert int(headers["gw-ratelimit-remaining"]) == 2000 - 10


def test_welcome_ping_pong(sim: Simulator) -> None:
    client = WsClient(sim, connect_id="abc")
    assert client.recv() == {"id": "abc", "type": "welcome"}
    client.send({"id": "p-1", "type": "ping"})
    pong = client.recv()
    assert (pong["id"], pong["type"]) == ("p-1", "pong")
    client.close()


def test_subscribe_ack_and_single_symbol_pushes(sim: Simulator) -> None:
    with WsClient(sim) as client:
        ack = client.subscribe("/contractMarket/tickerV2:XBTUSDTM,ETHUSDTM")
        assert ack == {"id": "1", "type": "ack"}
        assert sim.wait_for_subscription("/contractMarket/tickerV2:ETHUSDTM", TIMEOUT_S)
        seen = set()
        while seen != {"XBTUSDTM", "ETHUSDTM"}:
            frame = client.recv_until(lambda f: f.get("subject") == "tickerV2", what="tickerV2 push")
            assert frame["topic"] == f"/contractMarket/tickerV2:{frame['data']['symbol']}"
            seen.add(frame["data"]["symbol"])
        assert client.subscribe("/contractMarket/tickerV2:XBTUSDTM,ETHUSDTM", type="unsubscribe")["type"] == "ack"
        assert sim.wait_until(lambda: not sim.subscriptions, TIMEOUT_S)


def test_subscribe_errors(sim: Simulator) -> None:
    with WsClient(sim) as client:
        too_many = ",".join(["XBTUSDTM"] * 101)
        err = client.subscribe(f"/contractMarket/level2:{too_many}")
        assert (err["type"], err["code"]) == ("error", 509)
        assert err["data"] == "exceed max subscription count limitation of 100 per time"
        err = client.subscribe("/contractMarket/level2:NOPEUSDTM")
        assert (err["type"], err["code"]) == ("error", 404)
        err = client.subscribe("/contractMarket/tradeOrders")
        assert (err["type"], err["code"]) == ("error", 401)  # private topic on a public token
    assert sim.subscriptions == frozenset()


def test_bad_token_is_refused(sim: Simulator) -> None:
    ws = websocket.create_connection(f"{sim.ws_url}?token=nope&connectId=x", timeout=TIMEOUT_S)
    frame = ws.recv()
    assert '"code":401' in frame and "token is invalid" in frame
    ws.close()


def test_silent_client_is_closed_after_interval_plus_timeout() -> None:
    with Simulator(seed=3, ping_interval_ms=300, ping_timeout_ms=300) as sim:
        with WsClient(sim) as client:
            assert sim.connection_count == 1
            assert sim.wait_until(lambda: sim.connection_count == 0, TIMEOUT_S)
            with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
                client.recv_until(lambda f: False, timeout_s=TIMEOUT_S)


def test_uplink_limit_disconnects(sim: Simulator) -> None:
    with WsClient(sim) as client:
        for i in range(101):
            client.send({"id": f"p{i}", "type": "ping"})
        assert sim.wait_until(lambda: sim.connection_count == 0, TIMEOUT_S)


def test_level2_deltas_are_consecutive_and_rebuild_the_book(sim: Simulator) -> None:
    with WsClient(sim) as client:
        client.subscribe("/contractMarket/level2:ETHUSDTM")
        first = client.recv_until(lambda f: f.get("subject") == "level2", what="level2 delta")
        _, _, snap = http(sim, "GET", "/api/v1/level2/snapshot?symbol=ETHUSDTM")
        book = {"buy": {p: s for p, s in snap["data"]["bids"]}, "sell": {p: s for p, s in snap["data"]["asks"]}}
        seq = snap["data"]["sequence"]
        prev = first["data"]["sequence"]
        applied = 0
        while applied < 30:
            data = client.recv_until(lambda f: f.get("subject") == "level2", what="level2 delta")["data"]
            assert data["sequence"] == prev + 1
            prev = data["sequence"]
            if data["sequence"] <= seq:
                continue
            assert data["sequence"] == seq + 1
            seq = data["sequence"]
            price, side, size = data["change"].split(",")
            if int(size) == 0:
                book[side].pop(float(price), None)
            else:
                book[side][float(price)] = int(size)
            applied += 1
        sim.pause_market()
        _, _, later = http(sim, "GET", "/api/v1/level2/snapshot?symbol=ETHUSDTM")
        while seq < later["data"]["sequence"]:
            data = client.recv_until(lambda f: f.get("subject") == "level2", what="level2 delta")["data"]
            seq = data["sequence"]
            price, side, size = data["change"].split(",")
            if int(size) == 0:
                book[side].pop(float(price), None)
            else:
                book[side][float(price)] = int(size)
        assert sorted(book["buy"].items(), reverse=True) == [tuple(x) for x in later["data"]["bids"]]
        assert sorted(book["sell"].items()) == [tuple(x) for x in later["data"]["asks"]]


def test_fault_skip_level2_sequence(sim: Simulator) -> None:
    with WsClient(sim) as client:
        client.subscribe("/contractMarket/level2:XBTUSDTM")
        prev = client.recv_until(lambda f: f.get("subject") == "level2")["data"]["sequence"]
        skipped = sim.skip_level2_sequence("XBTUSDTM")
        gap = None
        while gap is None:
            seq = client.recv_until(lambda f: f.get("subject") == "level2")["data"]["sequence"]
            if seq != prev + 1:
                gap = (prev, seq)
            prev = seq
        assert gap == (skipped - 1, skipped + 1)
        assert sim.faults.sequences_skipped == 1


def test_fault_drop_ws(sim: Simulator) -> None:
    with WsClient(sim) as client:
        assert sim.drop_ws() == 1
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            client.recv_until(lambda f: False)
        assert sim.wait_until(lambda: sim.connection_count == 0, TIMEOUT_S)
        assert sim.faults.ws_dropped == 1


def test_fault_half_open_keeps_socket_but_answers_nothing(sim: Simulator) -> None:
    with WsClient(sim) as client:
        client.subscribe("/contractMarket/tickerV2:XBTUSDTM")
        assert sim.half_open() == 1
        client.send({"id": "p", "type": "ping"})
        with pytest.raises(AssertionError):
            client.recv_until(lambda f: True, timeout_s=0.5)
        assert sim.connection_count == 1  # the socket is still open
        with WsClient(sim) as fresh:  # new connections work normally
            fresh.send({"id": "p2", "type": "ping"})
            assert fresh.recv_until(lambda f: f["type"] == "pong")["id"] == "p2"


def test_fault_malformed_frame(sim: Simulator) -> None:
    with WsClient(sim) as client:
        assert sim.send_malformed() == 1
        raw = client.ws.recv()
        with pytest.raises(ValueError):
            __import__("orjson").loads(raw)
        client.send({"id": "after", "type": "ping"})
        assert client.recv_until(lambda f: f["type"] == "pong")["id"] == "after"
        assert sim.faults.malformed_sent == 1


def test_fault_expire_tokens(sim: Simulator) -> None:
    with WsClient(sim) as client:
        assert sim.expire_tokens() >= 1
        err = client.recv()
        assert err == {"type": "error", "code": 401, "data": "token is expired"}
        old_url = client.url
    ws = websocket.create_connection(old_url, timeout=TIMEOUT_S)
    assert "token is expired" in ws.recv()
    ws.close()
    with WsClient(sim) as fresh:  # a new token works
        assert fresh.subscribe("/contractMarket/ticker:XBTUSDTM")["type"] == "ack"


def test_fault_refuse_ws(sim: Simulator) -> None:
    sim.refuse_ws(2)
    for _ in range(2):
        with pytest.raises(websocket.WebSocketBadStatusException) as err:
            WsClient(sim)
        assert err.value.status_code == 503
    with WsClient(sim):
        pass
    assert sim.faults.ws_refused == 2


def test_private_order_events_follow_rest(sim: Simulator) -> None:
    with WsClient(sim, private=True) as client:
        assert client.subscribe("/contractMarket/tradeOrders", privateChannel=True)["type"] == "ack"
        body = {"clientOid": "ws-evt-1", "side": "buy", "symbol": "XBTUSDTM", "type": "market",
                "leverage": 5, "size": 1}
        status, _, resp = http(sim, "POST", "/api/v1/orders", body, signed=True)
        assert status == 200, resp
        order_id = resp["data"]["orderId"]
        kinds = []
        while "filled" not in kinds:
            frame = client.recv_until(lambda f: f.get("subject") == "orderChange", what="orderChange")
            assert frame["channelType"] == "private"
            assert frame["data"]["orderId"] == order_id and frame["data"]["clientOid"] == "ws-evt-1"
            kinds.append(frame["data"]["type"])
        assert "match" in kinds
        _, _, order = http(sim, "GET", f"/api/v1/orders/{order_id}", signed=True)
        assert order["data"]["status"] == "done" and order["data"]["filledSize"] == 1


def test_depth5_and_candle_pushes(sim: Simulator) -> None:
    with WsClient(sim) as client:
        client.subscribe("/contractMarket/level2Depth5:XBTUSDTM")
        depth = client.recv_until(lambda f: f.get("topic") == "/contractMarket/level2Depth5:XBTUSDTM")
        assert len(depth["data"]["bids"]) == 5 and len(depth["data"]["asks"]) == 5
        assert depth["data"]["bids"][0][0] < depth["data"]["asks"][0][0] or \
            float(depth["data"]["bids"][0][0]) < float(depth["data"]["asks"][0][0])
        client.subscribe("/contractMarket/limitCandle:XBTUSDTM_1min")
        candle = client.recv_until(lambda f: f.get("subject") == "candle.stick", timeout_s=3 * TIMEOUT_S)
        assert candle["topic"] == "/contractMarket/limitCandle:XBTUSDTM_1min"
        start_s = int(candle["data"]["candles"][0])
        assert start_s % 60 == 0 and 1e9 < start_s < 1e10


def test_many_connections_and_clean_stop() -> None:
    sim = Simulator(seed=5).start()
    clients = [WsClient(sim, connect_id=f"c{i}") for i in range(20)]
    assert wait_until(lambda: sim.connection_count == 20, what="20 connections")
    sim.stop()
    assert not sim._thread.is_alive()
    for c in clients:
        c.close()
