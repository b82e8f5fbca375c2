"""One bot process: `python bot.py` started with the soak's settings, its output in a file.

The environment is the caller's less any KuCoin credential or proxy (a developer's real keys must
never reach a soak), plus the soak's settings; `--env-file` names an empty file so a developer's
.env does not leak in either. PYTHONUNBUFFERED makes every line reach the file before a SIGKILL.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_STRIP_PREFIXES = ("KUCOIN_",)
_STRIP_NAMES = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"})


def bot_environment(settings: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the bot's environment: `base` (default os.environ) cleaned, then `settings`."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith(_STRIP_PREFIXES) and k not in _STRIP_NAMES}
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class BotProcess:
    """A started bot: signal it, wait for it, read its /proc figures."""

    def __init__(self, index: int, *, env: Mapping[str, str], env_file: str, output_path: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.index = index
        self.output_path = output_path
        self._clock = clock
        with open(output_path, "wb") as out:  # the child keeps its own copy of the descriptor
            self._proc = subprocess.Popen(
                [sys.executable, str(REPO / "bot.py"), "--env-file", env_file], cwd=str(REPO),
                env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def exit_code(self) -> int | None:
        """The exit code once it has exited (negative: killed by that signal), else None."""
        return self._proc.poll()

    def terminate(self, *, limit_s: float, give_up_s: float) -> tuple[float | None, int | None]:
        """SIGTERM, then wait: return (seconds to exit, exit code). Past give_up_s it is killed
        and the seconds are None (it never exited by itself)."""
        start = self._clock()
        self._proc.send_signal(signal.SIGTERM)
        try:
            code = self._proc.wait(timeout=max(limit_s, give_up_s))
        except subprocess.TimeoutExpired:
            return None, self.kill()
        return self._clock() - start, code

    def kill(self) -> int:
        """SIGKILL and reap; return the exit code."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
        return self._proc.wait()
