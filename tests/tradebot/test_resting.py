"""The bot's resting stops on the simulator: placed after an entry, trailed without a gap or a pile,
cleared after an exit, and reconciled after a restart (a stop that filled while the bot was down
is booked once; orphans cancelled; nothing sent twice)."""
from __future__ import annotations

import itertools
import os

import pytest

from kucoin_client import KuCoinClient
from kucoin_sim import Simulator
from tradebot.journal import Journal
from tradebot.resting import ExchangeStops, Held
from tradebot.risk import ProtectiveExit

BTC, BTC_ID = "BTC/USDT:USDT", "XBTUSDTM"


@pytest.fixture
def world(tmp_path):
    with Simulator(seed=7) as sim:
        sim.pause_market()
        creds = sim.credentials
        client = KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url,
                              enable_websocket=False)
        journal = Journal(str(tmp_path / "j.sqlite3")).open()
        try:
            yield sim, client, journal
        finally:
            client.close()
            journal.close()


OIDS = itertools.count()  # one sequence for every process a test restarts, as the bot's nonce + time


def keeper(client, journal, **kwargs) -> ExchangeStops:
    return ExchangeStops(client, journal, new_oid=lambda: f"bot-t-{next(OIDS)}", **kwargs)


def long_position(sim: Simulator, client: KuCoinClient, contracts: int = 3) -> tuple[float, Held]:
    client.create_market_order(BTC, "buy", contracts, leverage=5)
    mark = client.get_mark_price(BTC)["markPrice"]
    exits = ProtectiveExit("long", stop_price=mark * 0.98, take_profit_price=mark * 1.04,
                           trailing_distance=mark * 0.02, watermark=mark)
    return mark, Held("long", contracts, exits)


def stops_of(sim: Simulator) -> list[tuple[str, str, bool]]:
    return sorted((s["side"], s["stop"], bool(s["closeOrder"])) for s in sim.stop_orders())


def test_protect_places_a_closing_stop_loss_and_a_take_profit_once(world) -> None:
    sim, client, journal = world
    mark, held = long_position(sim, client)
    stops = keeper(client, journal)
    assert stops.protect(BTC, held) is True
    again = stops.protect(BTC, held)  # already resting: nothing more is sent
    kinds = sorted((i.kind, i.status) for i in journal.active_intents(BTC))
    assert (again, stops_of(sim), kinds) == (
        True, [("sell", "down", True), ("sell", "up", False)], [("stop", "placed"), ("take_profit", "placed")])


def test_trailing_never_leaves_zero_or_two_stop_losses(world) -> None:
    """TRAIL_MOVES=1000 python -m pytest tests/tradebot/test_resting.py -k trailing: the issue's
    1,000 moves (about 12 s); the suite makes 200."""
    sim, client, journal = world
    moves = int(os.environ.get("TRAIL_MOVES", "200"))
    mark, held = long_position(sim, client)
    stops = keeper(client, journal, trail_step=0.0, trail_interval_s=0.0)
    stops.protect(BTC, held)
    counts, prices = set(), set()
    for i in range(1, moves + 1):  # each a tick or more above the last
        moved = ProtectiveExit("long", stop_price=mark * 0.98 + i * 0.5, take_profit_price=mark * 1.04)
        stops.trail(BTC, Held("long", 3, moved))
        resting = [float(s["stopPrice"]) for s in sim.stop_orders() if s["stop"] == "down"]
        counts.add(len(resting))
        prices.update(resting)
    placed = [i for i in journal.intents() if i.kind == "stop"]
    assert (counts, len(prices), len(placed), sorted({i.status for i in placed})) == (
        {1}, moves, moves + 1, ["canceled", "placed"])


def test_clear_cancels_the_stops_of_a_closed_position(world) -> None:
    sim, client, journal = world
    _, held = long_position(sim, client)
    stops = keeper(client, journal)
    stops.protect(BTC, held)
    client.close_position(BTC)
    stops.clear(BTC)
    assert (sim.stop_orders(), journal.active_intents(BTC)) == ([], [])


def test_after_a_restart_a_stop_that_filled_is_booked_once_and_the_orphan_take_profit_cancelled(world) -> None:
    sim, client, journal = world
    mark, held = long_position(sim, client)
    keeper(client, journal).protect(BTC, held)
    posts = sim.request_count("POST", "/api/v1/orders")
    sim.move_price(BTC_ID, mark * 0.97)  # the bot is down: the exchange's stop closes the position
    restarted = keeper(client, journal)  # a new process, the same journal
    filled = restarted.settle()
    cancels = cancels_of(sim, journal)
    restarted.reconcile({}, keep=set())  # flat now: the take-profit is an orphan
    cancels = cancels_of(sim, journal) - cancels
    again = restarted.settle()
    booked = [f for f in journal.fills() if f.client_oid == filled[0].intent.client_oid]
    assert ([(f.symbol, f.kind) for f in filled], again, client.get_positions(), sim.stop_orders()) == (
        [(BTC, "stop")], [], [], [])
    assert (len(booked), booked[0].side, booked[0].amount, booked[0].fee > 0) == (1, "sell", 3, True)
    assert sim.request_count("POST", "/api/v1/orders") == posts  # nothing sent twice
    assert cancels == 1  # the orphan is cancelled once, not again from the listing read before


def cancels_of(sim: Simulator, journal: Journal) -> int:
    """DELETEs of the take-profit, by exchange id or by clientOid."""
    tp = next(i for i in journal.intents() if i.kind == "take_profit")
    return (sim.request_count("DELETE", f"/api/v1/orders/{tp.order_id}")
            + sim.request_count("DELETE", f"/api/v1/orders/client-order/{tp.client_oid}"))


def test_after_a_restart_a_missing_stop_is_placed_and_an_existing_one_kept(world) -> None:
    sim, client, journal = world
    mark, held = long_position(sim, client)
    first = keeper(client, journal)
    first.protect(BTC, held)
    client.cancel_stop_order(next(s["id"] for s in sim.stop_orders() if s["stop"] == "up"), symbol=BTC)
    restarted = keeper(client, journal)
    restarted.settle()
    restarted.reconcile({BTC: held}, keep={BTC})
    assert stops_of(sim) == [("sell", "down", True), ("sell", "up", False)]
    assert len(journal.active_intents(BTC)) == 2


def test_a_stop_loss_the_price_already_passed_is_not_placed(world) -> None:
    sim, client, journal = world
    mark, _ = long_position(sim, client)
    passed = Held("long", 3, ProtectiveExit("long", stop_price=mark * 1.01, take_profit_price=None))
    assert (keeper(client, journal).protect(BTC, passed), sim.stop_orders()) == (False, [])


def test_with_a_healthy_private_feed_the_stops_are_settled_without_polling_rest(tmp_path) -> None:
    """Issue 15: the bot no longer polls for what the private feed tells it. Settling and
    reconciling many times lists no stops over REST; a stop that fires is booked once."""
    from tests.helpers import wait_until
    with Simulator(seed=7) as sim:
        sim.pause_market()
        creds = sim.credentials
        with KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url) as client:
            journal = Journal(str(tmp_path / "j.sqlite3")).open()
            try:
                mark, held = long_position(sim, client)
                wait_until(lambda: client.get_stop_orders() == [] and
                           client.health()["private_websocket"]["fresh"]["stops"], what="the stops seeded")
                reads = sim.request_count("GET", "/api/v1/stopOrders")
                stops = keeper(client, journal)
                stops.protect(BTC, held)
                for _ in range(20):  # 20 sync rounds (the bot's is every 15 s)
                    assert stops.settle() == []
                    stops.reconcile({BTC: held}, keep={BTC})
                sim.move_price(BTC_ID, mark * 0.97)  # the stop fires on the exchange
                filled = wait_until(stops.settle, what="the fired stop settled")
                stops.reconcile({}, keep=set())  # flat now: the take-profit goes
                listed_after = (client.get_stop_orders(), sim.stop_orders())
                booked = [f for f in journal.fills() if f.client_oid == filled[0].intent.client_oid]
                rest_reads = sim.request_count("GET", "/api/v1/stopOrders") - reads
            finally:
                journal.close()
    assert ([(f.symbol, f.kind) for f in filled], listed_after) == ([(BTC, "stop")], ([], []))
    assert (len(booked), booked[0].amount, rest_reads) == (1, 3, 0)
