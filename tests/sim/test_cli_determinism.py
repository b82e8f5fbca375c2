"""The standalone simulator command, and one seed = one market."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kucoin_sim import Simulator
from kucoin_sim.__main__ import parse_args
from tests.helpers import TIMEOUT_S
from tests.sim.wsclient import http

ROOT = Path(__file__).resolve().parents[2]
FROZEN_MS = 1_795_000_000_000


def test_help_documents_every_option() -> None:
    out = subprocess.run([sys.executable, "-m", "kucoin_sim", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, check=True).stdout
    for option in ("--port", "--host", "--seed", "--api-key", "--api-secret", "--api-passphrase",
                   "--tick-ms", "--vol-scale", "--ping-interval-ms", "--ping-timeout-ms", "--no-rate-limits"):
        assert option in out
    flat = "".join(out.split())
    assert "(default'sim-key')" in flat and "(default1)" in flat


def test_parse_args_defaults() -> None:
    args = parse_args([])
    assert (args.host, args.port, args.seed, args.api_key) == ("127.0.0.1", 8080, 1, "sim-key")


def test_standalone_process_serves_and_stops() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "kucoin_sim", "--port", "0", "--seed", "3",
                             "--log-level", "WARNING"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("kucoin_sim listening on http://127.0.0.1:")
        url = line.split()[3]

        status, _, body = http(_Remote(url), "GET", "/api/v1/ticker?symbol=XBTUSDTM")
        assert status == 200 and body["data"]["symbol"] == "XBTUSDTM"
    finally:
        proc.terminate()
        assert proc.wait(TIMEOUT_S * 2) == 0


class _Remote:
    def __init__(self, url: str) -> None:
        self.url = url


def _market_view(seed: int) -> tuple:
    with Simulator(seed=seed, clock_ms=lambda: FROZEN_MS) as sim:
        klines = http(sim, "GET", "/api/v1/kline/query?symbol=ETHUSDTM&granularity=15")[2]["data"]
        book = http(sim, "GET", "/api/v1/level2/snapshot?symbol=XBTUSDTM")[2]["data"]
        ticker = http(sim, "GET", "/api/v1/ticker?symbol=SOLUSDTM")[2]["data"]
        contracts = http(sim, "GET", "/api/v1/contracts/active")[2]["data"]
    return klines, book, ticker, [(c["symbol"], c["lastTradePrice"], c["openInterest"]) for c in contracts]


def test_one_seed_gives_one_market() -> None:
    first, again, other = _market_view(5), _market_view(5), _market_view(6)
    assert first == again
    assert first[0] != other[0] and first[1]["bids"] != other[1]["bids"]


@pytest.mark.parametrize("seed", [0, 2**31])
def test_any_seed_starts(seed: int) -> None:
    with Simulator(seed=seed) as sim:
        assert http(sim, "GET", "/api/v1/status")[2]["data"]["status"] == "open"
