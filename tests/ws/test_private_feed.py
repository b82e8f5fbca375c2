"""Loopback tests: the private feed (AccountFeed) against the simulator — a bullet-private token,
fills and position changes as events (each once), caches seeded then kept by pushes, stale at once
when the connection drops and fresh again after the resubscribe and a new seed."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from kucoin_futures.errors import ConfigError
from kucoin_futures.protocol.private import OrderUpdate, PositionChange, PositionChangeReason, WalletChange
from kucoin_futures.rest.gateway import RestGateway
from kucoin_futures.ws.private_feed import PRIVATE_TOPICS, AccountFeed
from kucoin_futures.ws.rest_port import LocalRest
from kucoin_futures.ws.subscriptions import State
from kucoin_sim import Simulator
from tests.helpers import start_gateway, wait_until
from tests.sim.wsclient import http

BTC = "BTC/USDT:USDT"
BTC_POSITION_TOPIC = "/contract/position:XBTUSDTM"


@pytest.fixture
def gateway(sim: Simulator) -> Iterator[RestGateway]:
    gateway = start_gateway(sim)
    yield gateway
    gateway.close()


@pytest.fixture
def feed(gateway: RestGateway) -> Iterator[AccountFeed]:
    feed = AccountFeed(rest=gateway, backoff_initial_s=0.05, backoff_cap_s=0.2).start()
    wait_until(lambda: all(feed.cache.freshness()[k] for k in ("positions", "orders"))
               and feed.wallet("USDT") is not None, what="the account seeded")
    yield feed
    feed.stop()


def buy(sim: Simulator, lots: int, cid: str) -> str:
    status, _, body = http(sim, "POST", "/api/v1/orders", {"clientOid": cid, "side": "buy", "symbol": "XBTUSDTM",
                                                           "type": "market", "leverage": 3, "size": lots}, signed=True)
    assert status == 200, body
    return body["data"]["orderId"]


class Drained:
    """Every event drained from a feed's queue so far, in order."""

    def __init__(self, feed: AccountFeed) -> None:
        self.feed = feed
        self.events: list[Any] = []

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def wait_for(self, kind: type, count: int) -> list[Any]:
        def enough() -> bool:
            self.events += self.feed.sink.queue.drain()
            return len(self.of(kind)) >= count
        wait_until(enough, what=f"{count} {kind.__name__} events")
        return self.of(kind)


def events_of(feed: AccountFeed, kind: type, count: int) -> list[Any]:
    return Drained(feed).wait_for(kind, count)


def test_the_private_connection_uses_a_private_token_and_the_account_topics(sim: Simulator,
                                                                             feed: AccountFeed) -> None:
    tokens = sim.call(lambda: [t.private for t in sim.hub.tokens.values()])
    assert tokens == [True]  # its only connection: a bullet-private token
    assert set(PRIVATE_TOPICS) <= sim.subscriptions
    health = feed.health()
    assert (health["state"], health["fresh"], health["seeds"]) == (
        "RUNNING", {"positions": True, "orders": True, "stops": True, "balances": {"USDT": True}},
        {"started": 4, "failed": 0})


def test_a_fill_arrives_as_events_in_the_caches_and_each_change_once(sim: Simulator, feed: AccountFeed) -> None:
    sim.pause_market()
    drained = Drained(feed)
    order_id = buy(sim, 2, "pf-1")
    fills = [e for e in drained.wait_for(OrderUpdate, 2) if e.is_fill]
    assert [(f.order_id, f.fill_size, f.client_oid) for f in fills] == [(order_id, 2, "pf-1")]
    assert sim.wait_for_subscription(BTC_POSITION_TOPIC)  # an open position: its own topic too
    buy(sim, 1, "pf-2")  # now its position push arrives on two topics
    drained.wait_for(PositionChange, 2)
    wait_until(lambda: feed.ws.stats().topics[BTC_POSITION_TOPIC].messages >= 1, what="the per-symbol push")
    drained.events += feed.sink.queue.drain()
    assert [(c.qty, c.reason) for c in drained.of(PositionChange)] == [
        (2, PositionChangeReason.POSITION_CHANGE), (3, PositionChangeReason.POSITION_CHANGE)]
    assert [p.qty for p in feed.positions() if p.symbol == BTC] == [3]
    assert feed.wallet("USDT").equity is not None
    assert feed.cache.order(order_id) is None  # no static fields yet: a REST read first (client layer)


def test_a_malformed_private_push_is_counted_and_the_feed_continues(sim: Simulator, feed: AccountFeed) -> None:
    bad = {"topic": "/contractMarket/tradeOrders", "type": "message", "subject": "orderChange",
           "channelType": "private", "data": {"orderId": "1", "type": "exploded"}}
    sim.send_raw([orjson.dumps(bad)])
    wait_until(lambda: feed.ws.stats().malformed == 1, what="the malformed push counted")
    buy(sim, 1, "pf-3")
    assert events_of(feed, OrderUpdate, 1) and feed.ws.state is State.RUNNING


def test_a_dropped_connection_is_stale_at_once_and_fresh_after_the_resubscribe_and_seed(
        sim: Simulator, feed: AccountFeed) -> None:
    seeds_before = feed.health()["seeds"]["started"]
    with sim.delay_rest(1.5, "POST", "/api/v1/bullet-private"):  # hold the reconnect
        sim.drop_ws()
        wait_until(lambda: feed.ws.state is not State.RUNNING, what="the loss seen")
        assert (feed.positions(), feed.wallet("USDT")) == (None, None)
        assert feed.health()["fresh"] == {"positions": False, "orders": False, "stops": False,
                                          "balances": {"USDT": False}}
        assert feed.stop_orders(None) is None
    wait_until(lambda: feed.positions() is not None and feed.wallet("USDT") is not None
               and feed.cache.freshness()["orders"] and feed.stop_orders(None) is not None, what="fresh again")
    health = feed.health()
    assert (health["reconnects"], health["seeds"]["started"] - seeds_before) == (1, 4)


def test_a_standalone_feed_has_no_private_token() -> None:
    rest = LocalRest(rest_url="http://127.0.0.1:9", rest_get=None, token_provider=None, timeout_s=1.0,
                     threads=1, name="t")
    try:
        with pytest.raises(ConfigError):
            rest.submit_private_token().result(timeout=1)
    finally:
        rest.close(1.0)


def test_wallet_events_are_the_cached_state(sim: Simulator, feed: AccountFeed) -> None:
    sim.pause_market()
    buy(sim, 1, "pf-4")
    wallets = events_of(feed, WalletChange, 1)
    assert all(w.equity is not None for w in wallets)  # the classic partial push merged, not passed on
    assert wallets[-1] == feed.wallet("USDT")
