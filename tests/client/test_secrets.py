"""Loopback test: KuCoinClient never shows its credentials or WebSocket tokens (public and private:
the account feed's bullet-private ones) — not in log records (every logger at DEBUG),
stdout/stderr, reprs, health(), nor the text or traceback of any error it raises — on succeeding,
refused, ambiguous, timed-out, unauthenticated and token-expired paths."""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from kucoin_client import KuCoinClient
from kucoin_futures.errors import AuthError, InsufficientFunds, InvalidOrder, TransportError
from kucoin_sim import Simulator
from tests.helpers import wait_until

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
KEY, SECRET, PASSPHRASE = "key-6c1f0e93ab27", "secret-d84b17e2c05f", "pass-2a9e5c71f3b0"
WRONG_SECRET = "secret-wrong-71c4e0a9d3"
REQUEST_TIMEOUT_S = 0.3


def passphrase_header(secret: str, passphrase: str) -> str:
    # KC-API-PASSPHRASE of a v2 key: base64(HMAC-SHA256(secret, passphrase)) (protocol notes section 4)
    return base64.b64encode(hmac.new(secret.encode(), passphrase.encode(), hashlib.sha256).digest()).decode()


def error_texts(act: Callable[[], Any], expected: type | tuple[type, ...]) -> list[str]:
    with pytest.raises(expected) as caught:
        act()
    error = caught.value
    return [str(error), repr(error), "".join(traceback.format_exception(error))]  # with its causes


def test_client_never_reveals_credentials_or_tokens(caplog: pytest.LogCaptureFixture,
                                                    capsys: pytest.CaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with Simulator(seed=3, api_key=KEY, api_secret=SECRET, api_passphrase=PASSPHRASE) as sim:
        client = KuCoinClient(KEY, SECRET, PASSPHRASE, futures_url=sim.url, request_timeout_s=REQUEST_TIMEOUT_S)
        intruder = KuCoinClient(KEY, WRONG_SECRET, PASSPHRASE, futures_url=sim.url, enable_websocket=False)
        texts += [repr(client), repr(intruder)]
        with client, intruder:
            client.get_ticker(BTC)  # the WebSocket: a bullet token
            client.get_ohlcv(BTC, "1m", limit=10)
            client.get_order_book(BTC)
            client.get_balance()
            client.create_market_order(BTC, "buy", 1)
            sim.lose_response("POST", "/api/v1/orders", mode="reset")
            client.create_market_order(BTC, "buy", 1)  # ambiguous, resolved by clientOid
            sim.lose_response("POST", "/api/v1/orders", mode="timeout")
            client.create_market_order(BTC, "buy", 1)  # timed out, resolved by clientOid
            bid = client.get_ticker(ETH)["bid"]
            resting = client.create_limit_order(ETH, "buy", 1, round(bid * 0.9, 2))
            client.cancel_order(resting["id"], ETH)
            client.close_position(BTC)
            texts += error_texts(intruder.get_balance, AuthError)
            texts += error_texts(lambda: intruder.create_market_order(BTC, "buy", 1), AuthError)
            texts += error_texts(lambda: client.create_market_order(BTC, "buy", 900_000),
                                 (InsufficientFunds, InvalidOrder))
            with sim.delay_rest(REQUEST_TIMEOUT_S * 3, "GET", "/api/v1/orders"):
                texts += error_texts(client.get_open_orders, TransportError)
            wait_until(lambda: client.get_balance()["source"] == "websocket", what="the private feed's cache")
            sim.expire_tokens()  # both feeds: error 401, reconnect with fresh tokens
            wait_until(lambda: client.health()["private_websocket"]["reconnects"] >= 1
                       and client.health()["private_websocket"]["state"] == "RUNNING", what="a private reconnect")
            texts += [repr(client), str(client.health()), repr(client.websocket), str(client.websocket.stats())]
        tokens = sim.call(lambda: list(sim.hub.tokens))
        private_tokens = sim.call(lambda: [t for t, info in sim.hub.tokens.items() if info.private])
        texts += [repr(client), str(client.health())]
    records = [r for r in caplog.records if not r.name.startswith(("kucoin_sim", "aiohttp"))]  # the exchange's own
    texts += [r.getMessage() for r in records] + [r.exc_text or "" for r in records]
    output = capsys.readouterr()
    texts += [output.out, output.err]
    secrets = [KEY, SECRET, PASSPHRASE, WRONG_SECRET, passphrase_header(SECRET, PASSPHRASE),
               passphrase_header(WRONG_SECRET, PASSPHRASE), *tokens]
    leaks = [(secret, text[:160]) for text in texts for secret in secrets if secret in text]
    # the test can fail: a token was issued, and ccxt logged signed requests (values masked)
    assert len(tokens) >= 1 and any("KC-API-KEY" in r.getMessage() for r in records)
    assert len(private_tokens) >= 2 and set(private_tokens) <= set(tokens)  # bullet-private, renewed at the 401
    assert leaks == []
