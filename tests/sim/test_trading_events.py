"""Private pushes of the trading engine: orderChange lifecycle, position and wallet pushes."""
from __future__ import annotations

from kucoin_sim.events import PrivateEvent, Trade
from tests.sim.trading_market import T0, make_trading, order_body, private_events

XBT = "XBTUSDTM"
NS = 1_000_000


def _trail(events):
    return [(e.kind, e.subject, e.data.get("type"), e.data.get("status")) for e in events]


def test_limit_order_lifecycle_is_pushed_in_order():
    """Match as taker twice, open with the rest, then fill as maker when the quote crosses."""
    market, trading = make_trading()
    ack = trading.place_order(order_body("buy", 20, price="90000.5"), T0)
    everything = market.drain_events()
    trades = [e for e in everything if isinstance(e, Trade)]
    placed = [e for e in everything if isinstance(e, PrivateEvent)]
    fmt = market.fmt(XBT)
    trading.before_quote(XBT, fmt.to_ticks("90000"), fmt.to_ticks("90000.5"), T0 + 100)
    crossed = private_events(market)

    assert _trail(placed) == [
        ("order", "orderChange", "match", "match"), ("order", "orderChange", "match", "match"),
        ("order", "orderChange", "open", "open"), ("position", "position.change", None, None),
        ("wallet", "walletBalance.change", None, None), ("wallet", "availableBalance.change", None, None),
    ]
    assert placed[0].data == {
        "symbol": XBT, "orderType": "limit", "side": "buy", "canceledSize": "0",
        "orderId": ack["orderId"], "positionSide": "BOTH", "marginMode": "ISOLATED",
        "type": "match", "orderTime": T0 * NS, "size": "20", "filledSize": "5",
        "price": "90000.5", "remainSize": "15", "clientOid": "c-1", "status": "match",
        "ts": T0 * NS, "matchPrice": "90000", "matchSize": "5", "tradeId": trades[0].trade_id,
        "liquidity": "taker", "feeType": "takerFee", "tradeType": "trade",
    }
    assert (placed[2].data["filledSize"], placed[2].data["remainSize"]) == ("15", "5")
    assert _trail(crossed) == [
        ("order", "orderChange", "match", "open"), ("order", "orderChange", "filled", "done"),
        ("position", "position.change", None, None), ("wallet", "walletBalance.change", None, None),
        ("wallet", "availableBalance.change", None, None),
    ]
    assert {k: crossed[0].data[k] for k in ("matchPrice", "matchSize", "liquidity", "feeType", "remainSize")} == {
        "matchPrice": "90000.5", "matchSize": "5", "liquidity": "maker", "feeType": "makerFee",
        "remainSize": "0"}
    assert (crossed[1].data["filledSize"], crossed[1].data["remainSize"], crossed[1].data["ts"]) == (
        "20", "0", (T0 + 100) * NS)


def test_cancel_pushes_canceled_with_the_canceled_size_and_a_wallet_update():
    market, trading = make_trading()
    ack = trading.place_order(order_body("sell", 4, price="91000"), T0)
    market.drain_events()
    trading.cancel_order({"orderId": ack["orderId"]}, T0 + 7)
    pushes = private_events(market)

    assert _trail(pushes) == [
        ("order", "orderChange", "canceled", "done"), ("wallet", "walletBalance.change", None, None),
        ("wallet", "availableBalance.change", None, None),
    ]
    assert (pushes[0].data["canceledSize"], pushes[0].data["remainSize"], pushes[0].data["ts"]) == (
        "4", "0", (T0 + 7) * NS)


def test_market_order_is_matched_then_filled_without_an_open():
    market, trading = make_trading()
    trading.place_order(order_body("buy", 12), T0)

    assert [e.data["type"] for e in private_events(market) if e.kind == "order"] == ["match", "match", "filled"]


def test_wallet_pushes_carry_the_balances_as_strings():
    market, trading = make_trading()
    trading.place_order(order_body("buy", 1, price="89000"), T0)  # holds 89 × 0.001 × 1000 / 5 = 17.8
    wallet = [e for e in private_events(market) if e.kind == "wallet"]

    assert [(e.symbol, e.subject) for e in wallet] == [
        (None, "walletBalance.change"), (None, "availableBalance.change")]
    assert wallet[0].data == {
        "currency": "USDT", "walletBalance": "100000", "availableBalance": "99982.2",
        "holdBalance": "0", "equity": "100000", "isolatedOrderMargin": "17.8",
        "isolatedPosMargin": "0", "isolatedUnPnl": "0", "isolatedFundingFeeMargin": "0",
        "crossOrderMargin": "0", "crossPosMargin": "0", "crossUnPnl": "0",
        "totalCrossMargin": "99982.2", "maxWithdrawAmount": "99982.2", "version": "1",
        "timestamp": str(T0),
    }
    assert wallet[1].data == {"availableBalance": "99982.2", "holdBalance": "17.8",
                              "currency": "USDT", "timestamp": str(T0)}


def test_post_only_rejection_pushes_only_a_cancel():
    market, trading = make_trading()
    trading.place_order(order_body("buy", 2, price="90001", postOnly=True), T0)

    assert [(e.data["type"], e.data["canceledSize"]) for e in private_events(market) if e.kind == "order"] == [
        ("canceled", "2")]


def test_trimming_a_reduce_only_order_pushes_an_update_with_the_old_size():
    market, trading = make_trading()
    trading.place_order(order_body("buy", 5), T0)
    trading.place_order(order_body("sell", 5, price="90010", reduceOnly=True, client_oid="r-1"), T0)
    market.drain_events()
    trading.place_order(order_body("sell", 2, client_oid="c-3"), T0 + 1)
    updates = [e.data for e in private_events(market) if e.kind == "order" and e.data["type"] == "update"]

    assert [(u["clientOid"], u["oldSize"], u["size"], u["canceledSize"], u["remainSize"], u["status"])
            for u in updates] == [("r-1", "5", "5", "2", "3", "open")]
