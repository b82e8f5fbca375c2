"""The simulator's contract catalogue: static specs of each listed futures contract.

Values follow KuCoin's `GET /api/v1/contracts/active` objects (protocol notes §6.1). Dynamic
fields (prices, funding, open interest, 24 h stats) live in the market model, not here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RiskTier:
    """One risk-limit level (GET /api/v1/contracts/risk-limit/{symbol})."""

    level: int
    max_risk_limit: float  # position value cap of this tier, in settle currency
    min_risk_limit: float
    max_leverage: int
    initial_margin: float
    maintain_margin: float


@dataclass(frozen=True, slots=True)
class ContractSpec:
    symbol: str  # KuCoin id, e.g. "XBTUSDTM"
    root_symbol: str  # "USDT" for USDT-margined, "XBT" for coin-margined
    type: str  # "FFWCSX" perpetual, "FFICSX" dated future
    base_currency: str  # KuCoin code ("XBT", not "BTC")
    quote_currency: str
    settle_currency: str
    is_inverse: bool
    multiplier: float  # coins per lot (linear); -1 (USD per lot) for inverse
    lot_size: int
    tick_size: str  # decimal string, e.g. "0.1"
    max_order_qty: int
    max_price: float
    max_leverage: int
    initial_margin: float
    maintain_margin: float
    maker_fee_rate: float
    taker_fee_rate: float
    first_open_ms: int
    expire_ms: int | None  # dated futures only
    base_price: float  # seed price of the simulated price process
    daily_vol: float  # daily volatility of the price process (fraction, e.g. 0.03)
    funding_granularity_ms: int  # 28800000 (8 h) for perpetuals
    risk_tiers: tuple[RiskTier, ...]
    index_symbol: str  # ".KXBTUSDT"
    funding_rate_symbol: str | None  # ".XBTUSDTMFPI8H" for perpetuals, None for dated futures

    @property
    def is_perpetual(self) -> bool:
        return self.type == "FFWCSX"
