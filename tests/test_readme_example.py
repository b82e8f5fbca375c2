"""README's library example runs as printed, against the simulator instead of port 8080."""
from __future__ import annotations

import re
from pathlib import Path

from kucoin_sim import Simulator

README = Path(__file__).resolve().parent.parent / "README.md"
PRINTED_URL = "http://127.0.0.1:8080"


def _library_example() -> str:
    text = README.read_text()
    section = text[text.index("## Using the library"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "README's 'Using the library' has no python block"
    return match.group(1)


def test_the_readme_library_example_runs_on_the_simulator() -> None:
    code = _library_example()
    assert PRINTED_URL in code and '"sim-key", "sim-secret", "sim-passphrase"' in code
    with Simulator(seed=3) as sim:  # the simulator's default keys, as in `python -m kucoin_sim`
        scope: dict = {}
        exec(compile(code.replace(PRINTED_URL, sim.url), str(README), "exec"), scope)
        positions = sim.positions()
    order, filled, closing = scope["order"], scope["filled"], scope["closing"]
    assert order["id"] and order["clientOrderId"] and order["status"] is None  # ids only, as said
    assert filled["status"] == "closed" and filled["filled"] == 1
    assert closing["reduceOnly"] is True and closing["clientOrderId"] != order["clientOrderId"]
    assert scope["ticker"]["source"] in ("websocket", "rest") and len(scope["rows"]) > 0
    assert positions == []  # closed by the example
