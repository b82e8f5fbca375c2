"""KuCoinClient's paged history (client/history.py) against the simulator: candles and funding."""
from __future__ import annotations

import pytest

from kucoin_client import KuCoinClient
from kucoin_futures.client.history import PAGE_CANDLES, candle_windows, parse_funding_rates
from kucoin_futures.errors import InvalidArgument, ProtocolError

DAY = 86_400_000
HOUR = 3_600_000


def test_history_pages_cover_a_long_range_contiguously(sim):
    now = int(sim.now_ms())
    since = now - now % DAY - 45 * DAY
    pages = []
    with KuCoinClient(futures_url=sim.url, enable_websocket=False) as client:
        rows = client.fetch_ohlcv_history("ETH/USDT:USDT", "1m", since_ms=since, until_ms=since + DAY,
                                          on_page=lambda done, total: pages.append((done, total)))
        funding = client.fetch_funding_rate_history("ETH/USDT:USDT", since_ms=since, until_ms=since + 40 * DAY)
        with pytest.raises(InvalidArgument):
            client.fetch_ohlcv_history("NOPE/USDT:USDT", "1m", since_ms=since, until_ms=since + DAY)
    assert [r[0] for r in rows] == list(range(since, since + DAY, 60_000))
    assert pages == [(1, 3), (2, 3), (3, 3)]
    assert [t for t, _ in funding] == list(range(since + 4 * HOUR, since + 40 * DAY, 8 * HOUR))  # 120: 2 pages
    assert all(-0.003 <= rate <= 0.003 for _, rate in funding)
    assert sim.requests[("GET", "/api/v1/contract/funding-rates")] == 3  # 100 + 20 + an empty answer


def test_candle_windows_align_and_stop_at_the_end():
    assert candle_windows("5m", since_ms=1, until_ms=600_001) == [(300_000, 600_000)]
    windows = candle_windows("1m", since_ms=0, until_ms=1200 * 60_000)
    assert windows == [(0, (PAGE_CANDLES - 1) * 60_000), (PAGE_CANDLES * 60_000, (2 * PAGE_CANDLES - 1) * 60_000),
                       (2 * PAGE_CANDLES * 60_000, 1200 * 60_000 - 1)]
    with pytest.raises(InvalidArgument):
        candle_windows("1m", since_ms=5, until_ms=5)


def test_funding_rates_parse_and_refuse_garbage():
    payload = {"code": "200000", "data": [{"symbol": "XBTUSDTM", "fundingRate": 0.0001, "timepoint": 1702310700000}]}
    assert parse_funding_rates(payload) == [(1702310700000, 0.0001)]
    for bad in ({"code": "200000"}, {"data": [{"fundingRate": "x", "timepoint": 1}]}, []):
        with pytest.raises(ProtocolError):
            parse_funding_rates(bad)


@pytest.mark.parametrize("kwargs", [
    {"since_ms": -1}, {"since_ms": 10**14}, {"since_ms": 1.5}, {"since_ms": True}, {"until_ms": 0},
    {"timeframe": "3m"}, {"timeframe": None}, {"on_page": 5}, {"symbol": "BTC/USD:BTC-261225"}, {"symbol": 5},
])
def test_bad_arguments_are_refused_before_anything_is_sent(sim, kwargs):
    args = {"symbol": "BTC/USDT:USDT", "timeframe": "1h", "since_ms": 0, "until_ms": 86_400_000, "on_page": None, **kwargs}
    with KuCoinClient(futures_url=sim.url, enable_websocket=False) as client:
        client.markets  # loaded: from here on nothing may be sent
        before = dict(sim.requests)
        with pytest.raises(InvalidArgument):
            client.fetch_ohlcv_history(**args)
        if "timeframe" not in kwargs and "on_page" not in kwargs:
            with pytest.raises(InvalidArgument):
                client.fetch_funding_rate_history(args["symbol"], since_ms=args["since_ms"], until_ms=args["until_ms"])
        assert dict(sim.requests) == before
