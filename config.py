"""Settings of the library and the bot, loaded once from `.env` under the real environment.

    settings = load_settings()            # reads ./.env, then the process environment wins
    settings = load_settings({"DRY_RUN": "false"}, dotenv_path=None)   # explicit, for tests

Every key is documented in `.env.example`. A missing or malformed value raises ConfigError naming
the variable and what is expected. Defaults live only in the Settings field defaults. Secrets are
kept out of repr() and never appear in an error message.
"""
from __future__ import annotations

import ipaddress
import math
import os
import re
import shlex
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from kucoin_futures.errors import ConfigError
from kucoin_futures.protocol.types import TIMEFRAMES as KUCOIN_TIMEFRAMES
from kucoin_futures.protocol.wire import DEFAULT_FUTURES_URL

TIMEFRAMES = tuple(KUCOIN_TIMEFRAMES)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The WebSocket libraries (kucoin_futures/ws/transports.py TRANSPORT_NAMES; config may not import
# the ws layer, and a test keeps the two equal).
WS_TRANSPORTS = ("auto", "picows", "websocket-client")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
WEB_TOKEN_MIN_LENGTH = 16
PRIVATE_MODE_MASK = 0o077  # group and others: any bit set lets someone else read or change the secrets


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated settings; build with load_settings(). Units are in the names."""

    # credentials (all three or none); repr=False keeps them out of logs and tracebacks
    api_key: str | None = field(default=None, repr=False)
    api_secret: str | None = field(default=None, repr=False)
    api_passphrase: str | None = field(default=None, repr=False)
    futures_url: str = DEFAULT_FUTURES_URL
    enable_websocket: bool = True
    ws_transport: str = "auto"  # picows if it imports, else websocket-client
    dry_run: bool = True  # paper trading unless explicitly set to false (and keys are given)
    paper_balance_usdt: float = 10_000.0  # the paper account's starting balance
    # universe
    symbols: tuple[str, ...] = ()  # empty: every active USDT-margined perpetual above the floor
    min_volume_usdt: float = 10_000_000.0  # 24 h turnover floor for the universe
    max_symbols: int = 30
    timeframe: str = "5m"
    # risk
    leverage: int = 3
    margin_mode: str = "isolated"  # set on every traded contract before the first order (live, --simulate)
    risk_per_trade: float = 0.01  # fraction of equity lost if the stop is hit
    max_open_positions: int = 3
    daily_loss_limit: float = 0.05  # fraction of the day's starting equity; then no new entries
    flatten_on_daily_loss: bool = False
    stop_atr_multiple: float = 2.0
    take_profit_atr_multiple: float = 3.0
    trailing_atr_multiple: float = 0.0  # 0 disables the trailing stop
    max_data_age_s: float = 10.0  # no new entry on data older than this
    # sys.setswitchinterval while the WebSocket runs (0: keep CPython's 5 ms). The feed thread
    # waits up to one interval for the GIL while indicators compute: 0.5 ms keeps its p99 < 1 ms.
    gil_switch_interval_ms: float = 0.5
    # bot
    strategy: str = "tradebot.strategy:trend_momentum"  # module:function
    scan_interval_s: float = 30.0
    journal_path: str = "bot_journal.sqlite3"
    log_level: str = "INFO"
    # watching and steering (tradebot/ops): the web server, alerts, the heartbeat
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = 8787  # 0: a free port
    web_token: str | None = field(default=None, repr=False)  # None: a random token at each start
    # URLs whose path may carry a token (Slack, healthchecks.io): never logged past their host
    webhook_url: str | None = field(default=None, repr=False)
    telegram_token: str | None = field(default=None, repr=False)
    telegram_chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    heartbeat_url: str | None = field(default=None, repr=False)
    heartbeat_interval_s: float = 60.0

    @property
    def has_credentials(self) -> bool:
        return self.api_key is not None

    @property
    def live(self) -> bool:
        """Real orders: only with keys and DRY_RUN=false."""
        return self.has_credentials and not self.dry_run

    @property
    def web_is_loopback(self) -> bool:
        """True when WEB_HOST only accepts connections from this machine."""
        return is_loopback_host(self.web_host)


# -- parsers: each returns the value or raises ValueError with what is expected ---------------
def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("a non-empty value")
    return raw.strip()


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("true or false")


def _number(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"a number in {'(' if low_open else '['}{low:g}, {high:g}]") from None
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            raise ValueError(f"a number in {'(' if low_open else '['}{low:g}, {high:g}]")
        return value
    return parse


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        text = raw.strip()
        if not text.lstrip("+").isdigit() or not low <= int(text) <= high:
            raise ValueError(f"a whole number from {low} to {high}")
        return int(text)
    return parse


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip()
        if value not in options:
            raise ValueError("one of " + ", ".join(options))
        return value
    return parse


def _url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError("an http(s) base URL without a path, e.g. https://api-futures.kucoin.com")
    return raw.strip().rstrip("/")


def _symbols(raw: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in raw.split(",") if s.strip())
    for item in items:
        base, _, rest = item.partition("/")
        quote, _, settle = rest.partition(":")
        if not (base and quote and settle):
            # load_settings appends "(got <whole value>)"; name the bad item only when it is not all of it
            which = f", and {item!r} is not one" if len(items) > 1 else ""
            raise ValueError(f"comma-separated ccxt symbols like BTC/USDT:USDT{which}")
    return items


def _strategy(raw: str) -> str:
    module, _, func = raw.strip().partition(":")
    if not module or not func or not all(p.isidentifier() for p in (*module.split("."), func)):
        raise ValueError("module:function, e.g. tradebot.strategy:trend_momentum")
    return raw.strip()


def _host(raw: str) -> str:
    host = raw.strip()
    if not host or any(c in host for c in " /:@") and not _is_ipv6(host):
        raise ValueError("a host name or IP address to listen on, e.g. 127.0.0.1")
    return host


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1): nobody else can connect."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _token(raw: str) -> str:
    # It guards the controls (force exit) of a bot trading real money: long and unguessable.
    token = raw.strip()
    if len(token) < WEB_TOKEN_MIN_LENGTH or not token.isprintable() or " " in token:
        raise ValueError(f"at least {WEB_TOKEN_MIN_LENGTH} characters without spaces "
                         "(e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(24))')")
    return token


def _endpoint(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http(s) URL")
    return raw.strip().rstrip("/") if parts.path in ("", "/") else raw.strip()


def _chat_id(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"-?\d+|@\w{4,}", value):
        raise ValueError("a numeric chat id (negative for a group) or @channelname")
    return value


# variable -> (Settings field, parser)
_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "KUCOIN_API_KEY": ("api_key", _text),
    "KUCOIN_API_SECRET": ("api_secret", _text),
    "KUCOIN_API_PASSPHRASE": ("api_passphrase", _text),
    "KUCOIN_FUTURES_URL": ("futures_url", _url),
    "ENABLE_WEBSOCKET": ("enable_websocket", _bool),
    "WS_TRANSPORT": ("ws_transport", _choice(WS_TRANSPORTS)),
    "DRY_RUN": ("dry_run", _bool),
    "PAPER_BALANCE_USDT": ("paper_balance_usdt", _number(0, 1e12, low_open=True)),
    "SYMBOLS": ("symbols", _symbols),
    "MIN_VOLUME_USDT": ("min_volume_usdt", _number(0, 1e15)),
    "MAX_SYMBOLS": ("max_symbols", _integer(1, 500)),
    "TIMEFRAME": ("timeframe", _choice(TIMEFRAMES)),
    "LEVERAGE": ("leverage", _integer(1, 125)),
    "MARGIN_MODE": ("margin_mode", _choice(("isolated", "cross"))),
    "RISK_PER_TRADE": ("risk_per_trade", _number(0, 0.1, low_open=True)),
    "MAX_OPEN_POSITIONS": ("max_open_positions", _integer(1, 100)),
    "DAILY_LOSS_LIMIT": ("daily_loss_limit", _number(0, 1, low_open=True)),
    "FLATTEN_ON_DAILY_LOSS": ("flatten_on_daily_loss", _bool),
    "STOP_ATR_MULTIPLE": ("stop_atr_multiple", _number(0, 50, low_open=True)),
    "TAKE_PROFIT_ATR_MULTIPLE": ("take_profit_atr_multiple", _number(0, 100, low_open=True)),
    "TRAILING_ATR_MULTIPLE": ("trailing_atr_multiple", _number(0, 50)),
    "MAX_DATA_AGE_S": ("max_data_age_s", _number(0, 3600, low_open=True)),
    "GIL_SWITCH_INTERVAL_MS": ("gil_switch_interval_ms", _number(0, 100)),
    "STRATEGY": ("strategy", _strategy),
    "SCAN_INTERVAL_S": ("scan_interval_s", _number(0, 86400, low_open=True)),
    "JOURNAL_PATH": ("journal_path", _text),
    "LOG_LEVEL": ("log_level", _choice(LOG_LEVELS, upper=True)),
    "WEB_ENABLED": ("web_enabled", _bool),
    "WEB_HOST": ("web_host", _host),
    "WEB_PORT": ("web_port", _integer(0, 65535)),
    "WEB_TOKEN": ("web_token", _token),
    "WEBHOOK_URL": ("webhook_url", _endpoint),
    "TELEGRAM_TOKEN": ("telegram_token", _text),
    "TELEGRAM_CHAT_ID": ("telegram_chat_id", _chat_id),
    "TELEGRAM_API_URL": ("telegram_api_url", _endpoint),
    "HEARTBEAT_URL": ("heartbeat_url", _endpoint),
    "HEARTBEAT_INTERVAL_S": ("heartbeat_interval_s", _number(1, 86400)),
}
# Never shown in an error: the API credentials, and the tokens of the web server and the alerts
# (a webhook or heartbeat URL may carry one in its path).
SECRET_VARIABLES = frozenset({"KUCOIN_API_KEY", "KUCOIN_API_SECRET", "KUCOIN_API_PASSPHRASE", "WEB_TOKEN",
                              "WEBHOOK_URL", "TELEGRAM_TOKEN", "HEARTBEAT_URL"})
assert {f for f, _ in _VARIABLES.values()} == {f.name for f in fields(Settings)}


def load_settings(env: Mapping[str, str] | None = None, *, dotenv_path: str | None = ".env") -> Settings:
    """Return validated Settings from `env` (default: os.environ) over the .env file's values.

    Raises:
        ConfigError: a value is malformed, or the credentials are incomplete; `variable` names it.
    """
    merged: dict[str, str] = {}
    if dotenv_path is not None and os.path.exists(dotenv_path):
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(os.environ if env is None else env)
    values: dict[str, Any] = {}
    for variable, (name, parse) in _VARIABLES.items():
        raw = merged.get(variable)
        if raw is None or not raw.strip():
            continue  # unset or empty: the default applies (an empty secret means "no credentials")
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            shown = "" if variable in SECRET_VARIABLES else f" (got {raw!r})"
            raise ConfigError(f"{variable} must be {exc}{shown}", variable=variable) from None
    _check_credentials(values)
    settings = Settings(**values)
    _check_ops(settings)
    return settings


def _check_credentials(values: dict[str, Any]) -> None:
    given = [v for v in ("KUCOIN_API_KEY", "KUCOIN_API_SECRET", "KUCOIN_API_PASSPHRASE")
             if values.get(_VARIABLES[v][0]) is not None]
    if given and len(given) != 3:
        missing = next(v for v in ("KUCOIN_API_KEY", "KUCOIN_API_SECRET", "KUCOIN_API_PASSPHRASE")
                       if v not in given)
        raise ConfigError(f"{missing} must be set when any KuCoin credential is set "
                          "(key, secret and passphrase go together)", variable=missing)


def _check_ops(settings: Settings) -> None:
    if (settings.telegram_token is None) != (settings.telegram_chat_id is None):
        missing = "TELEGRAM_CHAT_ID" if settings.telegram_chat_id is None else "TELEGRAM_TOKEN"
        raise ConfigError(f"{missing} must be set when Telegram alerts are set up (TELEGRAM_TOKEN and "
                          "TELEGRAM_CHAT_ID go together)", variable=missing)
    if settings.web_enabled and settings.web_token is None and not settings.web_is_loopback:
        raise ConfigError(f"WEB_TOKEN must be set to serve the dashboard and its controls on "
                          f"WEB_HOST={settings.web_host}, which other machines can reach (or use "
                          "WEB_HOST=127.0.0.1)", variable="WEB_TOKEN")


def env_file_warning(path: str) -> str | None:
    """Return a one-line warning if the settings file at `path` is open to group or others, else None.

    The file holds the API secret, so any permission bit for group or others (mode & 0o077)
    is worth a warning; the warning names the file and the fix (``chmod 600 <path>``). A missing
    or unreadable path, or a platform without POSIX modes (Windows), gives None: nothing to say.
    """
    if os.name != "posix":
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # missing, a dangling link, no access, a NUL in the path
        return None
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode) or not mode & PRIVATE_MODE_MASK:
        return None
    # One line whatever the name: a name with a newline or another control character is shown as a repr.
    shown, quoted = (path, shlex.quote(path)) if path.isprintable() else (repr(path), repr(path))
    return (f"settings file {shown} is open to group/others (mode {mode:04o}) and may hold API secrets; "
            f"fix: chmod 600 {quoted}")
