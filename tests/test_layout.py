"""The architecture is visible in the tree and kept: packages by layer, imports pointing downward
only (function-level imports included), no cycles, a root holding the entry points."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = {"kucoin_client.py", "kucoin_websocket.py", "api_priority.py", "config.py", "bot.py"}
# layer -> the layers it may import (the root entry points re-export one layer each)
ALLOWED = {
    "kucoin_futures.errors": set(),
    "kucoin_futures.protocol": {"kucoin_futures.errors"},
    "kucoin_futures.scheduling": set(),
    "kucoin_futures.rest": {"kucoin_futures.errors", "kucoin_futures.protocol", "kucoin_futures.scheduling"},
    "kucoin_futures.orders": {"kucoin_futures.errors", "kucoin_futures.protocol", "kucoin_futures.rest",
                              "kucoin_futures.scheduling"},
    "kucoin_futures.ws": {"kucoin_futures.errors", "kucoin_futures.protocol", "kucoin_futures.rest",
                          "kucoin_futures.scheduling"},
    "kucoin_futures.client": {"kucoin_futures.errors", "kucoin_futures.protocol", "kucoin_futures.rest",
                              "kucoin_futures.orders", "kucoin_futures.scheduling", "kucoin_futures.ws"},
    # the bot uses the library through KuCoinClient: never ws/, rest/, orders/ or scheduling/
    "tradebot": {"kucoin_futures.errors", "kucoin_futures.protocol", "kucoin_futures.client"},
    "kucoin_client": {"kucoin_futures.client"},
    "kucoin_websocket": {"kucoin_futures.ws"},
    "api_priority": {"kucoin_futures.scheduling"},
    "config": {"kucoin_futures.errors", "kucoin_futures.protocol"},  # pure: no ccxt (checked below)
    "bot": {"config", "kucoin_client", "kucoin_futures.errors", "tradebot"},
}
MAX_LINES = 450
TOO_LONG_YET: set[str] = set()  # modules allowed over MAX_LINES for now (none)


def _modules() -> dict[str, Path]:
    found = {path.stem: path for path in ROOT.glob("*.py")}
    for package in ("kucoin_futures", "tradebot"):
        for path in (ROOT / package).rglob("*.py"):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[dotted.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every module of ours that `path` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name in MODULES}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "kucoin_futures" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


GRAPH = {module: _imports(path) for module, path in MODULES.items()}


def test_the_root_holds_only_the_entry_points() -> None:
    assert {path.name for path in ROOT.glob("*.py")} == ENTRY_POINTS


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_downward(module: str) -> None:
    layer = _layer(module)
    strays = {target for target in GRAPH[module]
              if _layer(target) != layer and _layer(target) not in ALLOWED[layer]}
    assert strays == set(), f"{module} imports {sorted(strays)}"


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])


def test_no_star_imports_and_an_empty_package_root() -> None:
    stars = [str(path.relative_to(ROOT)) for path in MODULES.values() if "import *" in path.read_text()]
    assert stars == []
    assert GRAPH["kucoin_futures"] == set() and GRAPH["tradebot"] == set()


def test_settings_do_not_pull_in_ccxt_or_picows() -> None:
    code = "import sys, config; print(sorted({'ccxt', 'picows', 'aiohttp'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_modules_stay_readable_in_length() -> None:
    long = {str(path.relative_to(ROOT)) for path in MODULES.values()
            if len(path.read_text().splitlines()) > MAX_LINES}
    assert long <= TOO_LONG_YET, f"over {MAX_LINES} lines: {sorted(long - TOO_LONG_YET)}"
