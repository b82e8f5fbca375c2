"""The paper broker: fills at the touch with fees, PnL by hand, exchange rules, persistence."""
from __future__ import annotations

from pathlib import Path

import pytest
from pytest import approx

from tradebot.journal import Journal
from kucoin_futures.errors import OrderNotFound
from kucoin_futures.errors import InsufficientFunds, InvalidArgument, InvalidOrder, NoPosition
from tradebot.paper import PaperBroker, PaperContract
from tradebot.performance import summary

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
LOTS = "LOT/USDT:USDT"
NOW_MS = 1_700_000_000_000
NOW_ISO = "2023-11-14T22:13:20.000Z"
CONTRACTS = {
    BTC: (0.001, 1, 0.0006, 125),  # KuCoin XBTUSDTM's multiplier, lot, taker fee, max leverage
    ETH: PaperContract(multiplier=0.01, lot_size=1, taker_fee_rate=0.0006, max_leverage=100),
    LOTS: PaperContract(multiplier=1.0, lot_size=10, taker_fee_rate=0.0, max_leverage=20),
}


class Quotes:
    """The touch by symbol, moved by the test."""

    def __init__(self) -> None:
        self.touch = {BTC: (50_000.0, 50_010.0), ETH: (3_000.0, 3_001.0), LOTS: (1.0, 1.0)}

    def __call__(self, symbol: str) -> tuple[float, float]:
        return self.touch[symbol]


@pytest.fixture
def quotes() -> Quotes:
    return Quotes()


@pytest.fixture
def broker(quotes: Quotes) -> PaperBroker:
    return PaperBroker(quotes, CONTRACTS, balance_usdt=10_000.0, clock_ms=lambda: NOW_MS)


def _order(n: int, oid: str, side: str, amount: int, filled: int, price: float | None,
           cost: float, fee: float, *, reduce_only: bool = False, realised: float = 0.0,
           leverage: int = 5, rate: float = 0.0006, symbol: str = BTC) -> dict:
    fee_info = {"cost": approx(fee), "currency": "USDT", "rate": rate}
    return {
        "info": {"paper": True, "realisedPnl": approx(realised), "leverage": leverage},
        "id": f"paper{n:012d}", "clientOrderId": oid, "timestamp": NOW_MS, "datetime": NOW_ISO,
        "lastTradeTimestamp": NOW_MS if filled else None, "lastUpdateTimestamp": NOW_MS,
        "symbol": symbol, "type": "market", "timeInForce": "IOC", "postOnly": False,
        "reduceOnly": reduce_only, "side": side, "price": price, "average": price,
        "amount": amount, "filled": filled, "remaining": amount - filled, "cost": approx(cost),
        "status": "closed" if filled else "canceled", "fee": fee_info, "fees": [fee_info],
        "trades": [], "triggerPrice": None, "stopPrice": None, "takeProfitPrice": None,
        "stopLossPrice": None,
    }


def test_buy_fills_at_the_ask_with_the_taker_fee(broker):
    order = broker.create_market_order(BTC, "buy", 10, leverage=5, client_oid="b1")
    # 10 x 0.001 x 50_010 = 500.1 USDT; fee 500.1 x 0.0006 = 0.30006
    assert order == _order(1, "b1", "buy", 10, 10, 50_010.0, 500.1, 0.30006)
    wallet = 10_000.0 - 0.30006
    margin = 500.1 / 5
    unrealised = 10 * (50_005.0 - 50_010.0) * 0.001  # marked at the mid: -0.05
    assert broker.get_balance()["USDT"] == approx(
        {"free": wallet - margin, "used": margin + unrealised, "total": wallet + unrealised})
    assert broker.get_positions() == [{
        "info": {"paper": True, "currentQty": 10}, "id": None, "symbol": BTC,
        "timestamp": NOW_MS, "datetime": NOW_ISO, "side": "long", "contracts": 10,
        "contractSize": 0.001, "entryPrice": 50_010.0, "markPrice": 50_005.0,
        "notional": approx(500.05), "leverage": 5, "unrealizedPnl": approx(unrealised),
        "realizedPnl": None, "initialMargin": approx(margin), "initialMarginPercentage": 0.2,
        "collateral": approx(margin + unrealised), "percentage": approx(100 * unrealised / margin),
        "marginMode": "isolated", "hedged": False, "liquidationPrice": None,
        "maintenanceMargin": None, "marginRatio": None}]


def test_sell_closes_at_the_bid_with_pnl_by_hand(broker, quotes):
    broker.create_market_order(BTC, "buy", 10, leverage=5, client_oid="b1")
    quotes.touch[BTC] = (51_000.0, 51_010.0)
    order = broker.create_market_order(BTC, "sell", 10, reduce_only=True, client_oid="s1")
    # realised 10 x (51_000 - 50_010) x 0.001 = 9.9; fee 10 x 0.001 x 51_000 x 0.0006 = 0.306
    assert order == _order(2, "s1", "sell", 10, 10, 51_000.0, 510.0, 0.306, reduce_only=True,
                           realised=9.9)
    wallet = 10_000.0 - 0.30006 + 9.9 - 0.306
    assert broker.get_balance()["USDT"] == approx({"free": wallet, "used": 0.0, "total": wallet})
    assert broker.get_positions() == []


def test_short_round_trip_pnl_by_hand(broker, quotes):
    broker.create_market_order(ETH, "sell", 4, leverage=10, client_oid="s1")  # at bid 3000
    quotes.touch[ETH] = (2_900.0, 2_901.0)
    order = broker.close_position(ETH, client_oid="c1")  # buys back at the ask 2901
    # realised 4 x (3000 - 2901) x 0.01 = 3.96; fees 4 x 0.01 x (3000 + 2901) x 0.0006
    assert order == _order(2, "c1", "buy", 4, 4, 2_901.0, 116.04, 0.069624, reduce_only=True,
                           realised=3.96, leverage=10, symbol=ETH)
    wallet = 10_000.0 + 3.96 - 4 * 0.01 * (3_000 + 2_901) * 0.0006
    assert broker.get_balance()["total"] == approx({"USDT": wallet})


def test_adding_averages_the_entry_and_keeps_the_leverage(broker, quotes):
    broker.create_market_order(BTC, "buy", 2, leverage=5)
    quotes.touch[BTC] = (50_990.0, 51_010.0)
    broker.create_market_order(BTC, "buy", 2, leverage=20)
    [position] = broker.get_positions()
    assert (position["contracts"], position["entryPrice"], position["leverage"]) == (
        4, approx(50_510.0), 5)


def test_opposite_order_larger_than_the_position_flips_it(broker):
    broker.create_market_order(BTC, "buy", 10, leverage=5, client_oid="b1")
    order = broker.create_market_order(BTC, "sell", 15, leverage=3, client_oid="s1")
    assert (order["filled"], order["info"]["realisedPnl"]) == (15, approx(10 * -10 * 0.001))
    [position] = broker.get_positions()
    assert (position["side"], position["contracts"], position["entryPrice"],
            position["leverage"]) == ("short", 5, 50_000.0, 3)


def test_reduce_only_never_exceeds_the_position(broker):
    broker.create_market_order(BTC, "buy", 3, leverage=5, client_oid="b1")
    order = broker.create_market_order(BTC, "sell", 5, reduce_only=True, client_oid="s1")
    assert (order["status"], order["filled"], order["remaining"]) == ("closed", 3, 2)
    assert broker.get_positions() == []


@pytest.mark.parametrize("setup", [None, "buy"])
def test_reduce_only_with_nothing_to_reduce_is_canceled(broker, setup):
    if setup:
        broker.create_market_order(BTC, setup, 1, client_oid="first")
    order = broker.create_market_order(BTC, "buy", 2, reduce_only=True, client_oid="r1")
    assert order == _order(2 if setup else 1, "r1", "buy", 2, 0, None, 0.0, 0.0,
                           reduce_only=True, leverage=1)


def test_close_position_when_flat_sends_nothing(broker):
    with pytest.raises(NoPosition):
        broker.close_position(BTC)
    assert broker.state()["orders"] == []


def test_repeated_client_oid_is_refused(broker):
    broker.create_market_order(BTC, "buy", 1, client_oid="same")
    with pytest.raises(InvalidOrder) as info:
        broker.create_market_order(BTC, "buy", 1, client_oid="same")
    assert info.value.code == "300018"
    assert broker.get_positions()[0]["contracts"] == 1


def test_leverage_above_the_contract_maximum_is_refused(broker):
    with pytest.raises(InvalidOrder) as info:
        broker.create_market_order(ETH, "buy", 1, leverage=101)
    assert info.value.code == "300016"


def test_unaffordable_opening_is_refused_and_changes_nothing(quotes):
    small = PaperBroker(quotes, CONTRACTS, balance_usdt=100.0, clock_ms=lambda: NOW_MS)
    before = small.state()
    with pytest.raises(InsufficientFunds) as info:
        small.create_market_order(BTC, "buy", 10, leverage=1, client_oid="x")  # needs 500.4
    assert info.value.code == "300003"
    assert small.state() == before
    assert small.lookup_order("x") is None


@pytest.mark.parametrize("symbol, side, amount", [
    (BTC, "long", 1), (BTC, "buy", 0), (BTC, "buy", 1.5), (LOTS, "buy", 15),
    ("XRP/USDT:USDT", "buy", 1),
])
def test_bad_arguments_are_refused_locally(broker, symbol, side, amount):
    with pytest.raises(InvalidArgument):
        broker.create_market_order(symbol, side, amount)
    with pytest.raises(InvalidArgument):
        broker.create_market_order(BTC, "buy", 1, margin_mode="cross")
    with pytest.raises(InvalidArgument):
        broker.create_market_order(BTC, "buy", 1, client_oid="not a valid oid")
    assert broker.state()["orders"] == []


def test_get_order_by_id_and_client_oid(broker):
    order = broker.create_market_order(BTC, "buy", 1, client_oid="b1")
    assert broker.get_order(order["id"]) == order
    assert broker.get_order(client_oid="b1", symbol=BTC) == order
    assert broker.lookup_order("b1", ETH) is None
    with pytest.raises(OrderNotFound) as info:
        broker.get_order("paper999")
    assert (info.value.code, info.value.http_status) == ("100001", 404)
    with pytest.raises(OrderNotFound):
        broker.get_order(client_oid="b1", symbol=ETH)
    with pytest.raises(InvalidArgument):
        broker.get_order(order["id"], client_oid="b1")  # exactly one, as the live manager


def test_set_leverage_is_the_default_for_new_positions(broker):
    assert broker.set_leverage(BTC, 20) == {"info": {"paper": True}, "symbol": BTC, "leverage": 20}
    broker.create_market_order(BTC, "buy", 1)
    assert broker.get_positions()[0]["leverage"] == 20
    assert broker.get_open_orders() == []
    with pytest.raises(InvalidArgument):
        broker.set_leverage(BTC, 126)


def test_state_survives_a_restart(tmp_path: Path, quotes):
    path = str(tmp_path / "paper.sqlite3")
    with Journal(path) as journal:
        first = PaperBroker(quotes, CONTRACTS, journal=journal, clock_ms=lambda: NOW_MS)
        assert not first.restore()  # nothing saved yet
        first.create_market_order(BTC, "buy", 4, leverage=5, client_oid="b1")
        first.create_market_order(ETH, "sell", 2, leverage=10, client_oid="s1")
        first.set_leverage(BTC, 7)
        saved, positions = first.state(), first.get_positions()
    with Journal(path) as journal:
        second = PaperBroker(quotes, CONTRACTS, journal=journal, clock_ms=lambda: NOW_MS)
        assert second.restore()
        assert (second.state(), second.get_positions()) == (saved, positions)
        with pytest.raises(InvalidOrder):
            second.create_market_order(BTC, "buy", 1, client_oid="b1")  # still known


def test_journal_summary_matches_the_paper_wallet(tmp_path: Path, quotes):
    """The bot's flow: intent, order, apply_order; the summary's net PnL is the wallet change."""
    steps = [(BTC, "buy", 10, (50_000.0, 50_010.0)), (BTC, "sell", 4, (50_500.0, 50_510.0)),
             (BTC, "sell", 10, (49_000.0, 49_010.0)), (BTC, "buy", 4, (48_000.0, 48_010.0)),
             (ETH, "sell", 3, (3_000.0, 3_001.0)), (ETH, "buy", 3, (3_100.0, 3_101.0))]
    with Journal(str(tmp_path / "j.sqlite3")) as journal:
        broker = PaperBroker(quotes, CONTRACTS, journal=journal, clock_ms=lambda: NOW_MS)
        for n, (symbol, side, amount, touch) in enumerate(steps):
            quotes.touch[symbol] = touch
            size = CONTRACTS[BTC][0] if symbol == BTC else CONTRACTS[ETH].multiplier
            journal.record_intent(f"i{n}", symbol, side, amount, kind="entry", contract_size=size)
            journal.apply_order(f"i{n}", broker.create_market_order(
                symbol, side, amount, leverage=5, client_oid=f"i{n}"))
        result = summary(journal)
    wallet = broker.get_balance()["info"]["wallet"]
    assert (result.trades, result.open_positions) == (3, 0)
    assert result.net_pnl == approx(wallet - 10_000.0)
    # by hand: BTC +4 x 490 x 0.001 - 6 x 1010 x 0.001 + 4 x 990 x 0.001 = 1.96 - 6.06 + 3.96;
    # ETH 3 x -101 x 0.01 = -3.03
    assert result.realised_pnl == approx(1.96 - 6.06 + 3.96 - 3.03)
