"""config.py: defaults, .env under the environment, and a clear error for each bad value."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from config import DEFAULT_FUTURES_URL, Settings, env_file_warning, load_settings
from kucoin_futures.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_without_any_setting() -> None:
    assert load_settings({}, dotenv_path=None) == Settings()
    s = Settings()
    assert (s.futures_url, s.enable_websocket, s.dry_run, s.live) == (DEFAULT_FUTURES_URL, True, True, False)


def test_env_example_documents_every_key_and_loads_to_defaults(tmp_path: Path) -> None:
    example = (ROOT / ".env.example").read_text()
    from config import _VARIABLES

    keys = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    assert keys == set(_VARIABLES)
    assert load_settings({}, dotenv_path=str(ROOT / ".env.example")) == Settings()


def test_environment_overrides_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("LEVERAGE=5\nTIMEFRAME=1h\n")
    s = load_settings({"LEVERAGE": "7"}, dotenv_path=str(dotenv))
    assert (s.leverage, s.timeframe) == (7, "1h")


def test_parsed_values() -> None:
    s = load_settings({"ENABLE_WEBSOCKET": "False", "DRY_RUN": "no", "SYMBOLS": "BTC/USDT:USDT, ETH/USDT:USDT",
                       "KUCOIN_FUTURES_URL": "http://127.0.0.1:8080/", "LOG_LEVEL": "debug",
                       "KUCOIN_API_KEY": "k", "KUCOIN_API_SECRET": "s", "KUCOIN_API_PASSPHRASE": "p"},
                      dotenv_path=None)
    assert (s.enable_websocket, s.dry_run, s.live) == (False, False, True)
    assert s.symbols == ("BTC/USDT:USDT", "ETH/USDT:USDT")
    assert (s.futures_url, s.log_level) == ("http://127.0.0.1:8080", "DEBUG")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ENABLE_WEBSOCKET", "maybe", "true or false"),
        ("DRY_RUN", "2", "true or false"),
        ("KUCOIN_FUTURES_URL", "api-futures.kucoin.com", "http(s) base URL"),
        ("KUCOIN_FUTURES_URL", "https://host/api/v1", "without a path"),
        ("SYMBOLS", "BTCUSDT", "ccxt symbols"),
        ("MIN_VOLUME_USDT", "-1", "a number in"),
        ("MAX_SYMBOLS", "0", "whole number from 1"),
        ("TIMEFRAME", "3m", "one of 1m"),
        ("LEVERAGE", "2.5", "whole number"),
        ("LEVERAGE", "126", "whole number from 1 to 125"),
        ("RISK_PER_TRADE", "0", "a number in (0"),
        ("RISK_PER_TRADE", "nan", "a number"),
        ("MAX_OPEN_POSITIONS", "abc", "whole number"),
        ("DAILY_LOSS_LIMIT", "1.5", "a number in (0, 1]"),
        ("FLATTEN_ON_DAILY_LOSS", "y", "true or false"),
        ("STOP_ATR_MULTIPLE", "0", "a number in (0"),
        ("TAKE_PROFIT_ATR_MULTIPLE", "inf", "a number"),
        ("TRAILING_ATR_MULTIPLE", "-0.5", "a number in [0"),
        ("MAX_DATA_AGE_S", "0", "a number in (0"),
        ("STRATEGY", "strategy", "module:function"),
        ("SCAN_INTERVAL_S", "fast", "a number"),
        ("LOG_LEVEL", "LOUD", "one of DEBUG"),
    ],
)
def test_each_bad_value_names_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({variable: value}, dotenv_path=None)
    assert err.value.variable == variable
    assert str(err.value).startswith(variable) and expected in str(err.value)


@pytest.mark.parametrize("missing", ["KUCOIN_API_KEY", "KUCOIN_API_SECRET", "KUCOIN_API_PASSPHRASE"])
def test_incomplete_credentials_are_refused(missing: str) -> None:
    env = {"KUCOIN_API_KEY": "key-123", "KUCOIN_API_SECRET": "secret-456", "KUCOIN_API_PASSPHRASE": "pass-789"}
    del env[missing]
    with pytest.raises(ConfigError) as err:
        load_settings(env, dotenv_path=None)
    assert err.value.variable == missing
    for secret in env.values():
        assert secret not in str(err.value)


def test_secrets_never_in_repr_or_errors() -> None:
    env = {"KUCOIN_API_KEY": "key-AAA", "KUCOIN_API_SECRET": "secret-BBB", "KUCOIN_API_PASSPHRASE": "pass-CCC"}
    s = load_settings(env, dotenv_path=None)
    assert s.api_secret == "secret-BBB"
    for secret in env.values():
        assert secret not in repr(s) and secret not in str(s)
    with pytest.raises(ConfigError) as err:
        load_settings({**env, "KUCOIN_API_SECRET": "   "}, dotenv_path=None)
    for secret in env.values():
        assert secret not in str(err.value)


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().leverage = 10  # type: ignore[misc]


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o200, 0o700])
def test_env_file_warning_none_for_a_private_file(tmp_path: Path, mode: int) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("KUCOIN_API_SECRET=s\n")
    dotenv.chmod(mode)
    assert env_file_warning(str(dotenv)) is None


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o666, 0o777])
def test_env_file_warning_names_the_file_and_the_fix(tmp_path: Path, mode: int) -> None:
    """Any permission bit for group or others (read, write or execute) draws the warning."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("KUCOIN_API_SECRET=s\n")
    dotenv.chmod(mode)
    warning = env_file_warning(str(dotenv))
    assert warning is not None and "\n" not in warning
    assert (f"settings file {dotenv} " in warning, f"{mode:04o}" in warning,
            warning.endswith(f"chmod 600 {dotenv}")) == (True, True, True)


def test_env_file_warning_quotes_a_path_for_the_shell(tmp_path: Path) -> None:
    dotenv = tmp_path / "my settings.env"
    dotenv.write_text("")
    dotenv.chmod(0o644)
    assert env_file_warning(str(dotenv)).endswith(f"chmod 600 '{dotenv}'")


def test_env_file_warning_stays_one_line_for_a_name_with_a_newline(tmp_path: Path) -> None:
    dotenv = tmp_path / "odd\nname.env"
    dotenv.write_text("")
    dotenv.chmod(0o640)
    warning = env_file_warning(str(dotenv))
    assert "\n" not in warning and warning.endswith(f"chmod 600 {str(dotenv)!r}")


def test_env_file_warning_none_without_a_file(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)  # a directory open to others is not a settings file
    assert [env_file_warning(str(tmp_path / "absent.env")), env_file_warning(str(tmp_path)),
            env_file_warning("bad\0path")] == [None, None, None]


def test_env_file_warning_follows_a_link_to_the_file(tmp_path: Path) -> None:
    target = tmp_path / "real.env"
    target.write_text("")
    target.chmod(0o644)
    link = tmp_path / ".env"
    link.symlink_to(target)
    assert env_file_warning(str(link)) is not None
    target.chmod(0o600)
    assert env_file_warning(str(link)) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("FOO", "SYMBOLS must be comma-separated ccxt symbols like BTC/USDT:USDT (got 'FOO')"),
        ("BTC/USDT:USDT, FOO", "SYMBOLS must be comma-separated ccxt symbols like BTC/USDT:USDT, "
                               "and 'FOO' is not one (got 'BTC/USDT:USDT, FOO')"),
    ],
)
def test_bad_symbols_quote_the_value_once(value: str, expected: str) -> None:
    """Issue 13.8: SYMBOLS=FOO said "(got 'FOO')" twice; one bad item among good ones is named."""
    with pytest.raises(ConfigError) as err:
        load_settings({"SYMBOLS": value}, dotenv_path=None)
    assert str(err.value) == expected


@pytest.mark.parametrize(("raw", "expected"), [("auto", "auto"), (" picows ", "picows"),
                                               ("websocket-client", "websocket-client"), ("", "auto")])
def test_ws_transport_setting(raw: str, expected: str) -> None:
    assert load_settings({"WS_TRANSPORT": raw}, dotenv_path=None).ws_transport == expected


@pytest.mark.parametrize("raw", ["PICOWS", "websockets", "websocket_client"])
def test_ws_transport_setting_refuses_other_names(raw: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"WS_TRANSPORT": raw}, dotenv_path=None)
    assert refused.value.variable == "WS_TRANSPORT"


@pytest.mark.parametrize(("env", "variable"), [
    ({"WEB_PORT": "65536"}, "WEB_PORT"), ({"WEB_PORT": "-1"}, "WEB_PORT"), ({"WEB_ENABLED": "sure"}, "WEB_ENABLED"),
    ({"WEB_HOST": "http://0.0.0.0"}, "WEB_HOST"), ({"WEB_TOKEN": "short-secret"}, "WEB_TOKEN"),
    ({"WEBHOOK_URL": "hooks.example/secret-path"}, "WEBHOOK_URL"), ({"HEARTBEAT_INTERVAL_S": "0"}, "HEARTBEAT_INTERVAL_S"),
    ({"TELEGRAM_TOKEN": "123:secret-tg"}, "TELEGRAM_CHAT_ID"), ({"TELEGRAM_CHAT_ID": "42"}, "TELEGRAM_TOKEN"),
    ({"TELEGRAM_TOKEN": "123:secret-tg", "TELEGRAM_CHAT_ID": "chat"}, "TELEGRAM_CHAT_ID"),
    ({"WEB_HOST": "0.0.0.0"}, "WEB_TOKEN"), ({"WEB_HOST": "192.168.1.5"}, "WEB_TOKEN"),
])
def test_web_and_alert_settings_are_checked_and_secrets_never_shown(env: dict, variable: str) -> None:
    """Serving the controls to other machines needs a token; a webhook URL or token is never echoed."""
    with pytest.raises(ConfigError) as err:
        load_settings(env, dotenv_path=None)
    assert err.value.variable == variable
    assert not any(secret in str(err.value) for secret in ("short-secret", "secret-path", "secret-tg"))


def test_web_and_alert_settings() -> None:
    s = load_settings({"WEB_HOST": "0.0.0.0", "WEB_PORT": "0", "WEB_TOKEN": "t" * 20, "TELEGRAM_TOKEN": "1:x",
                       "TELEGRAM_CHAT_ID": "-1001", "WEBHOOK_URL": "https://hooks.example/T1/B2/secret"},
                      dotenv_path=None)
    assert (s.web_host, s.web_port, s.web_is_loopback, s.telegram_chat_id) == ("0.0.0.0", 0, False, "-1001")
    assert "t" * 20 not in repr(s) and "secret" not in repr(s) and "1:x" not in repr(s)
    assert all(load_settings({"WEB_HOST": host}, dotenv_path=None).web_is_loopback
               for host in ("localhost", "127.0.0.2", "::1"))
    assert load_settings({"WEB_HOST": "0.0.0.0", "WEB_ENABLED": "false"}, dotenv_path=None).web_enabled is False
