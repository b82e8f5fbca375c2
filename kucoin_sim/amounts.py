"""Contract arithmetic for linear and inverse futures, and KuCoin's number formatting.

The multiplier is applied here and nowhere else (protocol notes §6.2):
- linear (XBTUSDTM): 1 lot = |multiplier| coins; value = lots × |multiplier| × price, in the quote
  (= settle) currency; PnL = qty × |multiplier| × (exit − entry).
- inverse (XBTUSDM, multiplier -1): 1 lot = |multiplier| USD; value = lots × |multiplier| / price, in
  the base coin (= settle); PnL = qty × |multiplier| × (1/entry − 1/exit).
"""
from __future__ import annotations

from decimal import Decimal

from .contracts import ContractSpec

AMOUNT_PLACES = 8  # settle-currency amounts are reported with at most 8 decimals
FEE_RATE_PLACES = 5  # KuCoin writes fee rates as "0.00060"


def contract_value(spec: ContractSpec, lots: int, price: float) -> float:
    """Return the unsigned value of `lots` contracts at `price`, in the settle currency."""
    size = abs(lots) * abs(spec.multiplier)
    return size / price if spec.is_inverse else size * price


def signed_cost(spec: ContractSpec, qty: int, price: float) -> float:
    """Return KuCoin's signed cost of a position of `qty` lots at `price` (posCost, markValue).

    Linear: qty × |m| × price (negative for shorts). Inverse: −qty × |m| / price, so an inverse
    long has a negative cost, as in KuCoin's ETHUSDM example (protocol notes §6.2).
    """
    size = qty * abs(spec.multiplier)
    return -size / price if spec.is_inverse else size * price


def pnl(spec: ContractSpec, qty: int, entry: float, exit_price: float) -> float:
    """Return the profit of `qty` signed lots opened at `entry` and valued at `exit_price`."""
    return signed_cost(spec, qty, exit_price) - signed_cost(spec, qty, entry)


def average_entry(spec: ContractSpec, held: int, entry: float, added: int, price: float) -> float:
    """Return the entry price after adding `added` lots at `price` to `held` lots at `entry`.

    Linear contracts average by lots (arithmetic mean); inverse ones by coin value, which makes the
    entry the harmonic mean: (held + added) / (held/entry + added/price).
    """
    held, added = abs(held), abs(added)
    if held == 0:
        return price
    if spec.is_inverse:
        return (held + added) / (held / entry + added / price)
    return (held * entry + added * price) / (held + added)


def num(value: float, places: int = AMOUNT_PLACES) -> float:
    """Round for the wire; never return -0.0."""
    return round(value, places) + 0.0


def num_str(value: float, places: int = AMOUNT_PLACES) -> str:
    """Format an amount as KuCoin's decimal strings do ("0.04045854", "5", "0")."""
    text = f"{num(value, places):.{places}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def fee_rate_str(rate: float) -> str:
    return f"{rate:.{FEE_RATE_PLACES}f}"


def leverage_str(leverage: float) -> str:
    """Leverage as KuCoin's order objects carry it: "3", "10.5"."""
    return str(int(leverage)) if float(leverage).is_integer() else num_str(leverage, 2)


def price_places(spec: ContractSpec, extra: int = 2) -> int:
    """Decimals used for derived prices (averages, liquidation): the tick's decimals + `extra`."""
    exponent = Decimal(spec.tick_size).normalize().as_tuple().exponent
    return max(0, -int(exponent)) + extra


def average_price(spec: ContractSpec, lots: int, value: float) -> float:
    """Return the average price of `lots` contracts that traded for `value` (settle currency)."""
    if lots == 0 or value == 0:
        return 0.0
    size = abs(lots) * abs(spec.multiplier)
    return size / value if spec.is_inverse else value / size
