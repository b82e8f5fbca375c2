"""Loopback tests: KuCoinClient's account over the private WebSocket feed — positions, balance and
orders served from its caches equal to what REST returns (but for ``source``, ``info`` and the
timestamps), REST at once while it is down, and fills, funding, liquidation and ADL delivered as
typed events to the callback and the queue (overflow counted)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kucoin_client import (
    FundingSettlement,
    KuCoinClient,
    OrderUpdate,
    PositionChange,
    PositionChangeReason,
    WalletChange,
)
from kucoin_sim import Simulator
from tests.helpers import wait_until

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
VOLATILE = {"info", "timestamp", "datetime", "lastUpdateTimestamp", "lastTradeTimestamp", "source"}


def make_client(sim: Simulator, **kwargs: Any) -> KuCoinClient:
    creds = sim.credentials
    return KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url, **kwargs)


def comparable(value: dict[str, Any]) -> dict[str, Any]:
    return {key: item for key, item in value.items() if key not in VOLATILE}


def account_fresh(client: KuCoinClient) -> bool:
    fresh = client.health()["private_websocket"]["fresh"]
    return fresh["positions"] and fresh["orders"] and all(fresh["balances"].values())


@pytest.fixture
def paused_sim() -> Iterator[Simulator]:
    with Simulator(seed=11) as sim:
        sim.pause_market()  # marks move only when a test moves them: cached and REST values agree
        yield sim


class Collected:
    """Events from the callback (the WebSocket thread) and from account_events(), in order."""

    def __init__(self) -> None:
        self.called: list[Any] = []
        self.drained: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.called.append(event)

    def wait_for(self, client: KuCoinClient, predicate: Any, what: str) -> Any:
        def found() -> Any:
            self.drained += client.account_events(timeout_s=0.05)
            return next((e for e in self.drained if predicate(e)), None)
        return wait_until(found, what=what)


def test_positions_balance_and_orders_from_the_websocket_equal_rest(paused_sim: Simulator) -> None:
    events = Collected()
    with make_client(paused_sim, on_account_event=events) as client, \
            make_client(paused_sim, enable_websocket=False) as rest_only:
        wait_until(lambda: account_fresh(client), what="the account seeded")
        flat_balance = (client.get_balance(), rest_only.get_balance())
        market = client.create_market_order(BTC, "buy", 2, leverage=3)
        events.wait_for(client, lambda e: isinstance(e, OrderUpdate) and e.is_done, "the market order done")
        bid = client.get_ticker(ETH)["bid"]
        resting = client.create_limit_order(ETH, "buy", 1, round(bid * 0.9, 2), leverage=2)
        opened = events.wait_for(client, lambda e: isinstance(e, OrderUpdate) and e.order_id == resting["id"],
                                 "its push")
        wait_until(lambda: any(isinstance(e, WalletChange) for e in events.called[events.called.index(opened):]),
                   what="the margin it holds pushed")  # the simulator pushes the wallet after the order
        wait_until(lambda: account_fresh(client), what="the positions re-read after the orders")
        served = {"positions": client.get_positions(), "balance": client.get_balance(),
                  "market": client.get_order(market["id"]),
                  "by_cid": client.get_order(client_oid=resting["clientOrderId"])}
        rest = {"positions": rest_only.get_positions(), "balance": rest_only.get_balance(),
                "market": rest_only.get_order(market["id"]), "by_cid": rest_only.get_order(resting["id"])}
        client.cancel_order(resting["id"], ETH)
        events.wait_for(client, lambda e: isinstance(e, OrderUpdate) and e.is_done and e.order_id == resting["id"],
                        "the cancel pushed")
        served["canceled"], rest["canceled"] = client.get_order(resting["id"]), rest_only.get_order(resting["id"])
    sources = {name: [p["source"] for p in value] if name == "positions" else value["source"]
               for name, value in served.items()}
    # Equity moves with the mark: with a position open the balance is REST's.
    assert sources == {"positions": ["websocket"], "balance": "rest", "market": "websocket",
                       "by_cid": "websocket", "canceled": "websocket"}
    assert flat_balance[0]["source"] == "websocket" and comparable(flat_balance[0]) == comparable(flat_balance[1])
    assert {p["source"] for p in rest["positions"]} == {"rest"} and rest["balance"]["source"] == "rest"
    assert [comparable(p) for p in served["positions"]] == [comparable(p) for p in rest["positions"]]
    for name in ("balance", "market", "by_cid", "canceled"):
        assert comparable(served[name]) == comparable(rest[name]), name
    assert (served["market"]["status"], served["market"]["filled"], served["canceled"]["status"]) == (
        "closed", 2.0, "canceled")
    assert [e for e in events.called if isinstance(e, OrderUpdate)] == [
        e for e in events.drained if isinstance(e, OrderUpdate)]  # the callback and the queue got the same


def test_a_dropped_private_connection_falls_back_to_rest_at_once_and_returns(paused_sim: Simulator) -> None:
    with make_client(paused_sim) as client:
        client.create_market_order(BTC, "buy", 1, leverage=3)
        wait_until(lambda: client.get_positions()[0]["source"] == "websocket",  # the first read starts the feed
                   what="the position served from the WebSocket")
        order_id = client.create_market_order(BTC, "buy", 1, leverage=3)["id"]
        wait_until(lambda: client.get_order(order_id)["source"] == "websocket", what="the order cached")
        with paused_sim.delay_rest(1.5, "POST", "/api/v1/bullet-private"):  # hold the reconnect
            paused_sim.drop_ws()
            wait_until(lambda: client.health()["private_websocket"]["state"] != "RUNNING", what="the loss seen")
            down = (client.get_positions()[0]["source"], client.get_balance()["source"],
                    client.get_order(order_id)["source"])
        wait_until(lambda: client.get_positions()[0]["source"] == "websocket" and account_fresh(client),
                   what="served from the WebSocket again")
        up = (client.get_balance()["source"], client.get_order(order_id)["source"])  # a position is open
        health = client.health()["private_websocket"]
    assert down == ("rest", "rest", "rest")
    assert up == ("rest", "websocket")  # a done order stays valid across the reconnect
    assert (health["reconnects"], health["fresh"]["positions"]) == (1, True)


def test_funding_liquidation_and_adl_arrive_as_typed_events(paused_sim: Simulator) -> None:
    events = Collected()
    with make_client(paused_sim, on_account_event=events) as client:
        wait_until(lambda: account_fresh(client), what="the account seeded")
        client.create_market_order(ETH, "sell", 4, leverage=5)
        client.create_market_order(BTC, "buy", 2, leverage=10)
        events.wait_for(client, lambda e: isinstance(e, PositionChange) and e.symbol == BTC, "the BTC position")
        assert paused_sim.wait_for_subscription("/contract/position:XBTUSDTM")
        paused_sim.settle_funding("XBTUSDTM")
        funding = events.wait_for(client, lambda e: isinstance(e, FundingSettlement), "the funding settlement")
        wait_until(lambda: client.get_positions()[0]["source"] == "websocket", what="positions re-seeded")
        paused_sim.deleverage("ETHUSDTM", lots=1)
        adl = events.wait_for(client, lambda e: isinstance(e, PositionChange) and e.reason is PositionChangeReason.ADL,
                              "the ADL")
        liquidation_price = next(p for p in client.get_positions() if p["symbol"] == BTC)["liquidationPrice"]
        paused_sim.move_price("XBTUSDTM", liquidation_price * 0.99, only="mark")
        liquidated = events.wait_for(
            client, lambda e: isinstance(e, PositionChange) and e.reason is PositionChangeReason.LIQUIDATION,
            "the liquidation")
        wallet = events.wait_for(client, lambda e: isinstance(e, WalletChange), "a wallet change")
        positions = client.get_positions()
    assert (funding.symbol, funding.qty) == (BTC, 2) and funding.fee != 0
    assert (adl.symbol, adl.qty, liquidated.symbol, liquidated.qty) == (ETH, -3, BTC, 0)
    assert [(p["symbol"], p["contracts"], p["source"]) for p in positions] == [(ETH, 3.0, "websocket")]
    assert wallet.currency == "USDT" and wallet.equity is not None
    called = [e for e in events.called if isinstance(e, (FundingSettlement, PositionChange))]
    assert called == [e for e in events.drained if isinstance(e, (FundingSettlement, PositionChange))]


def test_the_queue_drops_the_oldest_and_health_counts_them(paused_sim: Simulator) -> None:
    with make_client(paused_sim, account_queue_size=2) as client:
        assert client.health()["private_websocket"]["state"] == "NEW"  # no callback: not before an account read
        assert client.account_events() == []  # the first account call starts the feed
        wait_until(lambda: account_fresh(client), what="the account seeded")
        for _ in range(3):
            client.create_market_order(BTC, "buy", 1, leverage=3)
        wait_until(lambda: client.health()["private_websocket"]["events"]["dropped"] >= 5, what="drops counted")
        events = client.account_events()
        health = client.health()["private_websocket"]["events"]
    assert len(events) == 2 and health["dropped"] >= 5
    assert health["queued"] == health["dropped"] + len(events) + health["waiting"]  # every event accounted for


def test_without_credentials_or_websocket_there_is_no_private_feed(paused_sim: Simulator) -> None:
    with make_client(paused_sim, enable_websocket=False) as rest_only, \
            KuCoinClient(futures_url=paused_sim.url) as public:
        assert rest_only.health()["private_websocket"] == {"enabled": False}
        assert public.health()["private_websocket"] == {"enabled": False}
        assert rest_only.account_events(timeout_s=0.01) == []
        assert rest_only.get_balance()["source"] == "rest"
    tokens = paused_sim.call(lambda: [t.private for t in paused_sim.hub.tokens.values()])
    assert True not in tokens


def test_with_a_position_open_equity_follows_the_mark_not_the_last_wallet_push(paused_sim: Simulator) -> None:
    """The wallet push does not follow the mark price; a cached equity would go stale silently."""
    with make_client(paused_sim) as client, make_client(paused_sim, enable_websocket=False) as rest_only:
        client.get_positions()  # the first account read starts the private feed
        wait_until(lambda: account_fresh(client), what="the account seeded")
        client.create_market_order(BTC, "buy", 5, leverage=5)
        wait_until(lambda: client.get_positions() and client.get_positions()[0]["source"] == "websocket",
                   what="the position's push in the cache")
        before = client.get_balance()
        mark = client.get_mark_price(BTC)["markPrice"]
        paused_sim.move_price("XBTUSDTM", round(mark * 0.95, 1))  # no wallet push follows a mark move
        after, reference = client.get_balance(), rest_only.get_balance()
    assert (before["source"], after["source"]) == ("rest", "rest")
    assert after["USDT"]["total"] == reference["USDT"]["total"] < before["USDT"]["total"]


def test_a_half_open_private_connection_sends_the_reads_to_rest_within_seconds(paused_sim: Simulator) -> None:
    """Open but silent (no push, no pong): the caches must not pass for fresh until it is found
    dead (10 s without a pong). The private connection pings every 2 s; 4 s of silence is enough."""
    with make_client(paused_sim) as client:
        client.create_market_order(BTC, "buy", 1, leverage=3)
        wait_until(lambda: client.get_positions()[0]["source"] == "websocket", what="served from the WebSocket")
        quiet_idle = client.health()["private_websocket"]["quiet_s"]
        paused_sim.half_open()
        reconnects = client.health()["private_websocket"]["reconnects"]
        wait_until(lambda: client.get_positions()[0]["source"] == "rest", timeout_s=6.0, poll_s=0.1,
                   what="the reads on REST")
        health = client.health()["private_websocket"]
    assert quiet_idle is not None and quiet_idle < 4.0
    assert health["fresh"]["positions"] is False and health["quiet_s"] > 4.0 and health["reconnects"] == reconnects


@pytest.mark.parametrize("answer_lost", [False, True])
def test_a_read_after_an_own_order_reflects_it_though_its_push_is_lost(paused_sim: Simulator,
                                                                       answer_lost: bool) -> None:
    """Read-your-writes. The connection goes half-open just before an order fills: the fill's push
    never comes, and the connection still passes for alive (under 4 s quiet). The positions read
    right after the order must show it (REST, then the cache re-seeded over REST), never the stale
    flat position a bot would enter again on; also when the order's answer was lost and the order
    was found by its clientOid."""
    with make_client(paused_sim) as client:
        client.get_positions()  # the first account read starts the private feed
        wait_until(lambda: account_fresh(client), what="the account seeded")
        paused_sim.half_open()  # silent from now on: no push, no pong
        if answer_lost:
            paused_sim.lose_response("POST", "/api/v1/orders", mode="reset")
        client.create_market_order(BTC, "buy", 3, leverage=3)
        right_after = client.get_positions()
        reseeded = wait_until(lambda: next((p for p in client.get_positions() if p["source"] == "websocket"), None),
                              what="the cache re-seeded over REST")
        health = client.health()["private_websocket"]
        forced = client.get_positions(force_rest=True)
    assert [(p["contracts"], p["source"]) for p in right_after] == [(3.0, "rest")]
    assert [(p["contracts"], p["source"]) for p in forced] == [(3.0, "rest")]
    assert reseeded["contracts"] == 3.0
    assert health["quiet_s"] < 4.0 and health["state"] == "RUNNING"  # not the quiet bound: the order's fence


def test_cached_positions_follow_the_mark_through_its_pushes(paused_sim: Simulator) -> None:
    with make_client(paused_sim) as client:
        client.create_market_order(BTC, "buy", 2, leverage=3)
        wait_until(lambda: client.get_positions()[0]["source"] == "websocket", what="served from the WebSocket")
        mark = client.get_mark_price(BTC)["markPrice"]
        moved = round(mark * 1.02, 1)
        paused_sim.move_price("XBTUSDTM", moved)  # a mark-price position update follows
        # (a read under load may go to REST for a moment: the private feed quiet over 4 s)
        served = wait_until(lambda: next((p for p in client.get_positions()
                                          if p["markPrice"] == moved and p["source"] == "websocket"), None),
                            what="the cached position at the new mark")
    assert served["unrealizedPnl"] > 0


class _AgedFeed:
    """The private feed as AccountData reads it: fresh positions whose mark is `age_s` old."""

    def __init__(self, age_s: float) -> None:
        self.clock = lambda: 100.0
        self.position = PositionChange(
            symbol=BTC, reason=None, qty=2, avg_entry_price=90.0, mark_price=100.0, liquidation_price=50.0,
            unrealised_pnl=1.0, realised_pnl=0.0, margin_mode="ISOLATED", settle_currency="USDT", ts_ms=1,
            received_at=100.0 - age_s, source="websocket", info={"symbol": "XBTUSDTM", "currentQty": 2})

    def start(self) -> None: ...

    def positions(self):
        return (self.position,)


class _RestPositions:
    def get_positions(self):
        return [{"symbol": BTC, "contracts": 2.0, "markPrice": 101.0}]


class _Parser:
    def ccxt_parse(self, parser: str, payload: dict) -> dict:
        return {"symbol": BTC, "contracts": 2.0, "markPrice": 100.0}


@pytest.mark.parametrize(("age_s", "source"), [(9.0, "websocket"), (11.0, "rest")])
def test_a_cached_position_with_an_old_mark_is_read_from_rest(age_s: float, source: str) -> None:
    from kucoin_futures.client.account import MARK_MAX_AGE_S, AccountData
    account = AccountData(_Parser(), _RestPositions(), _AgedFeed(age_s), start_early=False)  # type: ignore[arg-type]
    assert MARK_MAX_AGE_S == 10.0 and [p["source"] for p in account.get_positions()] == [source]
