"""Per-tick risk work on the account: liquidation and funding settlement (TickHooks.after_tick).

Liquidation (kept simple but real):
- isolated: when the mark price reaches the position's liquidation price (formulas in
  positions.py), the symbol's open orders are canceled and the position is closed at its
  bankruptcy price: the whole position margin is lost. A fill with tradeType "liquid" records it.
- cross: when the cross equity of a settle currency (wallet − isolated margins − order margins +
  cross unrealised PnL) falls to the cross maintenance margin, every cross position in that
  currency is closed at the mark price; the wallet is floored at 0 (the insurance fund pays the
  rest).
Funding: at each funding time of a perpetual (`fundingTime` of the market's current funding
rate), an open position pays (long, positive rate) or receives value × rate at the mark price,
recorded for `GET /api/v1/funding-history` and pushed as position.settlement.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from .amounts import contract_value, num, pnl
from .engine import Engine
from .events import PrivateEvent
from .matching import opposite
from .orders import Fill
from .positions import CROSS, Position, is_liquidatable, liquidation_prices, risk_tier

log = logging.getLogger(__name__)


class RiskKeeper:
    """Runs liquidation and funding checks for an Engine, one symbol per call."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._next_funding: dict[str, tuple[int, float]] = {}  # symbol -> (fundingTime ms, rate)

    def after_tick(self, symbol: str, now_ms: int) -> None:
        engine = self._engine
        pos = engine.positions.get(symbol)
        if pos is not None and pos.qty:
            if engine.margin_mode(symbol) == CROSS:
                self._check_cross(engine.spec(symbol).settle_currency, now_ms)
            else:
                self._check_isolated(pos, now_ms)
        self._settle_funding(symbol, now_ms)

    # -- liquidation ---------------------------------------------------------------------------
    def _check_isolated(self, pos: Position, now_ms: int) -> None:
        spec = self._engine.spec(pos.symbol)
        mark = self._engine.market.mark_price(pos.symbol)
        mmr = risk_tier(spec, contract_value(spec, pos.qty, pos.entry_price)).maintain_margin
        liquidation, bankrupt = liquidation_prices(spec, pos.qty, pos.entry_price, pos.margin, mmr)
        if is_liquidatable(pos.qty, mark, liquidation):
            log.info("liquidating isolated %s: %d lots, mark %s, liquidation %s",
                     pos.symbol, pos.qty, mark, liquidation)
            self._close(pos, bankrupt, now_ms, loss=pos.margin)

    def _check_cross(self, currency: str, now_ms: int) -> None:
        engine = self._engine
        summary = engine.summary(currency)
        if summary.cross_equity > summary.cross_maint:
            return
        for symbol, pos in list(engine.positions.items()):
            if pos.qty and engine.margin_mode(symbol) == CROSS and engine.spec(symbol).settle_currency == currency:
                log.info("liquidating cross %s: %d lots", symbol, pos.qty)
                mark = engine.market.mark_price(symbol)
                self._close(pos, mark, now_ms, loss=None)
        engine.wallet[currency] = max(0.0, engine.wallet.get(currency, 0.0))

    def _close(self, pos: Position, price: float, now_ms: int, *, loss: float | None) -> None:
        """Close `pos` at `price` as a liquidation; `loss` overrides the PnL (isolated: margin)."""
        engine = self._engine
        symbol = pos.symbol
        spec = engine.spec(symbol)
        fmt = engine.market.fmt(symbol)
        for order in engine.active_orders(symbol):
            engine.cancel(order, now_ms)
        gross = -loss if loss is not None else pnl(spec, pos.qty, pos.entry_price, price)
        side = opposite("buy" if pos.qty > 0 else "sell")
        lots = abs(pos.qty)
        engine.fills.append(Fill(
            trade_id=engine.counterparty_id(), order_id=engine.counterparty_id(), symbol=symbol, side=side,
            liquidity="taker", price=fmt.to_str(fmt.nearest_ticks(price)), size=lots,
            value=contract_value(spec, lots, price), fee_rate=0.0, open_fee=0.0, close_fee=0.0,
            fee_currency=spec.settle_currency, margin_mode=engine.margin_mode(symbol),
            order_type="market", trade_type="liquid", ts_ms=now_ms))
        currency = spec.settle_currency
        engine.wallet[currency] = engine.wallet.get(currency, 0.0) + gross
        pos.realised_gross += gross
        pos.qty = 0
        pos.entry_price = pos.margin = 0.0
        engine.after_position_change(symbol, now_ms, reason="liquidation")

    # -- funding -------------------------------------------------------------------------------
    def _settle_funding(self, symbol: str, now_ms: int) -> None:
        engine = self._engine
        spec = engine.spec(symbol)
        if not spec.is_perpetual:
            return
        due = self._next_funding.get(symbol)
        pos = engine.positions.get(symbol)
        if due is not None and now_ms >= due[0] and pos is not None and pos.qty:
            self._charge(pos, funding_ms=due[0], rate=due[1], now_ms=now_ms)
        if due is None or now_ms >= due[0]:
            current = engine.market.funding_rate_current(symbol, now_ms)
            self._next_funding[symbol] = (int(current["fundingTime"]), float(current["value"]))

    def _charge(self, pos: Position, *, funding_ms: int, rate: float, now_ms: int) -> None:
        engine = self._engine
        spec = engine.spec(pos.symbol)
        mark = engine.market.mark_price(pos.symbol)
        value = contract_value(spec, pos.qty, mark)
        fee = -value * rate if pos.qty > 0 else value * rate  # longs pay a positive rate
        engine.wallet[spec.settle_currency] = engine.wallet.get(spec.settle_currency, 0.0) + fee
        pos.funding += fee
        mode = engine.margin_mode(pos.symbol)
        record: dict[str, Any] = {
            "id": len(engine.funding_records) + 1, "symbol": pos.symbol, "timePoint": funding_ms,
            "fundingRate": rate, "markPrice": mark, "positionQty": pos.qty,
            "positionCost": num(value), "funding": num(fee), "settleCurrency": spec.settle_currency,
            "context": json.dumps({"marginMode": mode, "positionSide": "BOTH"}), "marginMode": mode,
        }
        engine.funding_records.append(record)
        engine.market.emit(PrivateEvent("position", pos.symbol, "position.settlement", {
            "fundingTime": funding_ms, "qty": pos.qty, "markPrice": mark, "fundingRate": rate,
            "fundingFee": num(fee), "ts": now_ms * 1_000_000, "settleCurrency": spec.settle_currency,
        }))
        engine.push_wallet(spec.settle_currency, now_ms)
