"""Start-up guards on how the KuCoin account is set up: one clear error for each way it cannot
be traded by this client, before the first order.

- A UNIFIED (UTA) account: this client speaks the classic futures endpoints. Asked through
  ``GET /api/ua/v1/account/mode`` where KuCoin serves it; where it does not answer (404, an
  unknown path) the account is classic, and that is logged.
- Hedge position mode: the bot trades one-way positions only (``getPositionMode`` 1).
- Margin mode per contract: set to the configured one before the first order, so no order meets
  330005 (its marginMode differs from the contract's); KuCoin refuses the change while the
  contract has a position or open orders, which is an error naming the contract.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import methodcaller
from typing import Any

from kucoin_futures.errors import AccountModeError, ExchangeRejected, InvalidArgument, TransportError
from kucoin_futures.orders.rules import check_margin_mode
from kucoin_futures.protocol.types import to_kucoin_id
from kucoin_futures.rest.gateway import RestGateway
from kucoin_futures.scheduling.pools import Priority

__all__ = ["AccountModes", "check_account_modes"]

log = logging.getLogger(__name__)

HEDGE_MODE = "1"  # KuCoin's positionMode: "0" one-way, "1" hedge


@dataclass(frozen=True, slots=True)
class AccountModes:
    """What the checks found: ``account_mode`` None where KuCoin does not serve the query."""

    account_mode: str | None
    position_mode: str  # "one-way"
    margin_modes: Mapping[str, str]  # unified symbol -> "isolated" | "cross", as now set
    changed: tuple[str, ...]  # the symbols whose margin mode was set by this check


def check_account_modes(gateway: RestGateway, symbols: Iterable[str], margin_mode: str) -> AccountModes:
    """Check the account (HIGH priority calls) and set each symbol's margin mode to ``margin_mode``.

    Raises:
        AccountModeError: a UNIFIED account, hedge mode, or a margin mode KuCoin would not change.
        InvalidArgument: an unknown symbol or margin mode (before anything is sent).
    """
    wanted = check_margin_mode(margin_mode)
    if wanted is None:
        raise InvalidArgument("margin_mode=None: give 'isolated' or 'cross'")
    if isinstance(symbols, (str, bytes)) or not isinstance(symbols, Iterable):
        raise InvalidArgument(f"symbols={symbols!r}: give a list of symbols such as ['BTC/USDT:USDT']")
    markets = [gateway.market(symbol)["symbol"] for symbol in symbols]
    for symbol in markets:
        to_kucoin_id(symbol)  # InvalidArgument for a contract this client does not trade (dated)
    account_mode = _account_mode(gateway)
    if account_mode == "UNIFIED":
        raise AccountModeError(
            "this is a UNIFIED (UTA) KuCoin account; this client trades classic futures accounts only. "
            "Use a classic futures account (or sub-account) and its API key")
    data = _data(gateway.call(Priority.HIGH, "fetch_position_mode",
                              methodcaller("futuresPrivateGetPositionGetPositionMode", {})))
    if str(data.get("positionMode")) == HEDGE_MODE:
        raise AccountModeError(
            "the account is in hedge position mode; this client trades one-way positions only. Switch "
            "it to one-way in KuCoin (Futures, preferences, position mode) with nothing open")
    modes: dict[str, str] = {}
    changed = []
    for symbol in markets:
        current = _margin_mode_of(gateway, symbol)
        if current != wanted:
            _set_margin_mode(gateway, symbol, wanted, current)
            changed.append(symbol)
            log.info("%s: margin mode set to %s (was %s)", symbol, wanted, current)
        modes[symbol] = wanted
    return AccountModes(account_mode, "one-way", modes, tuple(changed))


def _account_mode(gateway: RestGateway) -> str | None:
    try:
        data = _data(gateway.call(Priority.HIGH, "fetch_account_mode",
                                  methodcaller("utaPrivateGetAccountMode", {})))
    except (ExchangeRejected, TransportError) as exc:
        if isinstance(exc, TransportError) and (exc.http_status is None or exc.http_status >= 500):
            raise  # no answer, or the exchange is busy: not a sign of a classic account
        log.info("account mode: GET /api/ua/v1/account/mode not served (%s); a classic account", exc)
        return None
    return str(data.get("selfAccountMode") or "") or None


def _margin_mode_of(gateway: RestGateway, symbol: str) -> str:
    fetch = methodcaller("futuresPrivateGetPositionGetMarginMode", {"symbol": to_kucoin_id(symbol)})
    return str(_data(gateway.call(Priority.HIGH, "fetch_margin_mode", fetch)).get("marginMode", "")).lower()


def _set_margin_mode(gateway: RestGateway, symbol: str, wanted: str, current: str) -> None:
    change = methodcaller("futuresPrivatePostPositionChangeMarginMode",
                          {"symbol": to_kucoin_id(symbol), "marginMode": wanted.upper()})
    try:
        gateway.call(Priority.HIGH, "set_margin_mode", change)
    except ExchangeRejected as exc:
        raise AccountModeError(
            f"{symbol}: margin mode is {current}, MARGIN_MODE is {wanted}, and KuCoin refused the change "
            f"({exc}): it has a position or open orders. Close them, or set MARGIN_MODE={current}",
            symbol=symbol, variable="MARGIN_MODE") from exc


def _data(envelope: Any) -> Mapping[str, Any]:
    data = envelope.get("data") if isinstance(envelope, dict) else None
    return data if isinstance(data, dict) else {}
