"""Settings: sources and their precedence, DataRobot's conventions, and validation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlops_guard_events import _config
from mlops_guard_events._config import (
    Settings,
    configure,
    current_settings,
    parse_bool,
    reset_settings,
)
from mlops_guard_events.exceptions import ConfigurationError

TOKEN = "tok-0b7e-SECRET-c3d9"


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return the path of a config file named by DATAROBOT_CONFIG_FILE; the test writes it."""
    path = tmp_path / "drconfig.yaml"
    monkeypatch.setenv("DATAROBOT_CONFIG_FILE", str(path))
    return path


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text), encoding="utf-8")


# Precedence.


def test_argument_beats_environment_and_file(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(config_file, "max_retries: 1\n")
    monkeypatch.setenv("DATAROBOT_MAX_RETRIES", "2")

    settings = configure(max_retries=7)

    assert settings.max_retries == 7
    assert settings.sources["max_retries"] == "configure()"


def test_environment_beats_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(config_file, "max_retries: 1\n")
    monkeypatch.setenv("DATAROBOT_MAX_RETRIES", "2")

    settings = configure()

    assert settings.max_retries == 2
    assert settings.sources["max_retries"] == "environment DATAROBOT_MAX_RETRIES"


def test_file_beats_default(config_file: Path) -> None:
    write(config_file, "max_retries: 1\n")

    settings = configure()

    assert settings.max_retries == 1
    assert settings.sources["max_retries"] == f"config file {config_file}"


def test_default_when_no_source() -> None:
    settings = configure()

    assert settings.max_retries == 3
    assert settings.sources["max_retries"] == "default"


def test_default_config_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = tmp_path / "drconfig.yaml"
    write(default, "endpoint: https://dr.example.com/api/v2\ntoken: " + TOKEN + "\n")
    monkeypatch.setattr(_config, "DEFAULT_CONFIG_FILE", default)

    settings = configure()

    assert settings.endpoint == "https://dr.example.com/api/v2"
    assert settings.api_token == TOKEN


def test_missing_default_file_is_fine() -> None:
    assert configure().endpoint is None


def test_missing_named_file_raises(config_file: Path) -> None:
    with pytest.raises(ConfigurationError, match="DATAROBOT_CONFIG_FILE does not exist"):
        configure()


def test_each_call_starts_afresh() -> None:
    configure(max_retries=9)

    assert configure().max_retries == 3


# Endpoint and token come from one source.


def test_pair_taken_from_environment(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(config_file, f"endpoint: https://file.example.com/api/v2\ntoken: file-{TOKEN}\n")
    monkeypatch.setenv("DATAROBOT_ENDPOINT", "https://env.example.com/api/v2")
    monkeypatch.setenv("DATAROBOT_API_TOKEN", TOKEN)

    settings = configure()

    assert settings.endpoint == "https://env.example.com/api/v2"
    assert settings.api_token == TOKEN


def test_file_token_not_paired_with_env_endpoint(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(config_file, f"endpoint: https://file.example.com/api/v2\ntoken: {TOKEN}\n")
    monkeypatch.setenv("DATAROBOT_ENDPOINT", "https://env.example.com/api/v2")

    settings = configure()

    assert settings.endpoint == "https://env.example.com/api/v2"
    assert settings.api_token is None


def test_argument_endpoint_drops_env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_ENDPOINT", "https://env.example.com/api/v2")
    monkeypatch.setenv("DATAROBOT_API_TOKEN", TOKEN)

    settings = configure(endpoint="https://arg.example.com/api/v2")

    assert settings.api_token is None
    assert settings.sources["api_token"] == "default"


def test_token_without_endpoint_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_API_TOKEN", TOKEN)

    with pytest.raises(ConfigurationError, match="no endpoint beside it") as caught:
        configure()

    assert TOKEN not in str(caught.value)


def test_explicit_none_endpoint_means_event_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_ENDPOINT", "https://env.example.com/api/v2")
    monkeypatch.setenv("DATAROBOT_API_TOKEN", TOKEN)

    settings = configure(endpoint=None)

    assert settings.uses_event_log
    assert settings.api_token is None


# Booleans, retries and TLS verification as DataRobot reads them.


@pytest.mark.parametrize("text", ["no", "No", "0", "false", "False"])
def test_false_texts(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["yes", "1", "true", "True", "FALSE", "NO", "off", "anything"])
def test_other_texts_are_true(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["no", "No", "0", "false", "False"])
def test_ssl_verify_env_false(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_SSL_VERIFY", text)

    assert configure().ssl_verify is False


@pytest.mark.parametrize("text", ["yes", "1", "true", "True", "TRUE"])
def test_ssl_verify_env_true(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_SSL_VERIFY", text)

    assert configure().ssl_verify is True


def test_ssl_verify_env_bundle_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("DATAROBOT_SSL_VERIFY", str(bundle))

    assert configure().ssl_verify == str(bundle)


def test_ssl_verify_missing_bundle_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_SSL_VERIFY", str(tmp_path / "absent.pem"))

    with pytest.raises(ConfigurationError, match="no CA bundle file at that path"):
        configure()


def test_ssl_verify_unknown_word_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_SSL_VERIFY", "FALSE")

    with pytest.raises(ConfigurationError, match="only no, No, 0, false and False"):
        configure()


def test_max_retries_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_MAX_RETRIES", " 5 ")

    assert configure().max_retries == 5


def test_max_retries_not_integer_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_MAX_RETRIES", "five")

    with pytest.raises(
        ConfigurationError, match="DATAROBOT_MAX_RETRIES='five': expected an integer"
    ):
        configure()


def test_max_retries_negative_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_MAX_RETRIES", "-1")

    with pytest.raises(ConfigurationError, match="invalid max_retries -1"):
        configure()


def test_deployment_id_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_DEPLOYMENT_ID", "65a1b2c3d4e5f6a7b8c9d0e1")

    assert configure().deployment_id == "65a1b2c3d4e5f6a7b8c9d0e1"


def test_empty_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_ENDPOINT", "")
    monkeypatch.setenv("DATAROBOT_MAX_RETRIES", "")

    settings = configure()

    assert settings.endpoint is None
    assert settings.max_retries == 3


# The config file.


def test_config_file_keys(config_file: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    write(
        config_file,
        f"""\
        # DataRobot client configuration
        endpoint: 'https://dr.example.com/api/v2'
        token: "{TOKEN}"
        token_type: Token
        connect_timeout: 4
        ssl_verify: {bundle}
        max_retries: 6
        """,
    )

    settings = configure()

    assert settings.endpoint == "https://dr.example.com/api/v2"
    assert settings.api_token == TOKEN
    assert settings.token_type == "Token"
    assert settings.connect_timeout == 4.0
    assert settings.ssl_verify == str(bundle)
    assert settings.max_retries == 6


@pytest.mark.parametrize(("text", "expected"), [("false", False), ("no", False), ("true", True)])
def test_config_file_ssl_verify_bool(config_file: Path, text: str, expected: bool) -> None:
    write(config_file, f"ssl_verify: {text}\n")

    assert configure().ssl_verify is expected


def test_config_file_ignores_unknown_keys(config_file: Path) -> None:
    write(config_file, "user_agent_suffix: notebook\nmax_retries: 2\n")

    assert configure().max_retries == 2


def test_config_file_null_is_unset(config_file: Path) -> None:
    write(config_file, "max_retries: ~\nendpoint: null\n")

    settings = configure()

    assert settings.max_retries == 3
    assert settings.endpoint is None


def test_config_file_bad_line_raises(config_file: Path) -> None:
    write(config_file, "endpoint: https://dr.example.com/api/v2\njust some words\n")

    with pytest.raises(ConfigurationError, match="line 2: expected 'key: value'"):
        configure()


def test_config_file_bad_value_raises(config_file: Path) -> None:
    write(config_file, "connect_timeout: soon\n")

    with pytest.raises(ConfigurationError, match="invalid connect_timeout 'soon'"):
        configure()


# The token is masked.


def test_token_masked_in_repr() -> None:
    settings = Settings(endpoint="https://dr.example.com/api/v2", api_token=TOKEN)

    assert TOKEN not in repr(settings)
    assert "api_token='***'" in repr(settings)


def test_token_masked_in_str() -> None:
    settings = Settings(endpoint="https://dr.example.com/api/v2", api_token=TOKEN)

    assert TOKEN not in str(settings)


def test_repr_without_token_shows_none() -> None:
    assert "api_token=None" in repr(Settings())


def test_authorization_header_value() -> None:
    settings = Settings(endpoint="https://dr.example.com/api/v2", api_token=TOKEN)

    assert settings.authorization() == f"Bearer {TOKEN}"


def test_authorization_without_token() -> None:
    assert Settings(endpoint="https://dr.example.com/api/v2").authorization() is None


# Plain http and the token.


def test_http_with_token_to_remote_rejected() -> None:
    with pytest.raises(ConfigurationError, match="allow_insecure_http") as caught:
        configure(endpoint="http://dr.example.com/api/v2", api_token=TOKEN)

    assert "'dr.example.com'" in str(caught.value)
    assert "MLOPS_GUARD_EVENTS_ALLOW_INSECURE_HTTP=true" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_http_with_token_allowed_when_asked() -> None:
    settings = configure(
        endpoint="http://dr.example.com/api/v2", api_token=TOKEN, allow_insecure_http=True
    )

    assert settings.api_token == TOKEN


@pytest.mark.parametrize(("text", "allowed"), [("true", True), ("1", True), ("false", False)])
def test_insecure_http_from_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, allowed: bool
) -> None:
    monkeypatch.setenv("DATAROBOT_ENDPOINT", "http://dr.example.com/api/v2")
    monkeypatch.setenv("DATAROBOT_API_TOKEN", TOKEN)
    monkeypatch.setenv("MLOPS_GUARD_EVENTS_ALLOW_INSECURE_HTTP", text)

    if allowed:
        assert configure().allow_insecure_http is True
    else:
        with pytest.raises(ConfigurationError, match="allow_insecure_http"):
            configure()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "[::1]"])
def test_http_with_token_to_loopback_allowed(host: str) -> None:
    settings = configure(endpoint=f"http://{host}:8080/api/v2", api_token=TOKEN)

    assert settings.api_token == TOKEN


def test_http_without_token_allowed() -> None:
    assert configure(endpoint="http://dr.example.com/api/v2").api_token is None


def test_https_with_token_allowed() -> None:
    assert configure(endpoint="https://dr.example.com/api/v2", api_token=TOKEN).api_token == TOKEN


# Validation of single values.


@pytest.mark.parametrize(
    "endpoint", ["dr.example.com/api/v2", "ftp://dr.example.com", "https://", ""]
)
def test_invalid_endpoint_raises(endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="expected an http or https URL"):
        configure(endpoint=endpoint)


def test_invalid_token_type_raises() -> None:
    with pytest.raises(ConfigurationError, match="invalid token_type 'Basic'"):
        configure(token_type="Basic")


@pytest.mark.parametrize("name", ["connect_timeout", "read_timeout", "exit_flush_timeout"])
@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "5"])
def test_invalid_seconds_raise(name: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=f"invalid {name} .*number of seconds"):
        configure(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["queue_size", "spool_max_bytes", "max_events_per_minute"])
def test_invalid_counts_raise(name: str) -> None:
    with pytest.raises(
        ConfigurationError, match=f"invalid {name} 0: expected an integer, 1 or more"
    ):
        configure(**{name: 0})  # type: ignore[arg-type]


def test_blank_token_raises() -> None:
    with pytest.raises(ConfigurationError, match="invalid api_token"):
        configure(endpoint="https://dr.example.com/api/v2", api_token="  ")


def test_configuration_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="token_type"):
        configure(token_type="Basic")


# Where events go.


def test_events_url_adds_path() -> None:
    settings = Settings(endpoint="https://dr.example.com/api/v2")

    assert settings.events_url == "https://dr.example.com/api/v2/remoteEvents/"


def test_events_url_with_trailing_slash() -> None:
    settings = Settings(endpoint="https://dr.example.com/api/v2/")

    assert settings.events_url == "https://dr.example.com/api/v2/remoteEvents/"


def test_no_endpoint_uses_event_log() -> None:
    settings = Settings()

    assert settings.uses_event_log
    assert settings.events_url is None


def test_state_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_GUARD_EVENTS_STATE_DIR", str(tmp_path / "state"))

    settings = configure()

    assert settings.event_log_path == tmp_path / "state" / "events.jsonl"
    assert settings.spool_dir == tmp_path / "state" / "spool"


def test_state_dir_from_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_GUARD_EVENTS_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))

    settings = configure()

    assert settings.event_log_path == tmp_path / "mlops_guard_events" / "events.jsonl"


def test_event_log_path_argument(tmp_path: Path) -> None:
    settings = configure(event_log_path=tmp_path / "custom.jsonl")

    assert settings.event_log_path == tmp_path / "custom.jsonl"


def test_current_settings_after_configure() -> None:
    configured = configure(max_retries=1)

    assert current_settings() is configured


def test_current_settings_resolves_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    reset_settings()
    monkeypatch.setenv("DATAROBOT_MAX_RETRIES", "4")

    assert current_settings().max_retries == 4


@pytest.mark.parametrize("token", ["tök", "abc\r\ndef", "abc def", "abc\x00"])
def test_token_unsendable_in_header_raises(token: str) -> None:
    with pytest.raises(
        ConfigurationError, match="characters that an HTTP header cannot carry"
    ) as caught:
        configure(endpoint="https://dr.example.com/api/v2", api_token=token)

    assert token not in str(caught.value)


def test_token_surrounding_whitespace_dropped() -> None:
    settings = configure(endpoint="https://dr.example.com/api/v2", api_token=f" {TOKEN}\n")

    assert settings.authorization() == f"Bearer {TOKEN}"
