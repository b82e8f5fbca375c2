"""kucoin_futures.errors: every exception the library raises on purpose is in the one documented tree."""
from __future__ import annotations

import re
from pathlib import Path

import kucoin_futures.rest.ccxt_seam as kucoin_ccxt
import kucoin_client
import kucoin_futures.errors as kucoin_errors
from kucoin_futures.errors import ExchangeRejected, KuCoinError, OrderNotFound, OrderNotPlaced, TransportError

ROOT = Path(__file__).resolve().parent.parent
EXCEPTIONS = sorted(name for name in kucoin_errors.__all__
                    if isinstance(getattr(kucoin_errors, name), type)
                    and issubclass(getattr(kucoin_errors, name), Exception))


def test_order_lookup_errors_are_in_the_tree() -> None:
    """Issue 13.8: get_order of an unknown order raised kucoin_ccxt.OrderNotFound, outside the tree."""
    assert (OrderNotFound.__mro__[1], OrderNotPlaced.__mro__[1]) == (ExchangeRejected, TransportError)
    assert issubclass(OrderNotFound, KuCoinError) and issubclass(OrderNotPlaced, KuCoinError)
    assert {"OrderNotFound", "OrderNotPlaced"} <= set(kucoin_errors.__all__) & set(kucoin_client.__all__)
    # one class per name wherever it is imported from (old `from kucoin_ccxt import ...` included)
    for module in (kucoin_ccxt, kucoin_client):
        assert (module.OrderNotFound, module.OrderNotPlaced) == (OrderNotFound, OrderNotPlaced)


def _drawn(doc: str) -> list[str]:
    # a branch line of the tree: "├── Name   comment" or "└── Name" at the end of its line
    return [name for name in EXCEPTIONS if name == "KuCoinError" or re.search(rf"── {name}(  |$)", doc, re.M)]


def test_error_tree_docstrings_draw_every_exception() -> None:
    assert _drawn(kucoin_errors.__doc__) == EXCEPTIONS  # drawn once: kucoin_protocol's copy is gone


def test_readme_error_paragraph_names_the_order_lookup_errors() -> None:
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("are one typed tree (`kucoin_futures/errors.py`"):]
    paragraph = paragraph[:paragraph.index("\n\n")]
    assert "`OrderNotFound`" in paragraph and "`OrderNotPlaced`" in paragraph and "`NoPosition`" in paragraph
