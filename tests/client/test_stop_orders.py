"""KuCoinClient's stop orders on the simulator: they rest on the exchange with the direction the
price gives, trigger there, list, cancel, and fail before sending anything on bad input."""
from __future__ import annotations

import pytest

from kucoin_client import ExchangeRejected, InvalidArgument, KuCoinClient, OrderNotFound
from kucoin_sim import Simulator

BTC = "BTC/USDT:USDT"
BTC_ID = "XBTUSDTM"


@pytest.fixture
def paused():
    """A simulator whose prices move only through move_price."""
    with Simulator(seed=7) as simulator:
        simulator.pause_market()
        yield simulator


def make_client(sim: Simulator, **kwargs) -> KuCoinClient:
    creds = sim.credentials
    kwargs.setdefault("enable_websocket", False)
    return KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url, **kwargs)


def below(price: float, fraction: float) -> float:
    return round(price * (1 - fraction), 1)


def above(price: float, fraction: float) -> float:
    return round(price * (1 + fraction), 1)


def test_a_longs_stop_loss_rests_down_on_the_mark_and_closes_the_position_when_hit(paused: Simulator) -> None:
    with make_client(paused) as client:
        client.create_market_order(BTC, "buy", 3, leverage=5)
        mark = client.get_mark_price(BTC)["markPrice"]
        stop = client.create_stop_order(BTC, "sell", 3, below(mark, 0.02), client_oid="sl-long-1")
        resting = paused.stop_orders()
        listed = client.get_stop_orders(BTC)
        paused.move_price(BTC_ID, below(mark, 0.03))
        after = (client.get_positions(), client.get_stop_orders(BTC), client.get_order(stop["id"], BTC))
    assert (stop["clientOrderId"], stop["triggerPrice"], stop["reduceOnly"]) == ("sl-long-1", below(mark, 0.02), True)
    assert [(s["stop"], s["stopPriceType"], s["side"], s["reduceOnly"]) for s in resting] == [("down", "MP", "sell", True)]
    assert [(s["id"], s["triggerPrice"], s["status"]) for s in listed] == [(stop["id"], below(mark, 0.02), "open")]
    positions, stops, triggered = after
    assert (positions, stops, triggered["filled"], triggered["info"]["stopTriggered"]) == ([], [], 3.0, True)


@pytest.mark.parametrize(("side", "move", "direction", "price_type", "wire"), [
    ("sell", above, "up", "mark", "MP"),  # a long's take-profit: a sell above the price
    ("buy", above, "up", "last", "TP"),  # a short's stop-loss on the last trade
    ("buy", below, "down", "index", "IP"),  # a short's take-profit on the index
])
def test_the_direction_comes_from_the_price_not_the_side(paused: Simulator, side, move, direction, price_type,
                                                        wire) -> None:
    with make_client(paused) as client:
        mark = client.get_mark_price(BTC)
        reference = {"mark": mark["markPrice"], "index": mark["indexPrice"],
                     "last": client.get_ticker(BTC)["last"]}[price_type]
        client.create_stop_order(BTC, side, 1, move(reference, 0.05), price_type=price_type)
    assert [(s["stop"], s["stopPriceType"], s["side"]) for s in paused.stop_orders()] == [(direction, wire, side)]


def test_stops_are_cancelled_by_id_by_client_oid_and_all_at_once(paused: Simulator) -> None:
    with make_client(paused) as client:
        mark = client.get_mark_price(BTC)["markPrice"]
        made = [client.create_stop_order(BTC, "sell", 1, below(mark, 0.1 + i / 100), client_oid=f"c{i}")
                for i in range(4)]
        by_id = client.cancel_stop_order(made[0]["id"], symbol=BTC)
        by_cid = client.cancel_stop_order(client_oid="c1", symbol=BTC)
        rest = client.cancel_stop_orders(BTC)
        with pytest.raises(OrderNotFound):
            client.cancel_stop_order(client_oid="never-placed", symbol=BTC)
        left = client.get_stop_orders()
    assert (by_id["status"], by_cid["clientOrderId"], by_cid["status"]) == ("canceled", "c1", "canceled")
    assert (sorted(rest), left, paused.stop_orders()) == (sorted(o["id"] for o in made[2:]), [], [])


def test_the_51st_waiting_stop_of_a_contract_is_refused(paused: Simulator) -> None:
    with make_client(paused) as client:
        mark = client.get_mark_price(BTC)["markPrice"]
        for i in range(50):
            client.create_stop_order(BTC, "sell", 1, below(mark, 0.1 + i / 1000))
        with pytest.raises(ExchangeRejected) as refused:
            client.create_stop_order(BTC, "sell", 1, below(mark, 0.2))
        listed = client.get_stop_orders(BTC)
    assert (refused.value.code, len(listed), len(paused.stop_orders())) == ("300004", 50, 50)


@pytest.mark.parametrize("bad", [
    {"stop_price": 50_000.05}, {"price_type": "MP"}, {"side": "short"}, {"amount": 0},
    {"limit_price": -1.0}, {"close_order": None}, {"client_oid": "has space"},
])
def test_bad_input_is_refused_before_anything_is_sent(paused: Simulator, bad) -> None:
    args = {"side": "sell", "amount": 1, "stop_price": 50_000.0, **bad}
    with make_client(paused) as client:
        client.markets  # noqa: B018 - start: the markets load
        before = (paused.request_count("POST", "/api/v1/orders"),
                  paused.request_count("GET", f"/api/v1/mark-price/{BTC_ID}/current"))
        with pytest.raises(InvalidArgument):
            client.create_stop_order(BTC, args.pop("side"), args.pop("amount"), args.pop("stop_price"), **args)
        after = (paused.request_count("POST", "/api/v1/orders"),
                 paused.request_count("GET", f"/api/v1/mark-price/{BTC_ID}/current"))
    assert (after, paused.stop_orders()) == (before, [])


def test_a_stop_whose_answer_is_lost_is_found_by_its_client_oid_and_not_sent_again(paused: Simulator) -> None:
    with make_client(paused, request_timeout_s=0.5) as client:
        mark = client.get_mark_price(BTC)["markPrice"]
        paused.lose_response("POST", "/api/v1/orders", mode="timeout")
        stop = client.create_stop_order(BTC, "sell", 2, below(mark, 0.05), client_oid="lost-1")
        sent = paused.request_count("POST", "/api/v1/orders")
    assert (stop["clientOrderId"], stop["status"], sent) == ("lost-1", "open", 1)
    assert [s["clientOid"] for s in paused.stop_orders()] == ["lost-1"]


def test_a_stop_loss_the_price_already_passed_is_refused_and_nothing_is_sent(paused: Simulator) -> None:
    with make_client(paused) as client:
        mark = client.get_mark_price(BTC)["markPrice"]
        before = paused.request_count("POST", "/api/v1/orders")
        with pytest.raises(InvalidArgument, match="would trigger on a rise"):
            client.create_stop_order(BTC, "sell", 1, above(mark, 0.01), expect_direction="down")
        assert (paused.request_count("POST", "/api/v1/orders"), paused.stop_orders()) == (before, [])
