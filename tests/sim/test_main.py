"""python -m kucoin_sim: a port it cannot bind is one line on stderr and exit code 2."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers import TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]


def test_busy_port_is_one_line_and_exit_2() -> None:
    """Issue 13.8: a port already in use printed the event loop's 25-line traceback and exit 1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "kucoin_sim", "--port", str(port)], cwd=ROOT,
                              capture_output=True, text=True, timeout=TIMEOUT_S * 6)

    lines = done.stderr.splitlines()
    assert (done.returncode, done.stdout) == (2, "")
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith(f"error: port {port} on 127.0.0.1 is in use")
