"""Settings: what `configure()` sets, and where each value comes from.

Precedence, highest first: arguments of `configure()`, then the environment, then the DataRobot
config file (`DATAROBOT_CONFIG_FILE`, or `~/.config/datarobot/drconfig.yaml`), then defaults.
The endpoint and the API token always come from the same source, so a token is never sent to an
endpoint that was set somewhere else.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._scrub import BeforeSend
from .exceptions import ConfigurationError

__all__ = [
    "UNSET",
    "Settings",
    "configure",
    "current_settings",
    "default_state_dir",
    "parse_bool",
    "reset_settings",
]


class _Unset:
    """The type of `UNSET`, which distinguishes "not passed" from None."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()

# DataRobot reads a boolean variable as false only for these texts.
_FALSE_TEXTS: Final = frozenset({"no", "No", "0", "false", "False"})
_TRUE_TEXTS: Final = frozenset({"yes", "Yes", "1", "true", "True", "TRUE", "YES"})
_BOOLEAN_WORDS: Final = frozenset({"no", "false", "off", "n", "f", "yes", "true", "on", "y", "t"})

ENV_ENDPOINT: Final = "DATAROBOT_ENDPOINT"
ENV_API_TOKEN: Final = "DATAROBOT_API_TOKEN"
ENV_DEPLOYMENT_ID: Final = "MLOPS_DEPLOYMENT_ID"
ENV_SSL_VERIFY: Final = "DATAROBOT_SSL_VERIFY"
ENV_MAX_RETRIES: Final = "DATAROBOT_MAX_RETRIES"
ENV_CONFIG_FILE: Final = "DATAROBOT_CONFIG_FILE"
ENV_STATE_DIR: Final = "MLOPS_GUARD_EVENTS_STATE_DIR"
ENV_ALLOW_INSECURE_HTTP: Final = "MLOPS_GUARD_EVENTS_ALLOW_INSECURE_HTTP"

DEFAULT_CONFIG_FILE: Final = Path("~/.config/datarobot/drconfig.yaml")
_TOKEN_TYPES: Final = ("Bearer", "Token")


def parse_bool(text: str) -> bool:
    """Read a boolean the way DataRobot does: false only for no, No, 0, false and False."""
    return text.strip() not in _FALSE_TEXTS


def default_state_dir() -> Path:
    """Return the directory for the event log and the spool.

    It is `$MLOPS_GUARD_EVENTS_STATE_DIR` when set, else `$XDG_STATE_HOME/mlops_guard_events`,
    else `~/.local/state/mlops_guard_events`.
    """
    explicit = os.environ.get(ENV_STATE_DIR)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return Path(base).expanduser() / "mlops_guard_events"


def _mask(token: str | None) -> str:
    return "None" if token is None else "'***'"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The effective configuration, validated. The API token is masked in `repr`.

    Attributes:
        endpoint: The DataRobot API base URL, such as `https://app.datarobot.com/api/v2`.
            None means the embedded default: events go to the local event log.
        api_token: The DataRobot API token, sent as `Authorization: <token_type> <api_token>`.
        token_type: The authorization scheme, `Bearer` or `Token`.
        deployment_id: The deployment events belong to unless a call names another.
        org_id: The organization events belong to unless a call names another.
        connect_timeout: Seconds to wait for a connection to the endpoint.
        read_timeout: Seconds to wait for the server's response once connected.
        max_retries: Further attempts after a retryable failure (connection error, 429, 502,
            503, 504); 0 sends once.
        ssl_verify: True to verify TLS certificates against the CA bundle of `requests`
            (certifi's, or the file in `REQUESTS_CA_BUNDLE`), False to skip verification, or
            the path of a CA bundle.
        allow_insecure_http: Send the token over plain `http://` to a host that is not loopback.
        state_dir: The directory of the event log and the spool.
        event_log_path: The JSON Lines file the embedded default appends events to.
        queue_size: The maximum number of events waiting for the background worker.
        exit_flush_timeout: Seconds the exit handler waits for pending events before it spools them.
        spool_max_bytes: The maximum size of the spool on disk; the oldest events go first.
        coalesce_window: Seconds during which repeats of the same event are counted, not sent.
        max_events_per_minute: The most events sent per minute; the rest are spooled.
        enabled: False turns all reporting off; explicit calls return at once.
        redact_secrets: Redact the built-in secret shapes, such as bearer credentials and
            `sk-...` keys, in each event's title and message. The configured token is
            redacted even when this is False.
        redact_patterns: Further regular expressions whose matches are redacted in each
            event's title and message; only the group named `secret` when the pattern has one.
        before_send: A function that receives each event after redaction, before it is sent,
            spooled, logged or captured, and returns it, a changed copy, or None to drop it.
        sources: Where each setting came from, by attribute name, for `doctor`.
    """

    endpoint: str | None = None
    api_token: str | None = dataclasses.field(default=None, repr=False)
    token_type: str = "Bearer"
    deployment_id: str | None = None
    org_id: str | None = None
    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    max_retries: int = 3
    ssl_verify: bool | str = True
    allow_insecure_http: bool = False
    state_dir: Path = dataclasses.field(default_factory=default_state_dir)
    event_log_path: Path | None = None
    queue_size: int = 10_000
    exit_flush_timeout: float = 3.0
    spool_max_bytes: int = 64 * 1024 * 1024
    coalesce_window: float = 60.0
    max_events_per_minute: int = 1_000
    enabled: bool = True
    redact_secrets: bool = True
    redact_patterns: tuple[re.Pattern[str], ...] = ()
    before_send: BeforeSend | None = None
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Patterns given as strings, or in a list, are compiled here, so each event only
        # runs them. The scrubbing module is imported only then, to keep imports cheap.
        if self.redact_patterns == ():
            patterns: tuple[re.Pattern[str], ...] = ()
        else:
            from ._scrub import compile_patterns

            patterns = compile_patterns(self.redact_patterns)
        object.__setattr__(self, "redact_patterns", patterns)
        _validate(self)
        if self.event_log_path is None:
            object.__setattr__(self, "event_log_path", self.state_dir / "events.jsonl")

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{field.name}={getattr(self, field.name)!r}"
            for field in dataclasses.fields(self)
            if field.repr
        )
        return f"Settings({shown}, api_token={_mask(self.api_token)})"

    @property
    def spool_dir(self) -> Path:
        """The directory of the spool's files."""
        return self.state_dir / "spool"

    @property
    def uses_event_log(self) -> bool:
        """Whether events go to the local event log because no endpoint is set."""
        return self.endpoint is None

    @property
    def events_url(self) -> str | None:
        """The URL events are posted to, or None for the embedded default."""
        if self.endpoint is None:
            return None
        return self.endpoint.rstrip("/") + "/remoteEvents/"

    def authorization(self) -> str | None:
        """Return the `Authorization` header value, or None without a token.

        Whitespace around the token, such as the newline of a token file, is left out.
        """
        if self.api_token is None:
            return None
        return f"{self.token_type} {self.api_token.strip()}"


def _validate(settings: Settings) -> None:
    # Checked first, because a string such as "false" is true and would disable a check below.
    for name in ("allow_insecure_http", "enabled", "redact_secrets"):
        value = getattr(settings, name)
        if not isinstance(value, bool):
            raise ConfigurationError(f"invalid {name} {value!r}: expected True or False")

    _check_endpoint(settings)
    if settings.api_token is not None and (
        not isinstance(settings.api_token, str) or not settings.api_token.strip()
    ):
        raise ConfigurationError("invalid api_token: expected a non-empty string or None")
    if settings.api_token is not None and not _is_header_safe(settings.api_token.strip()):
        # The message leaves the token out, because it must never reach logs.
        raise ConfigurationError(
            "invalid api_token: it contains characters that an HTTP header cannot carry"
            " (non-ASCII characters, control characters or inner spaces); copy the token again"
        )
    if settings.token_type not in _TOKEN_TYPES:
        raise ConfigurationError(
            f"invalid token_type {settings.token_type!r}: expected one of {', '.join(_TOKEN_TYPES)}"
        )
    for name in ("connect_timeout", "read_timeout", "exit_flush_timeout", "coalesce_window"):
        _check_positive(name, getattr(settings, name), allow_zero=name == "coalesce_window")
    for name in ("queue_size", "spool_max_bytes", "max_events_per_minute"):
        _check_count(name, getattr(settings, name), minimum=1)
    _check_count("max_retries", settings.max_retries, minimum=0)
    if not isinstance(settings.ssl_verify, (bool, str)) or settings.ssl_verify == "":
        raise ConfigurationError(
            f"invalid ssl_verify {settings.ssl_verify!r}: expected True, False or the path of a"
            " CA bundle file"
        )
    if isinstance(settings.ssl_verify, str) and not Path(settings.ssl_verify).expanduser().exists():
        message = (
            f"invalid ssl_verify {settings.ssl_verify!r}: no CA bundle file at that path; give"
            " the path of an existing PEM file, or True to use the default CA bundle"
        )
        # A word such as FALSE or off is a boolean the user expected to work, not a path.
        if settings.ssl_verify.strip().lower() in _BOOLEAN_WORDS:
            message += "; as a boolean, only no, No, 0, false and False mean false"
        raise ConfigurationError(message)
    for name in ("deployment_id", "org_id"):
        value = getattr(settings, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigurationError(
                f"invalid {name} {value!r}: expected a non-empty string or None"
            )

    if settings.before_send is not None and not callable(settings.before_send):
        raise ConfigurationError(
            f"invalid before_send {settings.before_send!r}: expected a function that takes a"
            " ModerationEvent and returns it, a changed copy or None, or None for no hook"
        )


def _is_header_safe(text: str) -> bool:
    return text.isascii() and text.isprintable() and " " not in text


def _check_endpoint(settings: Settings) -> None:
    endpoint = settings.endpoint
    if endpoint is None:
        return
    try:
        parsed = urllib.parse.urlsplit(endpoint) if isinstance(endpoint, str) else None
        hostname = parsed.hostname if parsed is not None else None
    except ValueError:  # such as an invalid IPv6 address or port
        parsed, hostname = None, None
    if parsed is None or parsed.scheme not in ("http", "https") or not hostname:
        raise ConfigurationError(
            f"invalid endpoint {_display_endpoint(endpoint)}: expected an http or https URL such"
            " as 'https://app.datarobot.com/api/v2'"
        )
    if parsed.username is not None or parsed.password is not None:
        # A password in the URL would show in every repr, log line and doctor report.
        raise ConfigurationError(
            f"invalid endpoint {_display_endpoint(endpoint)}: it contains a user name or"
            " password; remove them from the URL, because DataRobot authenticates with api_token"
        )
    insecure = parsed.scheme == "http" and not _is_loopback(hostname)
    if insecure and settings.api_token is not None and not settings.allow_insecure_http:
        raise ConfigurationError(
            f"refusing to send the API token over plain http to {hostname!r}: use an"
            " https endpoint, or, if this network is trusted, pass allow_insecure_http=True to"
            f" configure() or set {ENV_ALLOW_INSECURE_HTTP}=true"
        )


def _display_endpoint(endpoint: object) -> str:
    """Return the repr of `endpoint` for an error message, with a password in it redacted."""
    if not isinstance(endpoint, str):
        return repr(endpoint)
    return repr(_redact_url_password(endpoint))


def _redact_url_password(url: str) -> str:
    """Return `url` with the password of its `user:password@` part replaced by `***`."""
    return re.sub(r"(://[^\s:/?#@\[\]]*):[^\s/?#@]*@", r"\1:***@", url)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_positive(name: str, value: object, *, allow_zero: bool = False) -> None:
    valid = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 or (allow_zero and value == 0))
    )
    if not valid:
        bound = "zero or more" if allow_zero else "more than zero"
        raise ConfigurationError(f"invalid {name} {value!r}: expected a number of seconds, {bound}")


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigurationError(
            f"invalid {name} {value!r}: expected an integer, {minimum} or more"
        )


# Resolution from the three sources.

_SETTING_NAMES: Final = frozenset(field.name for field in dataclasses.fields(Settings)) - {
    "sources"
}


def _read_environment() -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def take(
        variable: str, name: str, convert: Callable[[str], Any] = str, expected: str = ""
    ) -> None:
        text = os.environ.get(variable)
        if text is None or text == "":
            return
        try:
            values[name] = convert(text)
        except ValueError:
            raise ConfigurationError(
                f"invalid environment variable {variable}={text!r}: expected {expected}"
            ) from None
        sources[name] = f"environment {variable}"

    take(ENV_ENDPOINT, "endpoint")
    take(ENV_API_TOKEN, "api_token")
    take(ENV_DEPLOYMENT_ID, "deployment_id")
    take(ENV_SSL_VERIFY, "ssl_verify", _parse_ssl_verify)
    take(ENV_MAX_RETRIES, "max_retries", _parse_int, expected="an integer")
    take(ENV_STATE_DIR, "state_dir", _parse_path)
    take(ENV_ALLOW_INSECURE_HTTP, "allow_insecure_http", parse_bool)
    return values, sources


def _parse_ssl_verify(text: str) -> bool | str:
    """Read `DATAROBOT_SSL_VERIFY`: a DataRobot boolean, or else the path of a CA bundle."""
    stripped = text.strip()
    if stripped in _FALSE_TEXTS:
        return False
    if stripped in _TRUE_TEXTS:
        return True
    return stripped


def _parse_int(text: str) -> int:
    """Read an integer, allowing spaces around it."""
    return int(text.strip())


def _parse_path(text: str) -> Path:
    """Read a path, expanding `~`."""
    return Path(text).expanduser()


def _config_file_path() -> tuple[Path, bool]:
    named = os.environ.get(ENV_CONFIG_FILE)
    if named:
        return Path(named).expanduser(), True
    return DEFAULT_CONFIG_FILE.expanduser(), False


# Keys of drconfig.yaml and the settings they set.
_FILE_KEYS: Final = {
    "endpoint": "endpoint",
    "token": "api_token",
    "token_type": "token_type",
    "connect_timeout": "connect_timeout",
    "ssl_verify": "ssl_verify",
    "max_retries": "max_retries",
}


def _read_config_file() -> tuple[dict[str, Any], dict[str, str]]:
    path, named = _config_file_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if named:
            raise ConfigurationError(
                f"config file {str(path)!r} named by {ENV_CONFIG_FILE} does not exist; create it"
                f" or unset {ENV_CONFIG_FILE}"
            ) from None
        return {}, {}
    except OSError as error:
        raise ConfigurationError(f"cannot read config file {str(path)!r}: {error}") from None

    raw = parse_flat_yaml(text, path)
    values: dict[str, Any] = {}
    for key, name in _FILE_KEYS.items():
        if key in raw and raw[key] is not None:
            values[name] = raw[key]
    if isinstance(values.get("ssl_verify"), str):
        values["ssl_verify"] = _parse_ssl_verify(values["ssl_verify"])
    if isinstance(values.get("connect_timeout"), int):
        values["connect_timeout"] = float(values["connect_timeout"])
    return values, {name: f"config file {path}" for name in values}


def parse_flat_yaml(text: str, path: Path) -> dict[str, Any]:
    """Parse the flat `key: value` YAML of a DataRobot config file.

    Scalars are read as YAML reads them: true/false/yes/no, integers, floats, quoted or plain
    strings, and `null` or `~`. Blank lines and `#` comments are skipped.

    Raises:
        ConfigurationError: A line is not of the form `key: value`.
    """
    # NOTE: nested mappings and lists are not supported; DataRobot's config file has neither.
    values: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
            continue
        key, colon, rest = stripped.partition(":")
        if not colon or not key.strip():
            raise ConfigurationError(
                f"invalid config file {str(path)!r}, line {number}: expected 'key: value'"
            )
        values[key.strip()] = _parse_scalar(rest.strip())
    return values


def _parse_scalar(text: str) -> Any:
    if text[:1] in ("'", '"'):
        quote = text[0]
        end = text.find(quote, 1)
        return text[1:end] if end > 0 else text[1:]
    text = text.split(" #", 1)[0].strip()
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On"):
        return True
    if text in ("false", "False", "FALSE", "no", "No", "NO", "off", "Off"):
        return False
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _resolve(arguments: Mapping[str, Any]) -> Settings:
    environment, environment_sources = _read_environment()
    config_file, file_sources = _read_config_file()
    layers = [
        (dict(arguments), dict.fromkeys(arguments, "configure()")),
        (environment, environment_sources),
        (config_file, file_sources),
    ]

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer_values, layer_sources in reversed(layers):
        values.update(layer_values)
        sources.update(layer_sources)

    # The endpoint and the token come from the first layer that sets either of them.
    for layer_values, layer_sources in layers:
        if "endpoint" in layer_values or "api_token" in layer_values:
            for name in ("endpoint", "api_token"):
                values[name] = layer_values.get(name)
                sources[name] = layer_sources.get(name, "default")
            break

    if values.get("api_token") is not None and values.get("endpoint") is None:
        raise ConfigurationError(
            f"an API token is set ({sources['api_token']}) but no endpoint beside it: set the"
            f" endpoint in the same place, for example {ENV_ENDPOINT}"
        )
    for name in _SETTING_NAMES - sources.keys():
        sources[name] = "default"
    return Settings(**values, sources=sources)


_lock = threading.Lock()
_current: Settings | None = None


def configure(
    *,
    endpoint: str | _Unset | None = UNSET,
    api_token: str | _Unset | None = UNSET,
    token_type: str | _Unset = UNSET,
    deployment_id: str | _Unset | None = UNSET,
    org_id: str | _Unset | None = UNSET,
    connect_timeout: float | _Unset = UNSET,
    read_timeout: float | _Unset = UNSET,
    max_retries: int | _Unset = UNSET,
    ssl_verify: bool | str | _Unset = UNSET,
    allow_insecure_http: bool | _Unset = UNSET,
    state_dir: str | os.PathLike[str] | _Unset = UNSET,
    event_log_path: str | os.PathLike[str] | _Unset | None = UNSET,
    queue_size: int | _Unset = UNSET,
    exit_flush_timeout: float | _Unset = UNSET,
    spool_max_bytes: int | _Unset = UNSET,
    coalesce_window: float | _Unset = UNSET,
    max_events_per_minute: int | _Unset = UNSET,
    enabled: bool | _Unset = UNSET,
    redact_secrets: bool | _Unset = UNSET,
    redact_patterns: Iterable[str | re.Pattern[str]] | _Unset = UNSET,
    before_send: BeforeSend | _Unset | None = UNSET,
) -> Settings:
    """Set how and where events are reported, and return the effective settings.

    Arguments left out come from the environment, then the DataRobot config file, then the
    defaults. Each call starts again from those sources: it does not keep arguments of an
    earlier call. `endpoint` and `api_token` are taken together from the first source that sets
    either, so `configure(endpoint=...)` alone sends no token.

    Args:
        endpoint: The DataRobot API base URL, with or without a trailing slash. None sends
            events to the local event log.
        api_token: The DataRobot API token.
        token_type: The authorization scheme, `Bearer` (the default) or `Token`.
        deployment_id: The deployment events belong to by default.
        org_id: The organization events belong to by default.
        connect_timeout: Seconds to wait for a connection (default 2).
        read_timeout: Seconds to wait for a response once connected (default 5).
        max_retries: Further attempts after a retryable failure (default 3).
        ssl_verify: True, False, or the path of a CA bundle (default True).
        allow_insecure_http: Allow sending the token over plain http to a host that is not
            loopback (default False).
        state_dir: The directory of the event log and the spool.
        event_log_path: The event log file (default `<state_dir>/events.jsonl`).
        queue_size: The maximum number of events waiting to be sent (default 10000).
        exit_flush_timeout: Seconds spent sending pending events at exit (default 3).
        spool_max_bytes: The maximum size of the spool in bytes (default 64 MiB).
        coalesce_window: Seconds during which repeats of an event are counted, not sent
            (default 60; 0 sends every repeat).
        max_events_per_minute: The most events sent per minute (default 1000).
        enabled: False turns reporting off.
        redact_secrets: False stops redacting the built-in secret shapes, such as bearer
            credentials and `sk-...` keys, in titles and messages (default True). The
            configured token is redacted either way.
        redact_patterns: Regular expressions, as strings or compiled, whose matches in titles
            and messages are replaced by `[REDACTED]`; with a group named `secret`, only that
            group is (default none).
        before_send: A function called with each event after redaction, before it is sent,
            spooled, logged or captured. It returns the event, a changed copy, or None to
            drop it. An exception it raises drops the event and is logged with its type, never
            raised into the guarded code (default None).

    Returns:
        The effective settings, with `sources` telling where each value came from.

    Raises:
        ConfigurationError: A value is invalid, the config file cannot be read, or the token
            would be sent over plain http to a host that is not loopback.
    """
    arguments = {
        name: value
        for name, value in locals().items()
        if name in _SETTING_NAMES and value is not UNSET
    }
    for name in ("state_dir", "event_log_path"):
        if arguments.get(name) is not None:
            arguments[name] = Path(arguments[name]).expanduser()
    settings = _resolve(arguments)

    global _current
    with _lock:
        _current = settings
    return settings


def current_settings() -> Settings:
    """Return the settings in force, resolving them from the environment on first use.

    Raises:
        ConfigurationError: The environment or the config file contains an invalid value.
    """
    global _current
    settings = _current
    if settings is not None:
        return settings
    resolved = _resolve({})
    with _lock:
        if _current is None:
            _current = resolved
        return _current


def reset_settings() -> None:
    """Forget the settings, so the next use resolves them again from the environment."""
    global _current
    with _lock:
        _current = None


def _reset_lock_after_fork() -> None:
    global _lock
    # The parent's lock may have been held by a thread that does not exist in the child.
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)
