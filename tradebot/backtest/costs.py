"""What a trade costs in the backtest: slippage, fees and funding, as plain arithmetic.

    slippage   every order is a market order (the bot sends nothing else): it fills at the
               reference price (a candle's open, or the stop / take-profit level it touched)
               moved against the order by ``slippage_bps`` basis points (default 3: about half
               a spread plus a little impact on a liquid perpetual); a liquidation fills at its
               bankruptcy price with no slippage. ``--slippage-bps`` sets it.
    fees       the contract's taker rate on the filled value (KuCoin's takerFeeRate; the bot's
               orders always take), none on a liquidation (as the simulator's).
    funding    at each settlement of the market's funding-rate history while a position is open,
               value x rate at the price then: a long pays a positive rate, a short receives it.
Money is USDT; costs are positive when paid.
"""
from __future__ import annotations

from dataclasses import dataclass

from kucoin_futures.errors import InvalidArgument

__all__ = ["DEFAULT_SLIPPAGE_BPS", "CostModel"]

DEFAULT_SLIPPAGE_BPS = 3.0
BPS = 1e-4


@dataclass(frozen=True, slots=True)
class CostModel:
    """Slippage of market orders; fees and funding per contract (module doc)."""

    slippage_bps: float = DEFAULT_SLIPPAGE_BPS

    def __post_init__(self) -> None:
        if not 0 <= self.slippage_bps < 1000:
            raise InvalidArgument(f"slippage_bps must be in [0, 1000), not {self.slippage_bps}")

    def fill_price(self, reference: float, *, buy: bool) -> float:
        """Return where a market order fills: `reference` moved against it by the slippage."""
        shift = self.slippage_bps * BPS
        return reference * (1 + shift) if buy else reference * (1 - shift)

    @staticmethod
    def fee(contracts: int, multiplier: float, price: float, rate: float) -> float:
        """Return the fee of a fill: its value (contracts x multiplier x price) x rate."""
        return contracts * multiplier * price * rate

    @staticmethod
    def funding(side: str, contracts: int, multiplier: float, price: float, rate: float) -> float:
        """Return the funding a position pays at one settlement (negative: received)."""
        value = contracts * multiplier * price
        return value * rate if side == "long" else -value * rate
