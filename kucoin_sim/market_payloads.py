"""KuCoin wire shapes of the market's public REST payloads (the `data` of each envelope).

Pure builders: the Market gathers the values, these functions lay them out with KuCoin's names
and JSON types (protocol notes §6.1 and §7.1). Numbers stay numbers where KuCoin sends numbers;
`openInterest`, ticker prices and trade prices are strings, as KuCoin sends them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .contracts import ContractSpec, RiskTier
from .events import Trade

SOURCE_EXCHANGES = ("binance", "okex", "bybit", "kucoin", "gateio")


@dataclass(frozen=True, slots=True)
class ContractState:
    """The dynamic fields of a contract object (24 h stats from the 1 h candles, funding, prices)."""

    last_price: float
    high_price: float
    low_price: float
    price_chg: float
    price_chg_pct: float
    volume_24h: float  # base-currency units for linear contracts, USD for inverse (lots x |multiplier|)
    turnover_24h: float  # settle currency
    open_interest: int  # lots
    mark_price: float
    index_price: float
    funding_rate: float | None
    predicted_funding_rate: float | None
    next_funding_countdown_ms: int | None
    buy_limit: float
    sell_limit: float


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def contract_payload(spec: ContractSpec, state: ContractState) -> dict[str, Any]:
    """Return one object of GET /api/v1/contracts/active (every field of notes §6.1)."""
    base, sym = spec.base_currency, spec.symbol
    perpetual = spec.is_perpetual
    tier = spec.risk_tiers[0] if spec.risk_tiers else None
    tick = float(spec.tick_size)
    return {
        "symbol": sym, "rootSymbol": spec.root_symbol, "type": spec.type,
        "firstOpenDate": spec.first_open_ms, "expireDate": spec.expire_ms,
        "settleDate": spec.expire_ms, "baseCurrency": base,
        "quoteCurrency": spec.quote_currency, "settleCurrency": spec.settle_currency,
        "maxOrderQty": spec.max_order_qty, "maxPrice": float(spec.max_price),
        "lotSize": spec.lot_size, "tickSize": tick, "indexPriceTickSize": round(tick / 10, 12),
        "multiplier": spec.multiplier, "initialMargin": spec.initial_margin,
        "maintainMargin": spec.maintain_margin,
        "maxRiskLimit": _number(tier.max_risk_limit) if tier else 0,
        "minRiskLimit": _number(tier.max_risk_limit) if tier else 0,
        "riskStep": _number(tier.max_risk_limit / 2) if tier else 0,
        "makerFeeRate": spec.maker_fee_rate, "takerFeeRate": spec.taker_fee_rate,
        "takerFixFee": 0, "makerFixFee": 0, "settlementFee": None, "isDeleverage": True,
        "isQuanto": not spec.is_inverse, "isInverse": spec.is_inverse,
        "markMethod": "FairPrice", "fairMethod": "FundingRate" if perpetual else "BasisRate",
        "fundingBaseSymbol": f".{base}INT8H" if perpetual else None,
        "fundingQuoteSymbol": f".{spec.quote_currency}INT8H" if perpetual else None,
        "fundingRateSymbol": spec.funding_rate_symbol, "indexSymbol": spec.index_symbol,
        "settlementSymbol": "" if perpetual else f".{sym}", "status": "Open",
        "fundingFeeRate": state.funding_rate, "predictedFundingFeeRate": state.predicted_funding_rate,
        "fundingRateGranularity": spec.funding_granularity_ms if perpetual else None,
        "openInterest": str(state.open_interest), "turnoverOf24h": state.turnover_24h,
        "volumeOf24h": state.volume_24h, "markPrice": state.mark_price,
        "indexPrice": state.index_price, "lastTradePrice": state.last_price,
        "nextFundingRateTime": state.next_funding_countdown_ms, "maxLeverage": spec.max_leverage,
        "sourceExchanges": list(SOURCE_EXCHANGES),
        "premiumsSymbol1M": f".{sym}PI" if perpetual else None,
        "premiumsSymbol8H": f".{sym}PI8H" if perpetual else None,
        "fundingBaseSymbol1M": f".{base}INT" if perpetual else None,
        "fundingQuoteSymbol1M": f".{spec.quote_currency}INT" if perpetual else None,
        "lowPrice": state.low_price, "highPrice": state.high_price,
        "priceChgPct": state.price_chg_pct, "priceChg": state.price_chg,
        "k": 490, "m": 300, "f": 1.3, "mmrLimit": 0.3, "mmrLevConstant": spec.max_leverage,
        "supportCross": True, "buyLimit": state.buy_limit, "sellLimit": state.sell_limit,
    }


def ticker_payload(last: Trade, best: tuple[str, int, str, int], ts_ns: int) -> dict[str, Any]:
    """Return GET /api/v1/ticker data: last trade plus best quotes, ts in nanoseconds."""
    bid_price, bid_size, ask_price, ask_size = best
    return {
        "sequence": last.sequence, "symbol": last.symbol, "side": last.side, "size": last.size,
        "tradeId": last.trade_id, "price": last.price, "bestBidPrice": bid_price,
        "bestBidSize": bid_size, "bestAskPrice": ask_price, "bestAskSize": ask_size, "ts": ts_ns,
    }


def trade_payload(trade: Trade, contract_id: int) -> dict[str, Any]:
    """Return one entry of GET /api/v1/trade/history (side is the taker's)."""
    return {
        "sequence": trade.sequence, "contractId": contract_id, "tradeId": trade.trade_id,
        "makerOrderId": trade.maker_order_id, "takerOrderId": trade.taker_order_id,
        "ts": trade.ts_ns, "size": trade.size, "price": trade.price, "side": trade.side,
    }


def risk_limit_payload(symbol: str, tiers: tuple[RiskTier, ...]) -> list[dict[str, Any]]:
    """Return GET /api/v1/contracts/risk-limit/{symbol} data."""
    return [
        {"symbol": symbol, "level": t.level, "maxRiskLimit": _number(t.max_risk_limit),
         "minRiskLimit": _number(t.min_risk_limit), "maxLeverage": t.max_leverage,
         "initialMargin": t.initial_margin, "maintainMargin": t.maintain_margin}
        for t in tiers
    ]


def funding_current_payload(spec: ContractSpec, *, last_ms: int, next_ms: int, value: float,
                            predicted: float) -> dict[str, Any]:
    """Return GET /api/v1/funding-rate/{symbol}/current data (symbol = funding-rate index)."""
    return {
        "symbol": spec.funding_rate_symbol, "granularity": spec.funding_granularity_ms,
        "timePoint": last_ms, "value": value, "predictedValue": predicted,
        "fundingRateCap": 0.003, "fundingRateFloor": -0.003, "period": 0, "fundingTime": next_ms,
    }


def index_payload(spec: ContractSpec, *, index_price: float, time_ms: int,
                  decimals: int) -> dict[str, Any]:
    """Return GET /api/v1/index/query data (HasMore shape) with the current index point."""
    parts = [("binance", 0.4, 1.0001), ("okex", 0.35, 0.9999), ("bybit", 0.25, 1.0)]
    return {
        "dataList": [{
            "symbol": spec.index_symbol, "granularity": 1000, "timePoint": time_ms,
            "value": index_price,
            "decomposionList": [
                {"exchange": name, "price": round(index_price * skew, decimals), "weight": weight}
                for name, weight, skew in parts
            ],
        }],
        "hasMore": False,
    }
