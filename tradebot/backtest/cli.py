"""``python bot.py backtest``: the command line of the backtest (bot.py hands it ``argv[1:]``).

    python bot.py backtest --simulate                      # offline: the simulator's history
    python bot.py backtest --timerange 20261001-20261101 --symbols BTC/USDT:USDT,ETH/USDT:USDT

Without --symbols the bot's universe settings pick the symbols (SYMBOLS, or the USDT perpetuals
above MIN_VOLUME_USDT, at most MAX_SYMBOLS: bot.pick_universe, handed in). Without --timerange:
the 30 whole UTC days before today. The settings (.env and the environment) give the strategy,
timeframe and every risk limit, as for the live bot. Exit codes: 0 done, 2 bad arguments or
settings, 1 the exchange could not be read.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from kucoin_futures.client.facade import KuCoinClient
from kucoin_futures.errors import ConfigError, KuCoinError
from kucoin_futures.protocol.types import TIMEFRAMES
from tradebot.backtest.costs import DEFAULT_SLIPPAGE_BPS, CostModel
from tradebot.backtest.data import History, HistoryCache, load_history, load_markets
from tradebot.backtest.engine import BacktestConfig, BacktestResult, as_signal_strategy, run_backtest
from tradebot.backtest.metrics import compute_metrics, iso_utc
from tradebot.backtest.report import summary_text, write_report
from tradebot.risk import DAY_MS, RiskLimits
from tradebot.strategy import StrategyParams, load_strategy

__all__ = ["Hooks", "main", "parse_args", "parse_timerange"]

log = logging.getLogger(__name__)

RESULTS_DIR = Path("backtest_results")
DEFAULT_DAYS = 30
SIM_SEED = 1


Settings = Any  # config.Settings (bot.py loads it: the bot's package does not import config)


@dataclass(frozen=True, slots=True)
class Hooks:
    """What bot.py lends the backtest: its universe rule, its logging setup, the simulator and
    the settings loader (one home each, in bot.py and config.py)."""

    pick_universe: Callable[[Any, Settings], list[str]]  # (object with .markets, settings)
    configure_logging: Callable[[str], None]
    simulator: Callable[[int], Any]  # seed -> a Simulator (a context manager with .url)
    load_settings: Callable[..., Settings]  # config.load_settings(dotenv_path=...)
    simulator_history: int = 0  # the simulator's history version: its cache is keyed by it


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bot.py backtest",
                                description="Backtest the bot's strategy and risk rules on KuCoin history.")
    p.add_argument("--simulate", action="store_true", help="read the local simulator's history (offline)")
    p.add_argument("--timerange", metavar="YYYYMMDD-YYYYMMDD",
                   help=f"UTC days, end excluded; 'A-' up to now, '-B' {DEFAULT_DAYS} days before B "
                        f"(default: the {DEFAULT_DAYS} days before today)")
    p.add_argument("--symbols", metavar="A,B", help="ccxt symbols (BTC/USDT:USDT) or bases (BTC); default: "
                                                    "the bot's universe settings")
    p.add_argument("--timeframe", choices=list(TIMEFRAMES), help="candles (default: the TIMEFRAME setting)")
    p.add_argument("--report", metavar="DIR", type=Path,
                   help=f"output folder (default: a dated folder under {RESULTS_DIR}/)")
    p.add_argument("--slippage-bps", type=float, default=DEFAULT_SLIPPAGE_BPS,
                   help=f"market orders fill this many basis points worse (default {DEFAULT_SLIPPAGE_BPS:g})")
    p.add_argument("--balance", type=float, metavar="USDT", help="starting balance (default PAPER_BALANCE_USDT)")
    p.add_argument("--seed", type=int, default=SIM_SEED, help="simulator seed with --simulate (default 1)")
    p.add_argument("--cache-dir", type=Path, default=RESULTS_DIR / "cache", help="history cache folder")
    p.add_argument("--env-file", help="settings file (default .env, which may be absent)")
    args = p.parse_args(argv)
    try:
        args.since_ms, args.until_ms = parse_timerange(args.timerange, now_ms=int(time.time() * 1000))
    except ValueError as exc:
        p.error(str(exc))
    if args.balance is not None and args.balance <= 0:
        p.error("--balance must be positive")
    if not 0 <= args.slippage_bps < 1000:
        p.error("--slippage-bps must be from 0 to 1000")
    return args


def parse_timerange(text: str | None, *, now_ms: int) -> tuple[int, int]:
    """Return [since_ms, until_ms) of "YYYYMMDD-YYYYMMDD" (UTC days; "A-", "-B" or None too)."""
    today = now_ms - now_ms % DAY_MS
    if not text:
        return today - DEFAULT_DAYS * DAY_MS, today
    start, sep, end = text.partition("-")
    if not sep or not (start or end):
        raise ValueError(f"--timerange {text!r}: expected YYYYMMDD-YYYYMMDD")
    until = _day_ms(end) if end else now_ms
    since = _day_ms(start) if start else until - DEFAULT_DAYS * DAY_MS
    if since >= until:
        raise ValueError(f"--timerange {text!r}: the start must be before the end")
    return since, until


def main(argv: list[str], *, hooks: Hooks) -> int:
    args = parse_args(argv)
    try:
        env_file = args.env_file or ".env"
        if args.env_file is not None and not os.path.isfile(env_file):
            raise ConfigError(f"--env-file {env_file}: no such file")
        settings = hooks.load_settings(dotenv_path=env_file)
        hooks.configure_logging(settings.log_level)
        with contextlib.ExitStack() as stack:
            return _run(args, settings, hooks, stack)
    except (ConfigError, KuCoinError) as exc:  # settings or arguments: 2; the exchange: 1
        bad_input = isinstance(exc, ConfigError)
        print(f"error: {exc}" if bad_input else f"error: could not read the history: {exc}", file=sys.stderr)
        return 2 if bad_input else 1


def _run(args: argparse.Namespace, settings: Settings, hooks: Hooks, stack: contextlib.ExitStack) -> int:
    timeframe = args.timeframe or settings.timeframe
    source = (f"simulator-h{hooks.simulator_history}-seed{args.seed}" if args.simulate
              else urlsplit(settings.futures_url).netloc or "kucoin")
    cache = HistoryCache(args.cache_dir, source=source)
    connect = _Connection(stack, settings, hooks, seed=args.seed if args.simulate else None)
    now = time.time()
    markets = load_markets(cache, connect, now_s=now)
    universe = _universe(args.symbols, markets, settings, hooks)
    progress = _Progress(stack)
    history = load_history(cache, connect, universe, timeframe, since_ms=args.since_ms, until_ms=args.until_ms,
                           now_ms=int(now * 1000), markets=markets, on_page=progress.page)
    progress.close()
    stack.close()  # the simulator and the client are not needed any more
    for gap in history.gaps:
        log.warning("gap in %s: %d candles missing from %s to %s (not bridged)", gap.symbol, gap.missing,
                    iso_utc(gap.from_ms), iso_utc(gap.to_ms))
    config = BacktestConfig(limits=RiskLimits.from_settings(settings), params=StrategyParams.from_settings(settings),
                            costs=CostModel(args.slippage_bps),
                            starting_balance_usdt=args.balance or settings.paper_balance_usdt)
    started = time.perf_counter()
    result = run_backtest(history, as_signal_strategy(load_strategy(settings.strategy)), config, symbols=universe)
    log.info("backtest of %d symbols x %d candles in %.2fs", len(universe),
             sum(len(s.rows) for s in history.series.values()), time.perf_counter() - started)
    summary = build_summary(history, result, settings, args, universe)
    out_dir = args.report or RESULTS_DIR / dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    paths = write_report(out_dir, summary, result, history)
    print(summary_text(summary))
    print(f"\nreport: {paths['report.html']}  (summary.json, trades.json beside it)", flush=True)
    return 0


def build_summary(history: History, result: BacktestResult, settings: Settings, args: argparse.Namespace,
                  universe: list[str]) -> dict[str, Any]:
    """Return summary.json's content: the run, the data and the statistics."""
    closes = {s: (float(v.rows[0, 4]), float(v.rows[-1, 4])) for s, v in history.series.items() if len(v.rows)}
    limits = RiskLimits.from_settings(settings)
    return {
        "run": {
            "strategy": settings.strategy, "symbols": universe, "timeframe": history.timeframe,
            "from": iso_utc(history.since_ms), "to": iso_utc(history.until_ms), "from_ms": history.since_ms,
            "to_ms": history.until_ms, "days": (history.until_ms - history.since_ms) / DAY_MS,
            "source": history.source, "slippage_bps": args.slippage_bps,
            "starting_balance_usdt": result.starting_balance_usdt, **dataclasses.asdict(limits),
        },
        "data": {
            "candles": sum(len(s.rows) for s in history.series.values()), "fetched_ranges": history.fetched_ranges,
            "cache": str(args.cache_dir),
            "gaps": [{"symbol": g.symbol, "from": iso_utc(g.from_ms), "to": iso_utc(g.to_ms), "from_ms": g.from_ms,
                      "to_ms": g.to_ms, "missing": g.missing} for g in history.gaps],
        },
        "metrics": compute_metrics(result, since_ms=history.since_ms, until_ms=history.until_ms, closes=closes),
    }


class _Connection:
    """connect(): the client, made (and the simulator started) at the first call only."""

    def __init__(self, stack: contextlib.ExitStack, settings: Settings, hooks: Hooks, *, seed: int | None) -> None:
        self._stack, self._settings, self._hooks, self._seed = stack, settings, hooks, seed
        self._client: KuCoinClient | None = None

    def __call__(self) -> KuCoinClient:
        if self._client is None:
            url = self._settings.futures_url
            if self._seed is not None:
                sim = self._stack.enter_context(self._hooks.simulator(self._seed))
                url = sim.url
                log.info("simulated KuCoin Futures on %s (seed %d) for its history", url, self._seed)
            client = KuCoinClient(futures_url=url, enable_websocket=False)  # public history: no keys
            self._stack.callback(client.close)
            self._client = client.start()
        return self._client


class _Progress:
    """A bar over the pages being downloaded, on a terminal only, shown from the first page."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._bar: tqdm | None = None
        self._symbols: set[str] = set()

    def page(self, symbol: str, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = self._stack.enter_context(tqdm(desc="downloading history", unit="page", file=sys.stderr,
                                                       disable=None, leave=False))
            if not self._bar.disable:
                self._stack.enter_context(logging_redirect_tqdm())
        if symbol not in self._symbols:
            self._symbols.add(symbol)
            self._bar.total = (self._bar.total or 0) + total
        self._bar.set_postfix_str(symbol, refresh=False)
        self._bar.update()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _universe(spec: str | None, markets: dict[str, Any], settings: Settings, hooks: Hooks) -> list[str]:
    if spec:
        wanted = [s.strip() for s in spec.split(",") if s.strip()]
        symbols = [s if s in markets else f"{s.upper()}/USDT:USDT" for s in wanted]
    else:
        symbols = hooks.pick_universe(_Markets(markets), settings)
    unknown = [s for s in symbols if s not in markets]
    if unknown or not symbols:
        raise ConfigError(f"--symbols: not listed on the exchange: {', '.join(unknown) or '(none given)'}")
    inverse = [s for s in symbols if not (markets[s].get("linear") and markets[s].get("settle") == "USDT")]
    if inverse:
        raise ConfigError(f"the backtest trades USDT-margined linear contracts, like the bot: {', '.join(inverse)}")
    return symbols


@dataclass(frozen=True, slots=True)
class _Markets:
    markets: dict[str, Any]  # what pick_universe reads of a client


def _day_ms(text: str) -> int:
    try:
        day = dt.datetime.strptime(text, "%Y%m%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise ValueError(f"{text!r} is not a YYYYMMDD day") from None
    return int(day.timestamp() * 1000)
