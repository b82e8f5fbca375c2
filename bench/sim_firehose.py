"""Measure the simulator's WebSocket firehose: messages per second pushed on loopback.

    python bench/sim_firehose.py [--total 400000] [--clients 1] [--runs 3]

Starts `python -m kucoin_sim` in its own process, connects raw-socket receivers that subscribe to
tickerV2 and count whole frames (a minimal RFC 6455 parser reading 1 MiB chunks), triggers
/sim/firehose, and prints the rate the simulator sent at and the rate the receivers got.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

from ceiling import raw_connect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_sim() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "kucoin_sim", "--port", "0", "--log-level", "WARNING"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    url = line.split("listening on ")[1].split()[0]
    return proc, url


def post(url: str) -> dict:
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.loads(resp.read())


def connect(base: str, symbol: str) -> tuple[socket.socket, bytes]:
    """A raw WebSocket subscribed to `symbol`'s tickerV2 (the handshake lives in ceiling.py)."""
    return raw_connect(base, [f"/contractMarket/tickerV2:{symbol}"])


def count_frames(sock: socket.socket, leftover: bytes, target: int, done: threading.Event,
                 result: list) -> None:
    """Count server frames until `target` tickerV2 pushes arrived (welcome/ack/other pushes skipped)."""
    buf, n, t_first = leftover, 0, None
    sock.settimeout(30)
    while n < target:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
        pos, end = 0, len(buf)
        while end - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if end - pos < head + length:
                break
            if buf.startswith(b'{"topic":"/contractMarket/tickerV2', pos + head):
                if t_first is None:
                    t_first = time.perf_counter()
                n += 1
            pos += head + length
        buf = buf[pos:]
    result.append((n, t_first, time.perf_counter()))
    done.set()


def run_once(base: str, total: int, clients: int) -> tuple[float, float]:
    socks = [connect(base, "XBTUSDTM") for _ in range(clients)]
    post(base + "/sim/pause_market?paused=true")
    results: list = []
    threads = []
    for sock, rest in socks:
        done = threading.Event()
        t = threading.Thread(target=count_frames, args=(sock, rest, total, done, results))
        t.start()
        threads.append(t)
    stats = post(f"{base}/sim/firehose?total={total}&symbols=XBTUSDTM")
    for t in threads:
        t.join()
    for sock, _ in socks:
        sock.close()
    got = sum(r[0] for r in results)
    span = max(r[2] for r in results) - min(r[1] for r in results if r[1])
    return stats["msgsPerS"], got / span


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--total", type=int, default=400_000, help="frames per run (per client)")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    proc, base = start_sim()
    try:
        sent, received = [], []
        for _ in range(args.runs):
            s, r = run_once(base, args.total, args.clients)
            sent.append(s)  # already aggregate over clients
            received.append(r)
        print(f"simulator firehose, {args.clients} client(s), {args.total} tickerV2 frames each, {args.runs} runs")
        print(f"  sent by simulator (aggregate): median {statistics.median(sent):,.0f} msgs/s (min {min(sent):,.0f}, max {max(sent):,.0f})")
        print(f"  received (raw socket, aggregate): median {statistics.median(received):,.0f} msgs/s")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
