"""Unmodified ccxt.kucoinfutures (only its URLs pointed at the simulator) against the simulator.

Each call is checked twice: by ccxt's own structure rules (the validators ccxt ships in
ccxt.test.exchange) and by what the values must be (prices, sizes, fees, statuses, positions).
"""
from __future__ import annotations

import time

import ccxt
import pytest
from ccxt.test.exchange.base.test_balance import test_balance as ccxt_balance
from ccxt.test.exchange.base.test_leverage_tier import test_leverage_tier as ccxt_leverage_tier
from ccxt.test.exchange.base.test_market import test_market as ccxt_market
from ccxt.test.exchange.base.test_order import test_order as ccxt_order
from ccxt.test.exchange.base.test_position import test_position as ccxt_position
from ccxt.test.exchange.base.test_trade import test_trade as ccxt_trade
from ccxt.test.exchange.sync.test_fetch_funding_rate_history import test_fetch_funding_rate_history as ccxt_fetch_funding_rate_history
from ccxt.test.exchange.sync.test_fetch_ohlcv import test_fetch_ohlcv as ccxt_fetch_ohlcv
from ccxt.test.exchange.sync.test_fetch_order_book import test_fetch_order_book as ccxt_fetch_order_book
from ccxt.test.exchange.sync.test_fetch_status import test_fetch_status as ccxt_fetch_status
from ccxt.test.exchange.sync.test_fetch_ticker import test_fetch_ticker as ccxt_fetch_ticker
from ccxt.test.exchange.sync.test_fetch_tickers import test_fetch_tickers as ccxt_fetch_tickers
from ccxt.test.exchange.sync.test_fetch_trades import test_fetch_trades as ccxt_fetch_trades

from kucoin_sim import Simulator
from tests.helpers import ccxt_config, wait_until

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
SKIP: dict = {}


@pytest.fixture(scope="module")
def msim():
    with Simulator(seed=11) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def ex(msim: Simulator) -> ccxt.kucoinfutures:
    exchange = ccxt.kucoinfutures(ccxt_config(msim))
    exchange.load_markets()
    return exchange


def test_load_markets_and_markets_structure(msim: Simulator, ex: ccxt.kucoinfutures) -> None:
    for market in ex.markets.values():
        ccxt_market(ex, SKIP, "loadMarkets", market)
    btc = ex.market(BTC)
    assert (btc["id"], btc["type"], btc["linear"], btc["contractSize"]) == ("XBTUSDTM", "swap", True, 0.001)
    assert btc["precision"]["amount"] == 1 and btc["limits"]["leverage"]["max"] == 125
    swaps = [m for m in ex.markets.values() if m["swap"] and m["settle"] == "USDT" and m["active"]]
    assert len(swaps) >= 20
    assert ex.market("BTC/USD:BTC")["inverse"] is True
    futures = [m for m in ex.markets.values() if m["future"]]
    assert futures and all(m["expiry"] > time.time() * 1000 for m in futures)
    paths = {path for (_, path) in msim.call(lambda: dict(msim.requests))}
    assert "/api/v1/contracts/active" in paths and "/api/ua/v1/account/mode" in paths


def test_fetch_status(ex: ccxt.kucoinfutures) -> None:
    ccxt_fetch_status(ex, SKIP)
    assert ex.fetch_status()["status"] == "ok"


def test_fetch_ticker(ex: ccxt.kucoinfutures) -> None:
    ccxt_fetch_ticker(ex, SKIP, BTC)
    ticker = ex.fetch_ticker(BTC)
    assert ticker["bid"] < ticker["ask"]
    assert abs(ticker["timestamp"] - time.time() * 1000) < 60_000  # ts in ns converted by ccxt
    assert ticker["bidVolume"] > 0 and ticker["last"] > 0


def test_fetch_tickers(ex: ccxt.kucoinfutures) -> None:
    ccxt_fetch_tickers(ex, SKIP, BTC)
    tickers = ex.fetch_tickers()
    assert len(tickers) >= 20 and tickers[BTC]["last"] > 0 and tickers[BTC]["quoteVolume"] > 0


@pytest.mark.parametrize("timeframe", ["1m", "1h", "1d"])
def test_fetch_ohlcv(ex: ccxt.kucoinfutures, timeframe: str) -> None:
    ccxt_fetch_ohlcv(ex, SKIP, BTC)
    rows = ex.fetch_ohlcv(BTC, timeframe, limit=200)
    step_ms = ex.parse_timeframe(timeframe) * 1000
    assert len(rows) == 200
    assert all(b[0] - a[0] == step_ms for a, b in zip(rows, rows[1:]))
    assert all(r[3] <= min(r[1], r[4]) <= max(r[1], r[4]) <= r[2] for r in rows)
    assert time.time() * 1000 - rows[-1][0] < step_ms + 60_000


def test_fetch_trades(ex: ccxt.kucoinfutures) -> None:
    trades = wait_until(lambda: ex.fetch_trades(ETH), what="a first public ETH trade")  # a new market has none
    ccxt_fetch_trades(ex, SKIP, ETH)
    assert trades and all(t["amount"] >= 1 and t["side"] in ("buy", "sell") for t in trades)
    assert trades[0]["cost"] == pytest.approx(trades[0]["amount"] * 0.01 * trades[0]["price"])


@pytest.mark.parametrize("limit", [None, 20, 100])
def test_fetch_order_book(ex: ccxt.kucoinfutures, limit: int | None) -> None:
    ccxt_fetch_order_book(ex, SKIP, BTC)
    book = ex.fetch_order_book(BTC, limit)
    assert book["bids"][0][0] < book["asks"][0][0]
    assert book["nonce"] > 0
    if limit:
        assert len(book["bids"]) == limit and len(book["asks"]) == limit


def _check_order(ex: ccxt.kucoinfutures, order: dict, symbol: str) -> None:
    ccxt_order(ex, SKIP, "fetchOrder", order, symbol, ex.milliseconds())


def test_market_order_lifecycle(ex: ccxt.kucoinfutures) -> None:
    placed = ex.create_order(ETH, "market", "buy", 3, None, {"leverage": 5})
    assert placed["id"] and placed["clientOrderId"]
    order = ex.fetch_order(placed["id"], ETH)
    _check_order(ex, order, ETH)
    assert (order["status"], order["filled"], order["remaining"], order["type"]) == ("closed", 3, 0, "market")
    assert order["cost"] == pytest.approx(order["filled"] * 0.01 * order["average"], rel=1e-9)
    by_cid = ex.fetch_order(None, ETH, {"clientOid": placed["clientOrderId"]})
    assert by_cid["id"] == placed["id"]
    trades = ex.fetch_my_trades(ETH)
    ours = [t for t in trades if t["order"] == placed["id"]]
    for trade in ours:
        ccxt_trade(ex, SKIP, "fetchMyTrades", trade, ETH, ex.milliseconds(), False)
        assert trade["takerOrMaker"] == "taker"
        assert trade["fee"]["cost"] == pytest.approx(trade["cost"] * 0.0006, rel=1e-6)
        assert trade["fee"]["currency"] == "USDT"
    assert sum(t["amount"] for t in ours) == 3


def test_limit_order_open_cancel_and_closed_list(ex: ccxt.kucoinfutures) -> None:
    bid = ex.fetch_order_book(BTC, 20)["bids"][0][0]
    price = float(ex.price_to_precision(BTC, bid * 0.9))
    placed = ex.create_order(BTC, "limit", "buy", 2, price, {"leverage": 10})
    order = ex.fetch_order(placed["id"], BTC)
    _check_order(ex, order, BTC)
    assert (order["status"], order["price"], order["amount"], order["filled"]) == ("open", price, 2, 0)
    assert placed["id"] in [o["id"] for o in ex.fetch_open_orders(BTC)]
    ex.cancel_order(placed["id"], BTC)
    assert ex.fetch_order(placed["id"], BTC)["status"] == "canceled"
    assert placed["id"] not in [o["id"] for o in ex.fetch_open_orders(BTC)]
    closed = ex.fetch_closed_orders(BTC)
    assert placed["id"] in [o["id"] for o in closed]
    for o in closed:
        _check_order(ex, o, BTC)


def test_cancel_by_client_order_id(ex: ccxt.kucoinfutures) -> None:
    bid = ex.fetch_order_book(BTC, 20)["bids"][0][0]
    price = float(ex.price_to_precision(BTC, bid * 0.8))
    placed = ex.create_order(BTC, "limit", "buy", 1, price, {"clientOrderId": "cid-cancel-1"})
    assert placed["clientOrderId"] == "cid-cancel-1"
    ex.cancel_order(None, BTC, {"clientOrderId": "cid-cancel-1"})
    assert ex.fetch_order(placed["id"], BTC)["status"] == "canceled"


def test_positions_balance_reduce_only(ex: ccxt.kucoinfutures) -> None:
    symbol = "SOL/USDT:USDT"
    ex.create_order(symbol, "market", "buy", 10, None, {"leverage": 3})
    positions = ex.fetch_positions([symbol])
    assert len(positions) == 1
    pos = positions[0]
    ccxt_position(ex, SKIP, "fetchPositions", pos, symbol, ex.milliseconds())
    assert (pos["side"], pos["contracts"], pos["contractSize"], pos["marginMode"]) == ("long", 10, 0.1, "isolated")
    assert pos["entryPrice"] > 0 and pos["liquidationPrice"] < pos["entryPrice"]
    assert pos["notional"] == pytest.approx(10 * 0.1 * pos["entryPrice"], rel=1e-6)
    balance = ex.fetch_balance()
    ccxt_balance(ex, SKIP, "fetchBalance", balance)
    usdt = balance["USDT"]
    assert usdt["total"] == pytest.approx(usdt["free"] + usdt["used"])
    assert usdt["used"] > 0
    ex.create_order(symbol, "market", "sell", 10, None, {"reduceOnly": True})
    assert [p for p in ex.fetch_positions([symbol]) if p["contracts"]] == []


def test_set_leverage_and_tiers(ex: ccxt.kucoinfutures) -> None:
    ex.set_leverage(7, BTC)
    assert ex.futuresPrivateGetGetCrossUserLeverage({"symbol": "XBTUSDTM"})["data"]["leverage"] == "7"
    tiers = ex.fetch_leverage_tiers([BTC])[BTC]
    assert len(tiers) >= 3
    for tier in tiers:
        ccxt_leverage_tier(ex, SKIP, "fetchLeverageTiers", tier)
    assert tiers[0]["maxLeverage"] == 125 and tiers[0]["maxLeverage"] > tiers[-1]["maxLeverage"]


def test_funding_rate_and_history(ex: ccxt.kucoinfutures) -> None:
    rate = ex.fetch_funding_rate(BTC)
    assert rate["symbol"] == BTC and -0.003 <= rate["fundingRate"] <= 0.003
    assert rate["fundingTimestamp"] > time.time() * 1000 and rate["interval"] == "8h"
    ccxt_fetch_funding_rate_history(ex, SKIP, BTC)
    history = ex.fetch_funding_rate_history(BTC)
    assert len(history) > 3
    assert all(b["timestamp"] - a["timestamp"] == 8 * 3600 * 1000 for a, b in zip(history, history[1:]))


def test_exchange_errors_map_to_ccxt_exceptions(msim: Simulator, ex: ccxt.kucoinfutures) -> None:
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order("999999999", BTC)
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(BTC, "market", "buy", 900_000, None, {"leverage": 1})
    bad = ccxt.kucoinfutures(ccxt_config(msim, secret="wrong-secret"))
    bad.markets = ex.markets
    bad.markets_by_id = ex.markets_by_id
    with pytest.raises(ccxt.AuthenticationError):
        bad.fetch_balance()
    msim.fail_next("GET", "/api/v1/ticker")
    with pytest.raises(ccxt.RateLimitExceeded):
        ex.fetch_ticker(BTC)
