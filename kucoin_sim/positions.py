"""One-way positions: fills in, entry price / margin / realised PnL out, and KuCoin's position object.

A position is the signed lot count `qty` (short < 0), its average entry price and, for isolated
margin, the margin locked in it. Realised PnL, fees and funding accumulate from the moment the
position opens from flat and are kept after it closes (so the closing push and a later
`GET /api/v1/position` still show them) until it opens again.

Liquidation and bankruptcy prices (isolated; q = |qty| × |multiplier|, E = entry, M = margin,
r = maintenance margin rate of the risk tier the position value falls in):

    bankrupt: the price where M + PnL = 0        liquidation: where M + PnL = r × value(E)
    linear long    Pb = E − M/q                  Pl = Pb + r × E
    linear short   Pb = E + M/q                  Pl = Pb − r × E
    inverse long   1/Pb = 1/E + M/q              1/Pl = 1/Pb − r/E
    inverse short  1/Pb = 1/E − M/q              1/Pl = 1/Pb + r/E

With M = value/leverage a linear long gives Pb = E(1 − 1/L) and Pl = E(1 − 1/L + r). Prices that
would be infinite or negative are clamped to [0, maxPrice]. Cross positions use the same formulas
with M = the cross margin pool (a simplification: KuCoin computes one account-wide price).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .amounts import average_entry, contract_value, num, pnl, signed_cost
from .contracts import ContractSpec, RiskTier
from .events import Side

ISOLATED = "ISOLATED"
CROSS = "CROSS"
PCNT_PLACES = 4  # unrealisedPnlPcnt / unrealisedRoePcnt: 0.0218
UNLIMITED_RISK = 1e12  # riskLimit of a contract listed without tiers (finite: it goes into JSON)


@dataclass(slots=True)
class Position:
    """The account's position in one symbol (mutable state owned by Trading)."""

    symbol: str
    position_id: str
    qty: int = 0
    entry_price: float = 0.0
    margin: float = 0.0  # isolated margin locked in the position (posInit); 0 for cross
    realised_gross: float = 0.0
    fees: float = 0.0
    funding: float = 0.0  # funding received (+) or paid (−) since opening
    opened_ms: int = 0

    @property
    def is_open(self) -> bool:
        return self.qty != 0

    @property
    def realised_pnl(self) -> float:
        return self.realised_gross - self.fees + self.funding


@dataclass(frozen=True, slots=True)
class FillEffect:
    """What one fill did to a position: lots closed, lots opened, gross PnL realised."""

    close_qty: int
    open_qty: int
    realised_gross: float


def closable(position_qty: int, side: Side) -> int:
    """Return how many lots an order on `side` would close rather than open."""
    if side == "buy":
        return max(0, -position_qty)
    return max(0, position_qty)


def apply_fill(pos: Position, spec: ContractSpec, *, side: Side, qty: int, price: float,
               leverage: float, fee: float, isolated: bool, now_ms: int) -> FillEffect:
    """Book a fill of `qty` lots at `price` into `pos` and return its effect.

    Closing lots realise PnL against the entry price and release their share of the isolated
    margin; lots beyond the position flip it and open at `price` with value/leverage margin.
    """
    if pos.qty == 0:
        pos.realised_gross = pos.fees = pos.funding = 0.0
        pos.opened_ms = now_ms
        pos.margin = 0.0
    close_qty = min(qty, closable(pos.qty, side))
    open_qty = qty - close_qty
    gross = 0.0
    if close_qty:
        held = abs(pos.qty)
        closed_signed = close_qty if pos.qty > 0 else -close_qty
        gross = pnl(spec, closed_signed, pos.entry_price, price)
        pos.margin -= pos.margin * close_qty / held
        pos.qty -= closed_signed
        pos.realised_gross += gross
    if open_qty:
        if pos.qty == 0:  # opening from flat, or flipping through zero within this fill
            pos.opened_ms = now_ms
        pos.entry_price = average_entry(spec, pos.qty, pos.entry_price, open_qty, price)
        pos.qty += open_qty if side == "buy" else -open_qty
        if isolated:
            pos.margin += contract_value(spec, open_qty, price) / leverage
    if pos.qty == 0:
        pos.entry_price = 0.0
        pos.margin = 0.0
    pos.fees += fee
    return FillEffect(close_qty, open_qty, gross)


def risk_tier(spec: ContractSpec, value: float) -> RiskTier:
    """Return the risk-limit tier a position of `value` (settle currency) falls in."""
    if not spec.risk_tiers:
        return RiskTier(1, UNLIMITED_RISK, 0.0, spec.max_leverage, spec.initial_margin,
                        spec.maintain_margin)
    for tier in spec.risk_tiers:
        if value <= tier.max_risk_limit:
            return tier
    return spec.risk_tiers[-1]


def liquidation_prices(spec: ContractSpec, qty: int, entry: float, margin: float,
                       mmr: float) -> tuple[float, float]:
    """Return (liquidationPrice, bankruptPrice) by the formulas in the module docstring."""
    if qty == 0 or entry <= 0:
        return 0.0, 0.0
    size = abs(qty) * abs(spec.multiplier)
    long = qty > 0
    if spec.is_inverse:
        inv_b = 1 / entry + (margin / size if long else -margin / size)
        inv_l = inv_b - mmr / entry if long else inv_b + mmr / entry
        bankrupt = 1 / inv_b if inv_b > 0 else spec.max_price
        liquidation = 1 / inv_l if inv_l > 0 else spec.max_price
    else:
        bankrupt = entry - margin / size if long else entry + margin / size
        liquidation = bankrupt + mmr * entry if long else bankrupt - mmr * entry
    return _clamp(liquidation, spec), _clamp(bankrupt, spec)


def _clamp(price: float, spec: ContractSpec) -> float:
    return min(max(price, 0.0), spec.max_price)


def is_liquidatable(qty: int, mark: float, liquidation: float) -> bool:
    return (qty > 0 and mark <= liquidation) or (qty < 0 and mark >= liquidation)


def position_margin(pos: Position, spec: ContractSpec, *, mark: float, cross: bool,
                    cross_leverage: int) -> float:
    """posMargin: the locked isolated margin, or mark value / cross leverage for cross."""
    if cross:
        return contract_value(spec, pos.qty, mark) / cross_leverage if pos.qty else 0.0
    return pos.margin


def position_payload(pos: Position, spec: ContractSpec, *, mark: float, now_ms: int, cross: bool,
                     cross_leverage: int, cross_pool: float, price_places: int) -> dict[str, Any]:
    """Return KuCoin's position object (protocol notes §7.2 fetch_positions) for `pos`.

    Cross positions omit the isolated-only fields, as KuCoin's own cross example does.
    `cross_pool` is the margin a cross position may lose before bankruptcy (see module docstring).
    """
    cost = signed_cost(spec, pos.qty, pos.entry_price) if pos.qty else 0.0
    mark_value = signed_cost(spec, pos.qty, mark) if pos.qty else 0.0
    upnl = mark_value - cost
    tier = risk_tier(spec, abs(cost))
    if cross:
        pos_init, pos_margin = abs(cost) / cross_leverage, abs(mark_value) / cross_leverage
    else:
        pos_init = pos_margin = pos.margin
    liquidation, bankrupt = liquidation_prices(spec, pos.qty, pos.entry_price,
                                               cross_pool if cross else pos.margin, tier.maintain_margin)
    data = _common_fields(pos, spec, cost=cost, mark=mark, mark_value=mark_value, pos_init=pos_init,
                          pos_margin=pos_margin, now_ms=now_ms)
    data.update({
        "crossMode": cross, "avgEntryPrice": num(pos.entry_price, price_places),
        "liquidationPrice": num(liquidation, price_places), "bankruptPrice": num(bankrupt, price_places),
        "settleCurrency": spec.settle_currency, "isInverse": spec.is_inverse,
        "marginMode": CROSS if cross else ISOLATED, "positionSide": "BOTH",
    })
    if cross:
        data["leverage"] = cross_leverage
    else:
        data.update(_isolated_fields(pos, tier, value=abs(cost), mark_value=mark_value,
                                     maint_margin=pos_margin + upnl))
    return data


def _common_fields(pos: Position, spec: ContractSpec, *, cost: float, mark: float, mark_value: float,
                   pos_init: float, pos_margin: float, now_ms: int) -> dict[str, Any]:
    upnl = mark_value - cost
    return {
        "id": pos.position_id, "symbol": spec.symbol, "crossMode": None, "delevPercentage": 0.0,
        "openingTimestamp": pos.opened_ms, "currentTimestamp": now_ms, "currentQty": pos.qty,
        "currentCost": num(cost), "currentComm": num(pos.fees), "unrealisedCost": num(cost),
        "realisedGrossCost": num(-pos.realised_gross), "realisedCost": num(-pos.realised_pnl),
        "isOpen": pos.is_open, "markPrice": mark, "markValue": num(mark_value),
        "posCost": num(cost), "posInit": num(pos_init), "posMargin": num(pos_margin),
        "realisedGrossPnl": num(pos.realised_gross), "realisedPnl": num(pos.realised_pnl),
        "unrealisedPnl": num(upnl),
        "unrealisedPnlPcnt": num(upnl / abs(cost), PCNT_PLACES) if cost else 0.0,
        "unrealisedRoePcnt": num(upnl / pos_init, PCNT_PLACES) if pos_init else 0.0,
    }


def _isolated_fields(pos: Position, tier: RiskTier, *, value: float, mark_value: float,
                     maint_margin: float) -> dict[str, Any]:
    # realLeverage: position value over the margin it really has (posMargin + unrealised PnL)
    real_leverage = num(abs(mark_value) / maint_margin, 2) if pos.qty and maint_margin > 0 else 0.0
    return {
        "autoDeposit": False, "maintMarginReq": tier.maintain_margin,
        "riskLimit": tier.max_risk_limit, "realLeverage": real_leverage, "posCross": 0.0,
        "posCrossMargin": 0.0, "posComm": 0.0, "posCommCommon": 0.0, "posLoss": 0.0,
        "posFunding": num(pos.funding), "posMaint": num(value * tier.maintain_margin),
        "maintMargin": num(maint_margin), "maintainMargin": tier.maintain_margin,
        "riskLimitLevel": tier.level, "leverage": real_leverage,
    }
