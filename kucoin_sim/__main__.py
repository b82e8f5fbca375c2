"""Run the simulator standalone: python -m kucoin_sim --port 8080"""
from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import threading

from .server import DEFAULT_API_KEY, DEFAULT_API_PASSPHRASE, DEFAULT_API_SECRET, Simulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m kucoin_sim",
        description="A local KuCoin Futures exchange (REST + WebSocket) on 127.0.0.1. Point a client's "
                    "futures REST URL at the printed address; bullet-public/-private hand out the "
                    "WebSocket endpoint. Control endpoints live under /sim/ (see kucoin_sim/README.md).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=int, default=8080, help="TCP port for REST and WebSocket; 0 picks a free one (default 8080)")
    p.add_argument("--seed", type=int, default=1, help="seed of the simulated market: the same seed gives the same prices, books and trades (default 1)")
    p.add_argument("--api-key", default=DEFAULT_API_KEY, help=f"the one API key the account accepts (default {DEFAULT_API_KEY!r})")
    p.add_argument("--api-secret", default=DEFAULT_API_SECRET, help=f"its secret, used to verify KC-API-SIGN (default {DEFAULT_API_SECRET!r})")
    p.add_argument("--api-passphrase", default=DEFAULT_API_PASSPHRASE, help=f"its passphrase (default {DEFAULT_API_PASSPHRASE!r})")
    p.add_argument("--tick-ms", type=int, default=100, help="market clock step in ms (default 100)")
    p.add_argument("--vol-scale", type=float, default=1.0, help="multiplier on every contract's volatility (default 1.0)")
    p.add_argument("--ping-interval-ms", type=int, default=18000, help="pingInterval advertised by the bullet endpoints (default 18000)")
    p.add_argument("--ping-timeout-ms", type=int, default=10000, help="pingTimeout advertised; a client silent for interval+timeout is closed (default 10000)")
    p.add_argument("--no-rate-limits", action="store_true", help="disable the resource-pool rate limits (429000)")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sim = Simulator(host=args.host, port=args.port, seed=args.seed, api_key=args.api_key,
                    api_secret=args.api_secret, api_passphrase=args.api_passphrase,
                    tick_ms=args.tick_ms, vol_scale=args.vol_scale,
                    ping_interval_ms=args.ping_interval_ms, ping_timeout_ms=args.ping_timeout_ms,
                    rate_limits=not args.no_rate_limits)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        sim.start()
    except OSError as exc:  # the bind failed: one line, not the event loop's traceback
        sys.exit(_bind_error(exc, host=args.host, port=args.port))
    try:
        print(f"kucoin_sim listening on {sim.url} (WebSocket {sim.ws_url}), seed {args.seed}", flush=True)
        stop.wait()
    finally:
        sim.stop()


def _bind_error(exc: OSError, *, host: str, port: int) -> int:
    if exc.errno == errno.EADDRINUSE:
        message = (f"error: port {port} on {host} is in use (another simulator or server?); "
                   "pick another with --port N, or --port 0 for a free one")
    else:
        message = f"error: cannot listen on {host} port {port}: {exc.strerror or exc}"
    print(message, file=sys.stderr, flush=True)
    return 2


if __name__ == "__main__":
    main()
