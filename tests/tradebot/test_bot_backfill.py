"""bot.backfill against the simulator: one prefetch for the universe, then every history read
from the WebSocket cache (or REST without it); a progress bar on a terminal only, one INFO line."""
from __future__ import annotations

import io
import logging
import re
import sys
from typing import Any

import pytest

import bot
from kucoin_client import KuCoinClient
from kucoin_sim import Simulator
from tests.helpers import wait_until

UNIVERSE = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]
IDS = ("XBTUSDTM", "ETHUSDTM", "SOLUSDTM")


def make_client(sim: Simulator, **kwargs: Any) -> KuCoinClient:
    creds = sim.credentials
    return KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url, **kwargs)


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, and keeps what was drawn on it."""

    def isatty(self) -> bool:
        return True


def _backfill_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bot" and r.getMessage().startswith("backfill")]


def test_backfill_prefetches_the_universe_and_reads_it_from_the_cache(sim: Simulator, capsys: pytest.CaptureFixture,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """stderr is no terminal here (captured, as in a log file or a pipe): no bar, no carriage
    return, one INFO line with where the data came from."""
    caplog.set_level(logging.INFO, logger="bot")
    expected_topics = {f"/contractMarket/{kind}:{kid}" for kid in IDS for kind in ("tickerV2", "ticker")}
    expected_topics |= {f"/contractMarket/limitCandle:{kid}_1min" for kid in IDS}
    with make_client(sim) as client:
        bot.backfill(client, UNIVERSE, "1m")
        after_backfill = client.source_counts
        tickers = [client.get_ticker(symbol)["source"] for symbol in UNIVERSE]  # subscribed by the backfill
        wait_until(lambda: sim.subscriptions == expected_topics, what="the universe's ticker and candle topics")
    assert (after_backfill, tickers) == ({"websocket": 3, "rest": 0}, ["websocket"] * 3)
    assert capsys.readouterr().err == ""
    [line] = _backfill_lines(caplog)
    assert re.fullmatch(r"backfill: 3 symbols in \d+\.\ds \(3 from the WebSocket, 0 from REST\)", line), line


def test_backfill_without_websocket_reads_rest(sim: Simulator, capsys: pytest.CaptureFixture,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """No WebSocket: nothing is said about a WebSocket cache, only that the history came from REST."""
    caplog.set_level(logging.INFO, logger="bot")
    with make_client(sim, enable_websocket=False) as client:
        bot.backfill(client, UNIVERSE, "1m")
        counts = client.source_counts
    assert (counts, sim.connections_total) == ({"websocket": 0, "rest": 3}, 0)
    assert capsys.readouterr().err == ""
    assert [line for line in caplog.messages if "WebSocket" in line] == []
    [line] = _backfill_lines(caplog)
    assert re.fullmatch(r"backfill: 3 symbols in \d+\.\ds from REST", line), line


def test_backfill_bar_on_a_terminal_spans_the_prefetch_wait(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the bar is on screen before the prefetch starts waiting for WebSocket data,
    goes on over the history reads, and is cleared at the end (the INFO line takes its place)."""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    drawn_before_prefetch: list[str] = []
    with make_client(sim) as client:
        prefetch = client.prefetch

        def spied_prefetch(*args: Any, **kwargs: Any) -> Any:
            drawn_before_prefetch.append(terminal.getvalue())
            return prefetch(*args, **kwargs)

        monkeypatch.setattr(client, "prefetch", spied_prefetch)
        bot.backfill(client, UNIVERSE, "1m")
    frames = terminal.getvalue().split("\r")
    assert [frame.split("|")[0] for frame in drawn_before_prefetch[0].split("\r") if frame] == [
        "waiting for market data:   0%"]
    history = [i for i, frame in enumerate(frames) if frame.startswith("reading 1m history: ")]
    assert history and " 0/3 " in frames[history[0]]
    assert frames[-1] == "" and frames[-2].strip() == "" and history[-1] < len(frames) - 2


@pytest.mark.parametrize("websocket", [True, False])
def test_prefetch_reports_each_symbol_as_its_wait_ends(sim: Simulator, websocket: bool) -> None:
    """The progress hook: every symbol once, in order, with or without the WebSocket (without
    it, at once: there is nothing to wait for)."""
    done: list[str] = []
    with make_client(sim, enable_websocket=websocket) as client:
        result = client.prefetch(UNIVERSE + UNIVERSE[:1], timeframes=("1m",), on_symbol_done=done.append)
    assert done == UNIVERSE
    assert (result.ready, result.missing) == ((tuple(UNIVERSE), ()) if websocket else ((), tuple(UNIVERSE)))


def test_prefetch_refuses_a_hook_that_is_not_callable() -> None:
    from kucoin_futures.errors import InvalidArgument
    from kucoin_futures.client.prefetch import plan_prefetch

    with pytest.raises(InvalidArgument, match="on_symbol_done"):
        plan_prefetch(UNIVERSE, ("1m",), tickers=True, order_books=False, timeout_s=1.0, on_symbol_done="bar")
