"""Loopback tests: KuCoinClient's untriggered stops served from the private feed's cache — equal
to REST's listing (but for ``source``, ``info`` and the timestamps), right after this client's own
place or cancel, gone once triggered, a stop placed elsewhere (its push lacks the clientOid) read
over REST until the cache is seeded again, and no ``GET /api/v1/stopOrders`` while the cache serves."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from kucoin_sim import Simulator
from tests.client.test_account_feed import comparable, make_client
from tests.helpers import wait_until

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
BTC_ID = "XBTUSDTM"
STOP_LIST = ("GET", "/api/v1/stopOrders")


@pytest.fixture
def paused_sim() -> Iterator[Simulator]:
    with Simulator(seed=11) as sim:
        sim.pause_market()  # prices move only when a test moves them
        yield sim


def stops_fresh(client) -> bool:
    client.get_stop_orders()  # an account read starts the private feed (and retries a failed seed)
    return client.health()["private_websocket"]["fresh"]["stops"]


def listing(orders: list[dict]) -> list[tuple]:
    return [(o["id"], o["clientOrderId"], o["side"], o["triggerPrice"], o["reduceOnly"], o["status"]) for o in orders]


def test_stops_from_the_cache_equal_rest_and_follow_our_place_cancel_and_trigger(paused_sim: Simulator) -> None:
    sim = paused_sim
    with make_client(sim) as client, make_client(sim, enable_websocket=False) as rest_only:
        client.create_market_order(BTC, "buy", 2, leverage=3)
        mark = client.get_mark_price(BTC)["markPrice"]
        wait_until(lambda: stops_fresh(client), what="the stops seeded")
        reads_before = sim.request_count(*STOP_LIST)
        stop = client.create_stop_order(BTC, "sell", 2, round(mark * 0.97, 1), client_oid="sc-stop")
        take = client.create_stop_order(BTC, "sell", 2, round(mark * 1.05, 1), client_oid="sc-take")
        served, rest = client.get_stop_orders(BTC), rest_only.get_stop_orders(BTC)  # at once: no push awaited
        forced = client.get_stop_orders(BTC, force_rest=True)
        assert [s["source"] for s in served] == ["websocket", "websocket"]
        assert [s["source"] for s in forced] == ["rest", "rest"] and listing(forced) == listing(served)
        assert [comparable(s) for s in served] == [comparable(s) for s in rest]
        assert listing(served) == listing(rest) and {s["clientOrderId"] for s in served} == {"sc-stop", "sc-take"}
        client.cancel_stop_order(client_oid="sc-take", symbol=BTC)
        after_cancel = client.get_stop_orders()
        sim.move_price(BTC_ID, round(mark * 0.96, 1))  # through the stop: it triggers on the exchange
        wait_until(lambda: client.get_stop_orders() == [], what="the triggered stop gone from the cache")
        reads_after = sim.request_count(*STOP_LIST)
        triggered = client.get_order(stop["id"], BTC)
    assert [(s["id"], s["source"]) for s in after_cancel] == [(stop["id"], "websocket")]
    assert reads_after == reads_before + 2  # rest_only's and the forced one: the client's others came from the cache
    assert (take["clientOrderId"], triggered["status"], triggered["filled"]) == ("sc-take", "closed", 2.0)


def test_a_stop_placed_elsewhere_is_read_over_rest_until_the_cache_is_seeded_again(paused_sim: Simulator) -> None:
    sim = paused_sim
    with make_client(sim) as client, make_client(sim, enable_websocket=False) as other:
        wait_until(lambda: stops_fresh(client), what="the stops seeded")
        mark = other.get_mark_price(ETH)["markPrice"]
        foreign = other.create_stop_order(ETH, "buy", 1, round(mark * 1.2, 2), reduce_only=False,
                                          client_oid="elsewhere")
        # Its push names no clientOid: the listing goes to REST (and re-seeds) until complete again.
        wait_until(lambda: not stops_fresh(client), what="the push of a stop placed elsewhere")
        first = client.get_stop_orders()
        # Polled gently: each miss is a REST listing (weight 6), and a retry waits 5 s.
        wait_until(lambda: stops_fresh(client), timeout_s=10, poll_s=0.25, what="the stops seeded again")
        second = client.get_stop_orders(ETH)
    assert listing(first) == listing(second) == [(foreign["id"], "elsewhere", "buy", round(mark * 1.2, 2), False,
                                                  "open")]
    assert (first[0]["source"], second[0]["source"]) == ("rest", "websocket")


def test_while_the_private_feed_is_down_stops_are_listed_over_rest(paused_sim: Simulator) -> None:
    sim = paused_sim
    with make_client(sim) as client:
        client.create_market_order(BTC, "buy", 1, leverage=3)
        mark = client.get_mark_price(BTC)["markPrice"]
        made = client.create_stop_order(BTC, "sell", 1, round(mark * 0.9, 1), client_oid="down-1")
        wait_until(lambda: stops_fresh(client), what="the stops seeded")
        sim.fail_next("POST", "/api/v1/bullet-private", status=503, count=10**6)
        sim.drop_ws()
        wait_until(lambda: client.health()["private_websocket"]["state"] != "RUNNING", what="the loss seen")
        reads = sim.request_count(*STOP_LIST)
        down = client.get_stop_orders(BTC)
    assert [(s["id"], s["source"]) for s in down] == [(made["id"], "rest")]
    assert sim.request_count(*STOP_LIST) == reads + 1
