"""Account arithmetic per settle currency: margins, available balance, overview and wallet pushes.

The wallet balance of a currency is cash: deposits + realised PnL − fees ± funding. Position and
order margin are parts of it set aside, so (matching KuCoin's walletBalance.change example, where
availableBalance = walletBalance − isolatedPosMargin − isolatedOrderMargin):

    availableBalance = max(0, wallet − positionMargin − orderMargin + crossUnPnl)
    accountEquity    = marginBalance + unrealisedPNL,   marginBalance = wallet

Isolated unrealised PnL is not spendable (it is bounded by the position's margin through
liquidation); cross unrealised PnL, gains and losses, counts toward the available balance.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .amounts import num, num_str
from .contracts import ContractSpec
from .orders import Order
from .positions import closable


@dataclass(frozen=True, slots=True)
class MarginSummary:
    """Everything the account overview and the wallet pushes say about one currency."""

    currency: str
    wallet: float
    iso_pos_margin: float = 0.0
    cross_pos_margin: float = 0.0
    iso_order_margin: float = 0.0
    cross_order_margin: float = 0.0
    iso_upnl: float = 0.0
    cross_upnl: float = 0.0
    cross_maint: float = 0.0

    @property
    def position_margin(self) -> float:
        return self.iso_pos_margin + self.cross_pos_margin

    @property
    def order_margin(self) -> float:
        return self.iso_order_margin + self.cross_order_margin

    @property
    def upnl(self) -> float:
        return self.iso_upnl + self.cross_upnl

    @property
    def available(self) -> float:
        return max(0.0, self.wallet - self.position_margin - self.order_margin + self.cross_upnl)

    @property
    def cross_equity(self) -> float:
        """What cross positions can lose before the account is liquidated."""
        return self.wallet - self.iso_pos_margin - self.order_margin + self.cross_upnl


def order_margins(spec: ContractSpec, position_qty: int, orders: Iterable[Order],
                  leverage_of: dict[str, float]) -> dict[str, float]:
    """Return the margin each active order of one symbol holds.

    Only the part of an order that would open a position holds margin: a buy order first
    absorbs the short position (earlier orders of the same side first), the rest holds
    value/leverage at its limit price. Reduce-only and close orders hold nothing.
    `leverage_of` maps order id to the leverage that applies (cross orders: the cross leverage).
    """
    left = {"buy": closable(position_qty, "buy"), "sell": closable(position_qty, "sell")}
    margins: dict[str, float] = {}
    for order in orders:
        if order.reduce_only or order.close_order or order.price_ticks is None:
            margins[order.order_id] = 0.0
            continue
        absorbed = min(order.remaining, left[order.side])
        left[order.side] -= absorbed
        opening = order.remaining - absorbed
        # order.value is the whole order's value at its limit price; value is linear in lots
        # for linear and inverse contracts alike
        margins[order.order_id] = order.value * opening / order.size / leverage_of[order.order_id]
    return margins


def overview_payload(s: MarginSummary) -> dict[str, Any]:
    """Return KuCoin's account overview (GET /api/v1/account-overview, protocol notes §7.2)."""
    cross_equity = s.cross_equity
    risk = s.cross_maint / cross_equity if s.cross_maint and cross_equity > 0 else 0.0
    available = s.available
    return {
        "accountEquity": num(s.wallet + s.upnl), "unrealisedPNL": num(s.upnl),
        "marginBalance": num(s.wallet), "positionMargin": num(s.position_margin),
        "orderMargin": num(s.order_margin), "frozenFunds": 0.0, "availableBalance": num(available),
        "currency": s.currency, "riskRatio": num(risk), "maxWithdrawAmount": num(available),
    }


def wallet_push(s: MarginSummary, *, version: int, now_ms: int) -> dict[str, Any]:
    """Return the data of a walletBalance.change push (docs-new; all strings, protocol notes §12)."""
    available = s.available
    return {
        "currency": s.currency, "walletBalance": num_str(s.wallet),
        "availableBalance": num_str(available), "holdBalance": "0",
        "equity": num_str(s.wallet + s.upnl), "isolatedOrderMargin": num_str(s.iso_order_margin),
        "isolatedPosMargin": num_str(s.iso_pos_margin), "isolatedUnPnl": num_str(s.iso_upnl),
        "isolatedFundingFeeMargin": "0", "crossOrderMargin": num_str(s.cross_order_margin),
        "crossPosMargin": num_str(s.cross_pos_margin), "crossUnPnl": num_str(s.cross_upnl),
        "totalCrossMargin": num_str(available + s.cross_pos_margin + s.cross_order_margin),
        "maxWithdrawAmount": num_str(available), "version": str(version), "timestamp": str(now_ms),
    }


def available_push(s: MarginSummary, *, now_ms: int) -> dict[str, Any]:
    """Return the data of the classic availableBalance.change push.

    Strings, as in the real capture ccxt quotes; holdBalance carries the order margin, the
    classic docs' "frozen balance".
    """
    return {
        "availableBalance": num_str(s.available), "holdBalance": num_str(s.order_margin),
        "currency": s.currency, "timestamp": str(now_ms),
    }

