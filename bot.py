"""The KuCoin Futures trading bot.

    python bot.py --simulate               # offline: a local simulated exchange, real order path
    python bot.py --simulate --duration 20 # ... for 20 seconds, then a summary
    python bot.py                          # paper trading on live KuCoin data (no keys / DRY_RUN)
    python bot.py --once                   # one scan cycle, then exit
    python bot.py backtest --simulate      # the strategy and risk rules on history (offline here)

Live trading needs KUCOIN_API_KEY/SECRET/PASSPHRASE and DRY_RUN=false in .env (see .env.example).
SIGINT/SIGTERM stop new entries, let calls in flight finish, close the WebSocket, flush the
journal, print a summary and exit 0.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from config import ConfigError, Settings, env_file_warning, load_settings
from kucoin_client import KuCoinClient
from kucoin_futures.errors import (
    AuthError,
    ClientClosed,
    InvalidArgument,
    KuCoinError,
    ProtocolError,
    TransportError,
    exchange_busy,
)
from tradebot.events import EventBus, EventKind
from tradebot.journal import Journal
from tradebot.ops.runtime import Ops
from tradebot.paper import PaperBroker, PaperContract
from tradebot.performance import summary
from tradebot.strategy import HISTORY_CANDLES
from tradebot.trader import Trader

log = logging.getLogger("bot")
T = TypeVar("T")

SIM_SEED = 1
SIM_VOL_SCALE = 3.0  # a livelier simulated market so the demo trades within seconds
START_RETRY_FIRST_S = 0.5  # start-up steps refused for a moment are retried after this ...
START_RETRY_MAX_S = 30.0  # ... doubling up to this
DEFAULT_ENV_FILE = ".env"
STOP_GRACE_S = 1.0  # after SIGINT/SIGTERM the loop gets this long before queued calls are dropped
WS_ENABLED = "WebSocket API: ENABLED (Real-time market data)"
WS_DISABLED = "WebSocket API: DISABLED (market data over REST polling)"
# What each KuCoin auth refusal (protocol notes section 3.4, codes 4000xx) says about the settings.
# ccxt signs with key version 2, whose KC-API-PASSPHRASE is the passphrase signed with the
# secret, so KuCoin checks that header before the signature: a wrong secret fails as 400004
# ("Invalid KC-API-PASSPHRASE") exactly like a wrong passphrase, and 400005 is rarely seen.
AUTH_HINTS = {
    "400001": "a signed header was missing: set all of KUCOIN_API_KEY, KUCOIN_API_SECRET and KUCOIN_API_PASSPHRASE",
    "400002": "this machine's clock is more than 5 s away from KuCoin's: set the clock right (NTP)",
    "400003": "KuCoin does not know KUCOIN_API_KEY: check it (a sandbox key fails on the live site and the other "
              "way round)",
    "400004": "KUCOIN_API_SECRET or KUCOIN_API_PASSPHRASE is wrong (KuCoin checks the passphrase signed with "
              "the secret, so a wrong secret shows as a wrong passphrase)",
    "400005": "KUCOIN_API_SECRET is wrong (the request signature does not match)",
    "400006": "this machine's IP address is not in the API key's IP whitelist",
    "400007": "the API key lacks a permission the bot needs (General and Futures trading)",
    "411100": "the KuCoin account is frozen",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bot.py", description="KuCoin Futures trading bot.")
    p.add_argument("--simulate", action="store_true",
                   help="run offline against a local simulated KuCoin Futures (kucoin_sim) in-process")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop cleanly after this many seconds")
    p.add_argument("--once", action="store_true", help="run one scan cycle and exit")
    p.add_argument("--env-file", help="settings file (default .env, which may be absent; a file named "
                                      "here must exist; the environment wins)")
    p.add_argument("--seed", type=int, default=SIM_SEED, help="simulator seed with --simulate (default 1)")
    args = p.parse_args(argv)
    if args.duration is not None and args.duration <= 0:
        p.error("--duration must be positive")
    return args


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("kucoin_sim").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    logging.getLogger("picows").setLevel(logging.WARNING)  # its connect/disconnect lines repeat ours


def simulated_settings(settings: Settings, sim: Any) -> Settings:
    creds = sim.credentials
    stem, ext = os.path.splitext(settings.journal_path)
    return dataclasses.replace(
        settings, futures_url=sim.url, api_key=creds.api_key, api_secret=creds.api_secret,
        api_passphrase=creds.api_passphrase, dry_run=False, journal_path=f"{stem}.simulate{ext or '.sqlite3'}",
        scan_interval_s=min(settings.scan_interval_s, 5.0))


def pick_universe(client: KuCoinClient, settings: Settings) -> list[str]:
    """The configured symbols, or the active USDT perpetuals above the volume floor, busiest first."""
    markets = client.markets
    if settings.symbols:
        unknown = [s for s in settings.symbols if s not in markets]
        if unknown:
            raise ConfigError(f"SYMBOLS has markets KuCoin Futures does not list: {', '.join(unknown)}",
                              variable="SYMBOLS")
        return list(settings.symbols)
    candidates = []
    for symbol, m in markets.items():
        if m.get("swap") and m.get("settle") == "USDT" and m.get("active"):
            turnover = float(m["info"].get("turnoverOf24h") or 0)
            if turnover >= settings.min_volume_usdt:
                candidates.append((turnover, symbol))
    return [s for _, s in sorted(candidates, reverse=True)[:settings.max_symbols]]


def backfill(client: KuCoinClient, universe: list[str], timeframe: str) -> None:
    """Subscribe every symbol at once (one wait for all), then read its history once; a symbol
    whose data did not arrive in time is read from REST. A progress bar on stderr covers both
    waits when stderr is a terminal (none in a log file or a pipe); one INFO line sums it up."""
    t0 = time.monotonic()
    sources: collections.Counter[str] = collections.Counter()
    # disable=None: no bar, hence no carriage return, unless stderr is a terminal. While a bar
    # is drawn, log lines are written above it instead of through it.
    with tqdm(total=len(universe), desc="waiting for market data", unit="symbol", file=sys.stderr,
              disable=None, leave=False) as bar, \
            (contextlib.nullcontext() if bar.disable else logging_redirect_tqdm()):
        client.prefetch(universe, timeframes=(timeframe,), on_symbol_done=lambda _symbol: bar.update())
        bar.set_description(f"reading {timeframe} history", refresh=False)
        bar.reset()
        for symbol in universe:
            sources[client.get_ohlcv(symbol, timeframe, limit=HISTORY_CANDLES).source] += 1
            bar.update()
    elapsed_s = time.monotonic() - t0
    if client.websocket is None:
        log.info("backfill: %d symbols in %.1fs from REST", len(universe), elapsed_s)
    else:
        log.info("backfill: %d symbols in %.1fs (%d from the WebSocket, %d from REST)", len(universe),
                 elapsed_s, sources["websocket"], sources["rest"])


def make_broker(client: KuCoinClient, settings: Settings, journal: Journal, mode: str) -> Any:
    if mode != "paper":
        return client
    contracts = {s: PaperContract(float(m["contractSize"]), int(m["precision"]["amount"] or 1),
                                  float(m.get("taker") or 0.0006), int(m["limits"]["leverage"]["max"] or 1))
                 for s, m in client.markets.items() if m.get("settle") == "USDT" and m.get("linear")}

    def quote(symbol: str) -> tuple[float, float]:
        ticker = client.get_ticker(symbol)
        return ticker["bid"], ticker["ask"]

    broker = PaperBroker(quote, contracts, balance_usdt=settings.paper_balance_usdt, journal=journal)
    if broker.restore():
        log.info("paper account restored from the journal")
    return broker


class StartAborted(Exception):
    """The run was stopped (SIGINT/SIGTERM) while a start-up step was still being retried."""


def retry_transient(what: str, fn: Callable[[], T], stop: threading.Event, *,
                    retry: Callable[[BaseException], bool]) -> T:
    """Return fn(), retrying (with a doubling backoff, logged) the errors `retry` accepts, until
    `stop` is set (StartAborted). Auth, configuration and argument errors always end the run."""
    delay = START_RETRY_FIRST_S
    while True:
        try:
            return fn()
        except (AuthError, ConfigError, InvalidArgument, ClientClosed):
            if stop.is_set():
                raise StartAborted(what) from None
            raise
        except KuCoinError as exc:
            if not retry(exc):
                raise
            log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
        if stop.wait(delay):
            raise StartAborted(what)
        delay = min(delay * 2, START_RETRY_MAX_S)


def _after_start_transient(exc: BaseException) -> bool:
    # The exchange answered a moment ago: a timeout, a dropped connection, a 5xx or a rate limit
    # now is a passing fault, not a reason to give up.
    return isinstance(exc, (TransportError, ProtocolError)) or exchange_busy(exc)


def auth_hint(exc: AuthError) -> str:
    """Which setting a KuCoin auth refusal most likely points at (one sentence, no secret in it)."""
    hint = AUTH_HINTS.get(exc.code or "")
    if hint is None:
        return f"check KUCOIN_API_KEY, KUCOIN_API_SECRET and KUCOIN_API_PASSPHRASE ({exc})"
    return f"{hint} (KuCoin code {exc.code})"


def connect(client: KuCoinClient, settings: Settings, mode: str) -> None:
    """Load the markets, check the API keys (when set) with one private call, then start the
    WebSocket: bad keys are reported before a socket opens or a symbol is subscribed. Paper
    trading needs no keys, so there refused keys are a warning; elsewhere the AuthError ends the run."""
    if settings.has_credentials:
        try:
            client.check_credentials()
        except AuthError as exc:
            if mode != "paper":
                raise
            log.warning("the API keys were refused (paper trading needs none, so it goes on): %s", auth_hint(exc))
    client.start()


def close_on_stop(stop: threading.Event, finished: threading.Event, client: KuCoinClient) -> threading.Thread:
    """After SIGINT/SIGTERM, give the run STOP_GRACE_S to end by itself, then close the client:
    queued REST calls (a scan waiting out a rate-limit reset) fail with ClientClosed at once, so
    the bot exits within seconds whatever is queued. Calls already sent finish normally."""
    def watch() -> None:
        stop.wait()
        if not finished.wait(STOP_GRACE_S):
            log.info("stopping: dropping queued exchange calls")
            client.close()

    thread = threading.Thread(target=watch, name="bot-stop", daemon=True)
    thread.start()
    return thread


def summary_text(trader: Trader, journal: Journal, client: KuCoinClient, since_ms: int, mode: str) -> str:
    """The end-of-run summary (read before the client closes: open positions are marked at the
    last price)."""
    counts = dict(client.source_counts)
    s = summary(journal, since_ms=since_ms, source_counts=counts)
    funding = sum(fee for _, _, fee in journal.funding(since_ms))  # settlements booked from the private feed
    ws_share = "n/a" if s.ws_share is None else f"{s.ws_share:.0%}"
    start = trader.stats.starting_equity
    lines = [
        f"=== Summary ({mode}) ===",
        f"starting equity: {'n/a' if start is None else f'{start:.2f} USDT'}   "
        f"unrealised PnL of open positions: {_open_pnl_text(trader.open_pnl())}",
        f"positions opened: {trader.stats.entries} ({', '.join(trader.stats.opened) or 'none'}); "
        f"closed: {trader.stats.exits}; still open: {len(trader.holdings)}",
        f"round trips: {s.trades}   realised PnL: {s.realised_pnl:.4f} USDT   fees: {s.fees:.4f} USDT   "
        f"funding: {funding:+.4f} USDT   net: {s.net_pnl + funding:.4f} USDT",
        f"max drawdown: {s.max_drawdown:.4f} USDT ({s.max_drawdown_fraction:.2%})",
        f"market data: websocket {counts.get('websocket', 0)}, rest {counts.get('rest', 0)} "
        f"(websocket share {ws_share})",
        f"orders rejected: {trader.stats.rejected}, outcome unknown: {trader.stats.unknown} "
        f"(resolved by lookup: {trader.stats.resolved}); failed exchange calls: {trader.stats.scan_errors}",
    ]
    return "\n".join(lines)


def _open_pnl_text(held: list[tuple[str, str, int, float | None]]) -> str:
    if not held:
        return "0.00 USDT (no open position)"
    known = [upnl for _symbol, _side, _contracts, upnl in held if upnl is not None]
    text = f"{sum(known):+.2f} USDT on {len(held)} open position{'s' if len(held) > 1 else ''}"
    return text if len(known) == len(held) else f"{text} ({len(held) - len(known)} without a price)"


def run(args: argparse.Namespace, settings: Settings, stop: threading.Event) -> int:
    mode = "simulate" if args.simulate else "live" if settings.live else "paper"
    started_ms = int(time.time() * 1000)
    with contextlib.ExitStack() as stack:
        if args.simulate:
            from kucoin_sim import Simulator

            sim = stack.enter_context(Simulator(seed=args.seed, vol_scale=SIM_VOL_SCALE))
            settings = simulated_settings(settings, sim)
            with contextlib.suppress(FileNotFoundError):
                for suffix in ("", "-wal", "-shm"):
                    os.remove(settings.journal_path + suffix)  # a new exchange: a new journal
            log.info("simulated KuCoin Futures on %s (seed %d)", sim.url, args.seed)
        if mode == "live":
            log.warning("LIVE TRADING: real orders with real money on %s (DRY_RUN=false)", settings.futures_url)
        client = KuCoinClient.from_settings(settings)
        stack.callback(client.close)
        finished = threading.Event()
        stack.callback(finished.set)
        close_on_stop(stop, finished, client)
        try:
            retry_transient("connecting", lambda: connect(client, settings, mode), stop, retry=exchange_busy)
        except StartAborted:
            log.info("stopped during start-up")
            return 0
        except AuthError as exc:
            print(f"error: KuCoin Futures at {settings.futures_url} refused the API keys: {auth_hint(exc)}",
                  file=sys.stderr)
            return 1
        except TransportError as exc:
            print(f"error: KuCoin Futures at {settings.futures_url} is unreachable: {exc}. "
                  "Check the network and settings, or run offline with: python bot.py --simulate",
                  file=sys.stderr)
            return 1
        if mode != "live":  # (live said so above, as a warning)
            log.info("mode: %s", mode)
        log.info(WS_ENABLED if settings.enable_websocket else WS_DISABLED)
        try:  # a stop now closes the client under it: that is a stop, not an error
            universe = retry_transient("reading the markets", lambda: pick_universe(client, settings), stop,
                                       retry=_after_start_transient)
        except StartAborted:
            log.info("stopped during start-up")
            return 0
        if not universe:
            print("error: no market matches SYMBOLS / MIN_VOLUME_USDT", file=sys.stderr)
            return 2
        log.info("universe: %d symbols, timeframe %s", len(universe), settings.timeframe)
        if mode != "paper":  # one clear error for an account this bot cannot trade (AccountModeError)
            try:
                retry_transient("checking the account", lambda: client.check_account_modes(
                    universe, settings.margin_mode), stop, retry=_after_start_transient)
            except StartAborted:
                log.info("stopped during start-up")
                return 0
        journal = stack.enter_context(Journal(settings.journal_path))
        broker = make_broker(client, settings, journal, mode)
        events = EventBus()
        ops = stack.enter_context(Ops(settings, events=events, mode=mode))  # web server, alerts, heartbeat
        trader = Trader(client, broker, journal, settings, universe=universe, events=events)
        ops.start(trader=trader, client=client, journal=journal)
        try:
            retry_transient("backfill", lambda: backfill(client, universe, settings.timeframe), stop,
                            retry=_after_start_transient)
            retry_transient("reconciling the journal with the exchange", trader.reconcile, stop,
                            retry=_after_start_transient)
        except StartAborted:
            log.info("stopped during start-up")
            return 0
        events.emit(EventKind.STARTUP, f"trading in {mode} mode: {len(universe)} symbols on {settings.timeframe} "
                    "candles", mode=mode, symbols=len(universe), dashboard=ops.dashboard)
        try:
            trader.run(stop, duration_s=args.duration, once=args.once)
        except Exception as exc:  # a bug: say so before the traceback ends the run
            events.emit(EventKind.ERROR, f"the bot stops on an unexpected {type(exc).__name__}", error=type(exc).__name__)
            events.emit(EventKind.SHUTDOWN, "shut down by an unexpected error", reason="crash")
            raise
        finished.set()
        reason = "signal" if stop.is_set() else "once" if args.once else "duration"
        events.emit(EventKind.SHUTDOWN, f"shut down ({reason}): {trader.stats.entries} entries, {trader.stats.exits} "
                    f"exits, {len(trader.holdings)} positions left open", reason=reason,
                    entries=trader.stats.entries, exits=trader.stats.exits, open_positions=len(trader.holdings))
        log.info("stopping: no new entries; closing the WebSocket and flushing the journal")
        report = summary_text(trader, journal, client, started_ms, mode)
    # Printed once the client, the WebSocket and the journal are closed: no log line follows it.
    print(report, flush=True)
    return 0


def _simulator(seed: int) -> Any:
    from kucoin_sim import Simulator

    return Simulator(seed=seed)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["backtest"]:  # python bot.py backtest ...: tradebot/backtest/cli.py
        from kucoin_sim.candle_history import HISTORY_VERSION
        from tradebot.backtest.cli import Hooks, main as backtest

        hooks = Hooks(pick_universe, configure_logging, _simulator, load_settings, simulator_history=HISTORY_VERSION)
        return backtest(argv[1:], hooks=hooks)
    args = parse_args(argv)
    env_file = args.env_file or DEFAULT_ENV_FILE
    try:
        if args.env_file is not None and not os.path.isfile(env_file):
            raise ConfigError(f"--env-file {env_file}: no such file")
        settings = load_settings(dotenv_path=env_file)
        if not args.simulate and not settings.dry_run and not settings.has_credentials:
            raise ConfigError("DRY_RUN=false asks for live trading, but KUCOIN_API_KEY, KUCOIN_API_SECRET "
                              "and KUCOIN_API_PASSPHRASE are not set: set them, or set DRY_RUN=true "
                              "for paper trading", variable="DRY_RUN")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    exposed = env_file_warning(env_file)
    if exposed is not None:
        log.warning("%s", exposed)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stop.set())
    try:
        return run(args, settings, stop)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KuCoinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
