"""python -m soak --minutes N [--seed S]: soak the bot against a hosted simulator, print the report.

Exit code 0 if no invariant was violated, 1 otherwise, 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .driver import DEFAULT_STRATEGY, DEFAULT_SYMBOLS, SoakConfig, run_soak
from .invariants import check_all
from .report import exit_code, render


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m soak", description="Soak the bot against the simulator.")
    p.add_argument("--minutes", type=float, required=True, help="how long to soak")
    p.add_argument("--seed", type=int, default=1, help="seed of the market and of the fault plan (default 1)")
    p.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS), help="the bot's SYMBOLS (ccxt symbols)")
    p.add_argument("--strategy", default=DEFAULT_STRATEGY,
                   help=f"the bot's STRATEGY (default {DEFAULT_STRATEGY}, which trades every minute)")
    p.add_argument("--workdir", help="where the journal and the bot outputs go (default: a new temp dir)")
    p.add_argument("--fault-gap", type=float, metavar="SECONDS", help="mean seconds between faults")
    p.add_argument("--restart-gap", type=float, metavar="SECONDS", help="mean seconds between restarts")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    if args.minutes <= 0:
        p.error("--minutes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("kucoin_sim").setLevel(logging.WARNING)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    config = SoakConfig(duration_s=args.minutes * 60, seed=args.seed,
                        symbols=tuple(s.strip() for s in args.symbols.split(",") if s.strip()),
                        strategy=args.strategy, workdir=args.workdir, fault_gap_s=args.fault_gap,
                        restart_gap_s=args.restart_gap)
    recording = run_soak(config)
    results = check_all(recording)
    print(render(recording, results), flush=True)
    return exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
