"""Pure tests: the recorded KuCoin payloads in tests/fixtures are well formed and keep their units.

The simulator's fidelity tests compare what it serves against these files, so their shape and the
units of their time fields are pinned here.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
ALL = sorted(path.stem for path in FIXTURES.glob("*.json"))
ALLOWED_KEYS = {"source", "payload", "note", "http_status"}

# Magnitude of epoch values in 2018-2030 by unit.
UNIT_RANGES = {"s": (1.5e9, 1.95e9), "ms": (1.5e12, 1.95e12), "ns": (1.5e18, 1.95e18)}

# (fixture, path to the field, unit): the unit facts the client and the simulator rely on.
TIME_FIELDS = [
    ("rest_ticker", ("data", "ts"), "ns"),
    ("rest_all_tickers", ("data", 0, "ts"), "ns"),
    ("rest_level2_snapshot", ("data", "ts"), "ns"),
    ("rest_level2_snapshot_classic", ("data", "ts"), "ns"),
    ("rest_trade_history", ("data", 0, "ts"), "ns"),
    ("rest_kline_query", ("data", 0, 0), "ms"),
    ("rest_mark_price", ("data", "timePoint"), "ms"),
    ("rest_server_time", ("data",), "ms"),
    ("rest_funding_rate_current", ("data", "fundingTime"), "ms"),
    ("rest_order_detail", ("data", "createdAt"), "ms"),
    ("rest_order_detail", ("data", "orderTime"), "ns"),
    ("rest_fills", ("data", "items", 0, "tradeTime"), "ns"),
    ("rest_fills", ("data", "items", 0, "createdAt"), "ms"),
    ("rest_position", ("data", "currentTimestamp"), "ms"),
    ("ws_ticker_v2", ("data", "ts"), "ns"),
    ("ws_ticker", ("data", "ts"), "ns"),
    ("ws_level2", ("data", "timestamp"), "ms"),
    ("ws_level2_depth5", ("data", "timestamp"), "ms"),
    ("ws_level2_depth5", ("data", "ts"), "ms"),
    ("ws_execution", ("data", "ts"), "ns"),
    ("ws_candle", ("data", "candles", 0), "s"),
    ("ws_candle", ("data", "time"), "ms"),
    ("ws_instrument_mark_index", ("data", "timestamp"), "ms"),
    ("ws_trade_orders", ("data", "orderTime"), "ns"),
    ("ws_trade_orders", ("data", "ts"), "ns"),
    ("ws_stop_order", ("data", "createdAt"), "ms"),
    ("ws_wallet", ("data", "timestamp"), "ms"),
]


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def dig(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def test_fixture_set_covers_the_brief():
    expected = {
        "rest_contracts_active", "rest_ticker", "rest_all_tickers", "rest_level2_snapshot", "rest_kline_query",
        "rest_trade_history", "rest_funding_rate_current", "rest_mark_price", "rest_bullet_public",
        "rest_order_detail", "rest_orders_list", "rest_fills", "rest_account_overview", "rest_position",
        "rest_positions", "rest_create_order", "rest_cancel_order", "ws_welcome", "ws_ack", "ws_pong",
        "ws_ticker_v2", "ws_ticker", "ws_level2", "ws_level2_depth5", "ws_level2_depth50", "ws_execution",
        "ws_candle", "ws_instrument_mark_index", "ws_instrument_funding_rate", "ws_trade_orders",
        "ws_position_change", "ws_wallet",
    }
    assert expected - set(ALL) == set()
    assert [n for n in ALL if n.startswith(("rest_error_", "ws_error_"))] != []


@pytest.mark.parametrize("name", ALL)
def test_fixture_shape(name):
    fixture = load(name)
    assert set(fixture) <= ALLOWED_KEYS and {"source", "payload"} <= set(fixture)
    assert isinstance(fixture["source"], str) and fixture["source"]
    payload = fixture["payload"]
    if name.startswith("rest_"):
        assert isinstance(payload["code"], str)
        assert (payload["code"] == "200000") == (not name.startswith("rest_error_"))
        assert ("msg" in payload) == name.startswith("rest_error_")
    elif name.startswith("ws_error_"):
        assert (payload["type"], type(payload["code"]), type(payload["data"])) == ("error", int, str)


@pytest.mark.parametrize(("name", "path", "unit"), TIME_FIELDS)
def test_fixture_time_units(name, path, unit):
    value = int(dig(load(name)["payload"], path))  # some are strings on the wire (candle start, wallet)
    low, high = UNIT_RANGES[unit]
    assert low <= value <= high


def test_fixture_ws_candle_field_order():
    """The WS candle is [start, open, close, high, low, v5, amount]: all strings."""
    candles = load("ws_candle")["payload"]["data"]["candles"]
    assert (len(candles), {type(v) for v in candles}) == (7, {str})


def test_fixture_ids_are_strings():
    order = load("rest_order_detail")["payload"]["data"]
    trade = load("ws_execution")["payload"]["data"]
    assert {type(order["id"]), type(order["clientOid"]), type(trade["tradeId"])} == {str}
