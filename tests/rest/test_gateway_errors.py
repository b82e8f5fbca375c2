"""The ccxt seam without a network: exception mapping, response parsing, redaction."""
from __future__ import annotations

import logging
import threading

import ccxt
import pytest

from kucoin_futures.errors import OrderNotFound
from kucoin_futures.rest.ccxt_seam import (
    HttpResponse,
    RateLimitHeaders,
    RedactingLogger,
    ResponseTap,
    map_ccxt_errors,
    parse_http_response,
    parse_rate_limit_headers,
    redact,
    translate_ccxt_error,
)
from kucoin_futures.errors import (
    AuthError,
    ExchangeRejected,
    InsufficientFunds,
    InvalidArgument,
    InvalidOrder,
    OrderOutcomeUnknown,
    ProtocolError,
    RateLimited,
    TransportError,
)

HEADERS = {"gw-ratelimit-limit": "2000", "gw-ratelimit-remaining": "0", "gw-ratelimit-reset": "12500"}


def _response(status: int, code: str | None, message: str = "", headers: bool = False) -> HttpResponse:
    return HttpResponse(status, code, message, RateLimitHeaders(2000, 0, 12500) if headers else None)


def _summary(error: Exception) -> tuple:
    return (type(error), getattr(error, "code", None), getattr(error, "http_status", None),
            getattr(error, "retry_after_s", None), getattr(error, "client_oid", None))


# (ccxt exception, response, places_order) -> (our type, code, http_status, retry_after_s, client_oid)
CASES = [
    (ccxt.RateLimitExceeded("x"), _response(429, "429000", "Too Many", headers=True), False,
     (RateLimited, "429000", 429, 12.5, None)),
    (ccxt.RateLimitExceeded("x"), _response(429, "429000", "Too Many"), True,
     (RateLimited, "429000", 429, None, None)),
    (ccxt.DDoSProtection("x"), _response(418, None), False, (RateLimited, None, 418, None, None)),
    (ccxt.ExchangeError("x"), _response(200, "200002", "too many"), False,
     (RateLimited, "200002", 200, 10.0, None)),
    (ccxt.InvalidNonce("x"), _response(401, "400002", "skew"), True, (AuthError, "400002", 401, None, None)),
    (ccxt.AuthenticationError("x"), _response(401, "400005", "Invalid KC-API-SIGN"), False,
     (AuthError, "400005", 401, None, None)),
    (ccxt.PermissionDenied("x"), _response(401, "400007", "no"), False,
     (AuthError, "400007", 401, None, None)),
    (ccxt.OrderNotFound("x"), _response(404, "100001", "error.getOrder.orderNotExist"), False,
     (OrderNotFound, "100001", 404, None, None)),
    (ccxt.RequestTimeout("x"), None, True, (OrderOutcomeUnknown, None, None, None, "cid-1")),
    (ccxt.RequestTimeout("x"), None, False, (TransportError, None, None, None, None)),
    (ccxt.NetworkError("x"), None, True, (OrderOutcomeUnknown, None, None, None, "cid-1")),
    (ccxt.ExchangeNotAvailable("x"), _response(503, "500000", "Internal"), True,
     (OrderOutcomeUnknown, None, None, None, "cid-1")),
    (ccxt.ExchangeNotAvailable("x"), _response(503, "500000", "Internal"), False,
     (TransportError, "500000", 503, None, None)),
    (ccxt.ExchangeError("x"), _response(502, None), True, (OrderOutcomeUnknown, None, None, None, "cid-1")),
    (ccxt.BadResponse("x"), _response(200, None), False, (ProtocolError, None, None, None, None)),
    (ccxt.BadResponse("x"), _response(200, None), True, (OrderOutcomeUnknown, None, None, None, "cid-1")),
    (ccxt.InsufficientFunds("x"), _response(200, "300003", "Insufficient balance."), True,
     (InsufficientFunds, "300003", 200, None, None)),
    (ccxt.ExchangeError("x"), _response(200, "300018", "clientOid parameter repeated"), True,
     (InvalidOrder, "300018", 200, None, None)),
    (ccxt.BadRequest("x"), _response(400, "400100", "Price increment invalid."), True,
     (ExchangeRejected, "400100", 400, None, None)),
    (ccxt.ExchangeError("x"), _response(200, "123456", "new code"), False,
     (ExchangeRejected, "123456", 200, None, None)),
    (ccxt.ArgumentsRequired("x"), None, True, (InvalidArgument, None, None, None, None)),
    (ccxt.InvalidOrder("x"), _response(415, None), True, (InvalidOrder, "", 415, None, None)),
]


@pytest.mark.parametrize(("exc", "response", "places_order", "expected"), CASES,
                         ids=[f"{type(c[0]).__name__}-{i}" for i, c in enumerate(CASES)])
def test_translate_ccxt_error(exc, response, places_order, expected):
    error = translate_ccxt_error(exc, operation="op", places_order=places_order, client_oid="cid-1",
                                 response=response)
    assert _summary(error) == expected


def test_map_ccxt_errors_chains_and_maps_unexpected_errors_of_orders_only():
    with pytest.raises(TransportError) as read:
        with map_ccxt_errors("fetch_ticker"):
            raise ccxt.RequestTimeout("kucoinfutures GET http://127.0.0.1/api/v1/ticker")
    with pytest.raises(OrderOutcomeUnknown) as order:
        with map_ccxt_errors("create_order", places_order=True, client_oid="cid-9"):
            raise KeyError("orderId")  # ccxt could not read an answer that may mean "placed"
    with pytest.raises(KeyError):
        with map_ccxt_errors("fetch_ticker"):
            raise KeyError("a bug in a read is a bug")
    assert isinstance(read.value.__cause__, ccxt.RequestTimeout)
    assert (order.value.client_oid, type(order.value.__cause__)) == ("cid-9", KeyError)
    assert str(read.value) == "fetch_ticker: RequestTimeout, no response"


@pytest.mark.parametrize(("headers", "expected"), [
    (HEADERS, RateLimitHeaders(2000, 0, 12500)),
    ({"GW-RateLimit-Limit": "100", "gw-ratelimit-remaining": "150", "gw-ratelimit-reset": "1"},
     RateLimitHeaders(100, 100, 1)),
    ({"gw-ratelimit-limit": "2000", "gw-ratelimit-remaining": "1"}, None),
    ({**HEADERS, "gw-ratelimit-reset": "soon"}, None),
    ({**HEADERS, "gw-ratelimit-limit": "0"}, None),
    ({}, None),
])
def test_parse_rate_limit_headers(headers, expected):
    assert parse_rate_limit_headers(headers) == expected


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, '{"code":"200000","data":{}}', HttpResponse(200, None, "", None)),
    (200, '{"code": "200000", "data": 1}', HttpResponse(200, None, "", None)),
    (200, '{"code":"300003","msg":"Insufficient balance."}',
     HttpResponse(200, "300003", "Insufficient balance.", None)),
    (503, "<html>bad gateway</html>", HttpResponse(503, None, "", None)),
    (401, '{"code":"400005"}', HttpResponse(401, "400005", "", None)),
    (200, "[1, 2]", HttpResponse(200, None, "", None)),
])
def test_parse_http_response(status, body, expected):
    assert parse_http_response(status, {}, body) == expected


def test_response_tap_keeps_the_last_response_per_thread_and_installs_once():
    class Exchange:
        def on_rest_response(self, *args):
            return args[5].strip()

    exchange = Exchange()
    tap = ResponseTap.install(exchange)
    body = exchange.on_rest_response(429, "Too Many", "u", "GET", HEADERS, ' {"code":"429000","msg":"m"} ',
                                     {}, None)
    seen = tap.last()
    elsewhere = []
    other = threading.Thread(target=lambda: elsewhere.append(tap.last()))
    other.start()
    other.join()
    tap.reset()
    assert ResponseTap.install(exchange) is tap
    assert body == '{"code":"429000","msg":"m"}'
    assert seen == HttpResponse(429, "429000", "m", RateLimitHeaders(2000, 0, 12500))
    assert (elsewhere, tap.last()) == ([None], None)


def test_redact_masks_credentials_tokens_and_token_queries():
    headers = {"KC-API-KEY": "k", "KC-API-SIGN": "s", "KC-API-PASSPHRASE": "p", "KC-API-PARTNER-SIGN": "ps",
               "KC-API-TIMESTAMP": "1", "Content-Type": "application/json"}
    assert redact(headers) == {"KC-API-KEY": "***", "KC-API-SIGN": "***", "KC-API-PASSPHRASE": "***",
                               "KC-API-PARTNER-SIGN": "***", "KC-API-TIMESTAMP": "1",
                               "Content-Type": "application/json"}
    assert redact('{"data":{"token": "abc.def","x":1}}') == '{"data":{"token": "***","x":1}}'
    assert redact("ws://h/endpoint?token=abc&connectId=1") == "ws://h/endpoint?token=***&connectId=1"
    assert redact(42) == 42


def test_redacting_logger_masks_ccxt_request_lines(caplog):
    logger = RedactingLogger(logging.getLogger("tests.ccxt"))
    with caplog.at_level(logging.DEBUG, logger="tests.ccxt"):
        logger.debug("%s %s, Request: %s %s", "POST", "http://h/api/v1/orders",
                     {"KC-API-KEY": "the-key", "KC-API-PASSPHRASE": "hmac=="}, '{"clientOid":"c"}')
    assert [r.getMessage() for r in caplog.records] == [
        "POST http://h/api/v1/orders, Request: {'KC-API-KEY': '***', 'KC-API-PASSPHRASE': '***'} "
        '{"clientOid":"c"}']
