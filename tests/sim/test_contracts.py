"""The contract catalogue and its contract objects, as ccxt 4.5.90 parses them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import ccxt
import pytest

from kucoin_sim.contracts import (
    RiskTier, default_contracts, next_quarterly_expiries, quarterly_symbol, risk_tiers,
)
from kucoin_sim.market import Market

NOW = 1_795_000_123_456  # 2026-11-18 UTC


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp() * 1000)


def test_catalogue_lists_usdt_perpetuals_an_inverse_perpetual_and_two_quarterlies():
    specs = {s.symbol: s for s in default_contracts(NOW)}
    linear = [s for s in specs.values() if s.settle_currency == "USDT"]
    for symbol in ("XBTUSDTM", "ETHUSDTM", "SOLUSDTM", "XRPUSDTM", "DOGEUSDTM", "ADAUSDTM",
                   "BNBUSDTM", "LTCUSDTM", "DOTUSDTM", "AVAXUSDTM", "LINKUSDTM", "TRXUSDTM"):
        assert specs[symbol].is_perpetual and not specs[symbol].is_inverse
    assert len(linear) >= 22
    assert [(s.symbol, s.multiplier, s.max_leverage) for s in linear[:5]] == [
        ("XBTUSDTM", 0.001, 125), ("ETHUSDTM", 0.01, 100), ("SOLUSDTM", 0.1, 75),
        ("XRPUSDTM", 10.0, 75), ("DOGEUSDTM", 100.0, 75)]
    inverse = specs["XBTUSDM"]
    assert (inverse.multiplier, inverse.settle_currency, inverse.is_inverse, inverse.type) == (
        -1.0, "XBT", True, "FFWCSX")
    dated = [s for s in specs.values() if s.type == "FFICSX"]
    assert [(s.symbol, s.expire_ms, s.funding_rate_symbol) for s in dated] == [
        ("XBTMZ26", _ms(2026, 12, 25, 8), None), ("XBTMH27", _ms(2027, 3, 26, 8), None)]
    assert all(s.first_open_ms <= NOW - 500 * 7 * 86_400_000 for s in specs.values() if s.is_perpetual)
    fees = {(s.maker_fee_rate, s.taker_fee_rate, s.lot_size) for s in specs.values()}
    assert fees == {(0.0002, 0.0006, 1)}


@pytest.mark.parametrize("now, expected", [
    (_ms(2026, 11, 18), ["XBTMZ26", "XBTMH27"]),
    (_ms(2026, 12, 25, 8), ["XBTMH27", "XBTMM27"]),  # the December expiry itself is not "after"
    (_ms(2027, 3, 26, 7, 59), ["XBTMH27", "XBTMM27"]),
    (_ms(2027, 9, 30), ["XBTMZ27", "XBTMH28"]),
])
def test_quarterly_expiries_are_the_next_last_fridays_at_8_utc(now, expected):
    expiries = next_quarterly_expiries(now, 2)
    assert [quarterly_symbol(e) for e in expiries] == expected
    for expire_ms in expiries:
        when = datetime.fromtimestamp(expire_ms / 1000, tz=timezone.utc)
        assert (when.weekday(), when.hour, when.minute, when.month % 3) == (4, 8, 0, 0)
        assert (when + timedelta(days=7)).month != when.month  # the last Friday of its month


def test_risk_tiers_step_leverage_down_as_limits_grow():
    tiers = risk_tiers(125, 100_000)
    assert tiers[:3] == (
        RiskTier(1, 100_000.0, 0.0, 125, 0.008, 0.004),
        RiskTier(2, 200_000.0, 100_000.0, 100, 0.01, 0.005),
        RiskTier(3, 500_000.0, 200_000.0, 75, 0.0133, 0.00665),
    )
    assert all(a.max_leverage > b.max_leverage for a, b in zip(tiers, tiers[1:]))
    assert all(a.max_risk_limit == b.min_risk_limit for a, b in zip(tiers, tiers[1:]))


@pytest.fixture(scope="module")
def parsed():
    """ccxt's own fetch_contract_markets over our contracts/active payload."""
    market = Market(seed=1, now_ms=NOW)
    market.advance(NOW + 1000)
    payload = {"code": "200000", "data": market.contracts_active(NOW + 1000)}
    exchange = ccxt.kucoinfutures()
    exchange.futuresPublicGetContractsActive = lambda params={}: payload
    markets = exchange.fetch_contract_markets({})
    return market, exchange, payload, {m["symbol"]: m for m in markets}


def test_ccxt_parses_every_contract(parsed):
    market, _, payload, markets = parsed
    assert len(markets) == len(payload["data"]) == len(market.symbols())
    btc = markets["BTC/USDT:USDT"]
    assert (btc["id"], btc["type"], btc["swap"], btc["linear"], btc["active"]) == (
        "XBTUSDTM", "swap", True, True, True)
    assert (btc["contractSize"], btc["precision"], btc["maker"], btc["taker"]) == (
        0.001, {"amount": 1.0, "price": 0.1}, 0.0002, 0.0006)
    assert btc["limits"]["leverage"] == {"min": 1.0, "max": 125.0}
    assert btc["limits"]["amount"] == {"min": 1.0, "max": 1_000_000.0}
    assert btc["limits"]["price"] == {"min": 0.1, "max": 1_000_000.0}
    inverse = markets["BTC/USD:BTC"]
    assert (inverse["id"], inverse["inverse"], inverse["swap"], inverse["contractSize"]) == (
        "XBTUSDM", True, True, 1.0)
    dated = markets["BTC/USD:BTC-261225"]
    assert (dated["id"], dated["type"], dated["future"], dated["expiry"]) == (
        "XBTMZ26", "future", True, _ms(2026, 12, 25, 8))
    assert "BTC/USD:BTC-270326" in markets
    assert markets["DOGE/USDT:USDT"]["contractSize"] == 100.0
    assert markets["ETH/USDT:USDT"]["limits"]["leverage"]["max"] == 100.0


def test_contract_objects_carry_every_documented_field_with_its_type(parsed):
    _, _, payload, _ = parsed
    example = {  # notes §6.1, value types as KuCoin sends them
        "symbol": str, "rootSymbol": str, "type": str, "firstOpenDate": int, "baseCurrency": str,
        "quoteCurrency": str, "settleCurrency": str, "maxOrderQty": int, "maxPrice": float,
        "lotSize": int, "tickSize": float, "indexPriceTickSize": float, "multiplier": float,
        "initialMargin": float, "maintainMargin": float, "maxRiskLimit": int, "minRiskLimit": int,
        "riskStep": int, "makerFeeRate": float, "takerFeeRate": float, "takerFixFee": int,
        "makerFixFee": int, "isDeleverage": bool, "isQuanto": bool, "isInverse": bool,
        "markMethod": str, "indexSymbol": str, "status": str, "openInterest": str,
        "turnoverOf24h": float, "volumeOf24h": float, "markPrice": float, "indexPrice": float,
        "lastTradePrice": float, "maxLeverage": int, "sourceExchanges": list, "lowPrice": float,
        "highPrice": float, "priceChgPct": float, "priceChg": float, "mmrLevConstant": int,
        "supportCross": bool, "buyLimit": float, "sellLimit": float,
    }
    for contract in payload["data"]:
        assert {k: type(contract[k]) for k in example} == example, contract["symbol"]
        perpetual = contract["type"] == "FFWCSX"
        assert isinstance(contract["nextFundingRateTime"], int) == perpetual
        assert (contract["expireDate"] is None) == perpetual
        assert isinstance(contract["fundingFeeRate"], float) == perpetual
        assert contract["fundingRateGranularity"] == (28_800_000 if perpetual else None)
    xbt = payload["data"][0]
    assert 0 < xbt["nextFundingRateTime"] <= 28_800_000
    assert (xbt["fundingRateSymbol"], xbt["indexSymbol"], xbt["premiumsSymbol8H"]) == (
        ".XBTUSDTMFPI8H", ".KXBTUSDT", ".XBTUSDTMPI8H")


def test_ccxt_fetch_tickers_reads_consistent_24h_numbers(parsed):
    market, exchange, _, markets = parsed
    exchange.set_markets(list(markets.values()))
    ticker = exchange.fetch_tickers(["ETH/USDT:USDT"])["ETH/USDT:USDT"]
    rows = market.klines("ETHUSDTM", 60, None, None, NOW + 1000)[-24:]
    assert (ticker["high"], ticker["low"], ticker["open"]) == (
        max(r[2] for r in rows), min(r[3] for r in rows), rows[0][1])
    assert ticker["last"] == rows[-1][4] == market.last_price("ETHUSDTM")
    assert ticker["baseVolume"] == pytest.approx(sum(r[5] for r in rows) * 0.01)
    assert ticker["low"] <= ticker["last"] <= ticker["high"]
