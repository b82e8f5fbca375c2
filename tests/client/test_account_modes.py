"""Start-up guards: a UNIFIED account and hedge mode are refused with one clear error each, and
each symbol's margin mode is set before the first order (or the refusal names the symbol)."""
from __future__ import annotations

import pytest

from kucoin_client import AccountModeError, ConfigError, KuCoinClient
from kucoin_sim import Simulator

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def make_client(sim: Simulator) -> KuCoinClient:
    creds = sim.credentials
    return KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url,
                        enable_websocket=False)


def test_a_classic_one_way_account_passes_and_margin_modes_are_set(sim: Simulator) -> None:
    with make_client(sim) as client:
        first = client.check_account_modes([BTC, ETH], margin_mode="cross")
        again = client.check_account_modes([BTC, ETH], margin_mode="cross")
        placed = client.create_market_order(BTC, "buy", 1)  # the contract's mode: cross, no 330005
    assert (first.account_mode, first.position_mode, dict(first.margin_modes), first.changed) == (
        "CLASSIC", "one-way", {BTC: "cross", ETH: "cross"}, (BTC, ETH))
    assert (again.changed, placed["clientOrderId"] is not None, sim.positions()[0]["marginMode"]) == (
        (), True, "CROSS")


def test_a_unified_account_is_refused(sim: Simulator) -> None:
    sim.set_account_mode("UNIFIED")
    with make_client(sim) as client, pytest.raises(AccountModeError, match="UNIFIED"):
        client.check_account_modes([BTC])


def test_hedge_mode_is_refused(sim: Simulator) -> None:
    sim.set_position_mode(True)
    with make_client(sim) as client, pytest.raises(AccountModeError, match="hedge position mode") as caught:
        client.check_account_modes([BTC])
    assert isinstance(caught.value, ConfigError)


def test_a_margin_mode_kucoin_will_not_change_names_the_symbol(sim: Simulator) -> None:
    with make_client(sim) as client:
        client.check_account_modes([BTC], margin_mode="isolated")
        client.create_market_order(BTC, "buy", 1, leverage=5)
        with pytest.raises(AccountModeError) as caught:
            client.check_account_modes([BTC], margin_mode="cross")
    assert (caught.value.symbol, caught.value.variable, "position or open orders" in str(caught.value)) == (
        BTC, "MARGIN_MODE", True)


def test_an_account_mode_query_kucoin_does_not_serve_means_classic(sim: Simulator) -> None:
    sim.fail_next("GET", "/api/ua/v1/account/mode", status=404, code="404000", msg="Not Found")
    with make_client(sim) as client:
        modes = client.check_account_modes([BTC])
    assert (modes.account_mode, modes.position_mode) == (None, "one-way")
