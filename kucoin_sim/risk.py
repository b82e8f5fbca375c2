"""Per-tick risk work on the account: liquidation and funding settlement (TickHooks.after_tick).

Liquidation (kept simple but real):
- isolated: when the mark price reaches the position's liquidation price (formulas in
  positions.py), the symbol's open orders and untriggered stops are canceled and the position is
  closed at its bankruptcy price: the whole position margin is lost. A fill with tradeType
  "liquid" records it; the position push carries changeReason "liquidation".
- cross: when the cross equity of a settle currency (wallet − isolated margins − order margins +
  cross unrealised PnL) falls to the cross maintenance margin, every cross position in that
  currency is closed at the mark price; the wallet is floored at 0 (the insurance fund pays the
  rest).
Funding: at each funding time of a perpetual (`fundingTime` of the market's current funding
rate), an open position pays (long, positive rate) or receives value × rate at the mark price,
recorded for `GET /api/v1/funding-history` and pushed as position.settlement.
Two test hooks (no KuCoin counterpart, the market cannot cause them on its own): `deleverage`
closes (part of) a position at the mark price as auto-deleveraging (a fill with tradeType "adl",
changeReason "adl"), and `settle_funding_now` charges the current funding rate at once.
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
from .positions import (
    CROSS, ISOLATED, Position, apply_fill, is_liquidatable, liquidation_prices, risk_tier,
)
from .stops import StopDesk

log = logging.getLogger(__name__)


class RiskKeeper:
    """Runs liquidation and funding checks for an Engine, one symbol per call."""

    def __init__(self, engine: Engine, stops: StopDesk) -> None:
        self._engine = engine
        self._stops = stops
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
        self._stops.cancel_symbol(symbol, now_ms)
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

    def deleverage(self, symbol: str, now_ms: int, lots: int | None = None) -> None:
        """Test hook: auto-deleverage `lots` (default all) of the position at the mark price."""
        engine = self._engine
        pos = engine.positions.get(symbol)
        if pos is None or not pos.qty:
            raise ValueError(f"no {symbol} position to deleverage")
        lots = abs(pos.qty) if lots is None else min(lots, abs(pos.qty))
        spec, fmt = engine.spec(symbol), engine.market.fmt(symbol)
        ticks = fmt.nearest_ticks(engine.market.mark_price(symbol))
        price = fmt.to_float(ticks)
        side = "sell" if pos.qty > 0 else "buy"
        mode = engine.margin_mode(symbol)
        effect = apply_fill(pos, spec, side=side, qty=lots, price=price, leverage=1.0, fee=0.0,
                            isolated=mode == ISOLATED, now_ms=now_ms)
        currency = spec.settle_currency
        engine.wallet[currency] = engine.wallet.get(currency, 0.0) + effect.realised_gross
        engine.fills.append(Fill(
            trade_id=engine.counterparty_id(), order_id=engine.counterparty_id(), symbol=symbol,
            side=side, liquidity="taker", price=fmt.to_str(ticks), size=lots,
            value=contract_value(spec, lots, price), fee_rate=0.0, open_fee=0.0, close_fee=0.0,
            fee_currency=spec.settle_currency, margin_mode=mode, order_type="market",
            trade_type="adl", ts_ms=now_ms))
        log.info("auto-deleveraged %s: %d lots at %s", symbol, lots, price)
        engine.trim_reduce_only(symbol, now_ms)
        engine.after_position_change(symbol, now_ms, reason="adl")

    def settle_funding_now(self, symbol: str, now_ms: int) -> None:
        """Test hook: charge the symbol's current funding rate to its position now."""
        pos = self._engine.positions.get(symbol)
        if pos is None or not pos.qty:
            raise ValueError(f"no {symbol} position to charge funding to")
        rate = float(self._engine.market.funding_rate_current(symbol, now_ms)["value"])
        self._charge(pos, funding_ms=now_ms, rate=rate, now_ms=now_ms)

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
