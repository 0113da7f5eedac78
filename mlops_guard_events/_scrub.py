"""Redaction of secrets in event text, and the `before_send` hook.

Every outgoing event passes `prepare_event` once, before it is sent, spooled, written to the
event log or captured. The explicit call does this in `_report`. Automatic reporting does it in
`_dispatch` for captured events and in the worker's `submit` after storm control, so repeats
that are only counted cost no regular-expression work.

Only `title` and `message` are redacted, because they carry exception text. Names and IDs are
identifiers that the reporting code chooses, and DataRobot groups events by them, so a rewrite
would split those groups. A `before_send` hook can still change them. What is replaced by
`REDACTED`:

- the configured API token, wherever it appears (when it has at least `MIN_TOKEN_LENGTH`
  characters);
- the credential after `Authorization:` and after the `Bearer` scheme, unless it is an ordinary
  word; after `Basic`, when it decodes to `user:password`;
- the password in a URL (`scheme://user:password@host`), and the value of a secret query
  parameter such as `?api_key=...` or `&token=...`;
- the value assigned to a key such as `password`, `api_key` or `client_secret`, as in
  `password=...` or `"api_key": "..."`;
- API-key shapes: `sk-...` keys (OpenAI, Anthropic) with mixed case and digits, Stripe secret
  keys, GitHub, Slack, Google and Hugging Face tokens, AWS access key IDs, JSON Web Tokens and the
  body of a PEM private key;
- every match of the patterns in `Settings.redact_patterns`.

No built-in pattern nests repetitions, and a failed attempt of one scans no further than the
next place where it can start, so each runs in time linear in the text's length.
`tests/test_security_scrubbing.py` checks this on 1 MB of adversarial text.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Final

from . import _stats
from ._event import MAX_MESSAGE_LENGTH, MAX_TITLE_LENGTH, ModerationEvent, truncate
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from ._config import Settings

__all__ = [
    "MIN_TOKEN_LENGTH",
    "REDACTED",
    "BeforeSend",
    "compile_patterns",
    "prepare_event",
    "redact_text",
    "reset_log_limits",
    "scrub_event",
]

logger = logging.getLogger("mlops_guard_events")

REDACTED: Final = "[REDACTED]"
"""The text that replaces each secret."""

MIN_TOKEN_LENGTH: Final = 4
"""The shortest configured token that is redacted; a shorter one would mangle ordinary words."""

BeforeSend = Callable[[ModerationEvent], ModerationEvent | None]
"""The `before_send` hook: returns the event, a changed copy, or None to drop it."""

_LOG_INTERVAL_SECONDS: Final = 60.0


# The built-in rules


@dataclasses.dataclass(frozen=True)
class _Rule:
    """A pattern whose `secret` group is replaced.

    Attributes:
        pattern: The regular expression, with a group named `secret`.
        triggers: Lowercase substrings of which the text must contain one for the pattern
            to be tried; empty means always try.
        accepts: Decides whether the text of the `secret` group is a secret; None means it is.
    """

    pattern: re.Pattern[str]
    triggers: tuple[str, ...] = ()
    accepts: Callable[[str], bool] | None = None


_WORD_SEPARATORS: Final = re.compile(r"[-._~+/=]+")


def _is_plain_word(part: str) -> bool:
    return part.isalpha() and (part.islower() or part.isupper() or part.istitle())


def _looks_like_credential(text: str) -> bool:
    """Tell a credential from ordinary words, as in "Bearer authentication failed"."""
    if len(text) < 8:
        return False
    parts = [part for part in _WORD_SEPARATORS.split(text) if part]
    return not all(_is_plain_word(part) for part in parts)


def _is_basic_credential(text: str) -> bool:
    """Tell whether `text` is base64 of `user:password`, as HTTP Basic authentication sends."""
    padded = text + "=" * (-len(text) % 4)
    try:
        decoded = base64.b64decode(padded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return ":" in decoded and decoded.isprintable()


def _is_api_key(text: str) -> bool:
    # An `sk-` key is random: words such as "sk-learn-pipeline-version-2" lack mixed case.
    if not text.startswith("sk-"):
        return True
    body = text[3:]
    return (
        any(char.isupper() for char in body)
        and any(char.islower() for char in body)
        and any(char.isdigit() for char in body)
    )


def _has_content(text: str) -> bool:
    return bool(text.strip())


_SECRET_KEYS: Final = (
    r"password|passwd|passphrase|client_secret|secret_key|secret_access_key|api_key|apikey"
    r"|api-key|access_token|auth_token|refresh_token|private_key"
)
_QUERY_KEYS: Final = (
    r"password|passwd|pwd|pass|secret|client_secret|api_key|apikey|api-key|key|access_token"
    r"|refresh_token|id_token|auth_token|token|signature|sig|x-amz-signature|x-amz-credential"
    r"|x-amz-security-token|code"
)

_BUILTIN_RULES: Final = (
    _Rule(
        re.compile(
            r"""\b(?:proxy-)?authorization["']?[ \t]{0,8}[:=][ \t]{0,8}["']?"""
            r"(?:(?:bearer|basic|token|digest|negotiate|apikey)[ \t]{1,8})?"
            r"""(?P<secret>[^\s"',;]{8,})""",
            re.IGNORECASE,
        ),
        triggers=("authorization",),
        accepts=_looks_like_credential,
    ),
    _Rule(
        re.compile(r"\bbearer[ \t]{1,8}(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)", re.IGNORECASE),
        triggers=("bearer",),
        accepts=_looks_like_credential,
    ),
    _Rule(
        re.compile(r"\bbasic[ \t]{1,8}(?P<secret>[A-Za-z0-9+/]{8,}={0,2})", re.IGNORECASE),
        triggers=("basic",),
        accepts=_is_basic_credential,
    ),
    _Rule(
        re.compile(r"://[^\s:/?#@\[\]]*:(?P<secret>[^\s/?#@]+)@"),
        triggers=("://",),
    ),
    _Rule(
        re.compile(rf"[?&;](?:{_QUERY_KEYS})=(?P<secret>[^&#\s'\"<>]+)", re.IGNORECASE),
        triggers=("=",),
    ),
    _Rule(
        re.compile(
            rf"""(?<![A-Za-z0-9])(?:{_SECRET_KEYS})["']?[ \t]{{0,4}}[:=][ \t]{{0,4}}["']?"""
            r"""(?P<secret>[^\s"',;&)}\]]+)""",
            re.IGNORECASE,
        ),
        triggers=("=", ":"),
    ),
    _Rule(
        re.compile(
            r"(?<![A-Za-z0-9_-])(?P<secret>"
            r"sk-[A-Za-z0-9_-]{20,}"
            r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
            r"|gh[pousr]_[A-Za-z0-9]{30,}"
            r"|github_pat_[A-Za-z0-9_]{40,}"
            r"|xox[abposr]-[A-Za-z0-9-]{10,}"
            r"|AIza[A-Za-z0-9_-]{35}"
            r"|hf_[A-Za-z0-9]{30,}"
            r"|(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"
            r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}"
            r")"
        ),
        triggers=("sk-", "k_live_", "k_test_", "gh", "xox", "aiza", "hf_", "akia", "asia", "eyj"),
        accepts=_is_api_key,
    ),
    _Rule(
        re.compile(
            r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----(?P<secret>[A-Za-z0-9+/=\s]*)"
            r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----)?"
        ),
        triggers=("private key",),
        accepts=_has_content,
    ),
)


def _redact_matches(
    pattern: re.Pattern[str], text: str, accepts: Callable[[str], bool] | None = None
) -> str:
    """Replace each match's `secret` group, or the whole match without one, by `REDACTED`.

    A match whose `secret` group is empty or did not take part, or that `accepts` rejects, is
    left as it is.
    """
    has_group = "secret" in pattern.groupindex

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if not has_group:
            return REDACTED if whole else whole
        secret = match.group("secret")
        # A secret redacted by an earlier rule stays as it is, so redaction is idempotent.
        if not secret or secret.startswith(REDACTED[:-1]):
            return whole
        if accepts is not None and not accepts(secret):
            return whole
        start = match.start("secret") - match.start()
        end = match.end("secret") - match.start()
        return whole[:start] + REDACTED + whole[end:]

    return pattern.sub(replace, text)


def redact_text(
    text: str,
    *,
    token: str | None = None,
    patterns: Sequence[re.Pattern[str]] = (),
    builtin: bool = True,
) -> str:
    """Replace the secrets in `text` by `REDACTED`.

    Args:
        text: The text to redact.
        token: The configured API token, replaced wherever it appears; None or a token shorter
            than `MIN_TOKEN_LENGTH` is not looked for.
        patterns: Further patterns; a match's group named `secret`, or else the whole match,
            is replaced.
        builtin: Whether to apply the built-in rules listed in this module's docstring.

    Returns:
        The redacted text; `text` itself when nothing was found.
    """
    if token and len(token) >= MIN_TOKEN_LENGTH and token in text:
        text = text.replace(token, REDACTED)
    if builtin:
        lowered = text.lower()
        for rule in _BUILTIN_RULES:
            if not rule.triggers or any(trigger in lowered for trigger in rule.triggers):
                text = _redact_matches(rule.pattern, text, rule.accepts)
    for pattern in patterns:
        text = _redact_matches(pattern, text)
    return text


def compile_patterns(patterns: object) -> tuple[re.Pattern[str], ...]:
    """Compile the `redact_patterns` setting.

    Args:
        patterns: An iterable of regular expressions, as strings or compiled `str` patterns.

    Returns:
        The compiled patterns, in order.

    Raises:
        ConfigurationError: `patterns` is a single string or not iterable, or one pattern is not
            a valid regular expression of text, or matches the empty string.
    """
    if isinstance(patterns, (str, bytes, re.Pattern)):
        raise ConfigurationError(
            f"invalid redact_patterns {patterns!r}: expected a list of regular expressions;"
            " wrap a single pattern in a list"
        )
    if not isinstance(patterns, Iterable):
        raise ConfigurationError(
            f"invalid redact_patterns {patterns!r}: expected a list of regular expressions"
        )
    return tuple(_compile_pattern(pattern) for pattern in patterns)


def _compile_pattern(pattern: object) -> re.Pattern[str]:
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise ConfigurationError(
                f"invalid redact_patterns entry {pattern!r}: it matches bytes; compile it from"
                " a str, because event text is str"
            )
        compiled: re.Pattern[str] = pattern
    elif isinstance(pattern, str):
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ConfigurationError(
                f"invalid redact_patterns entry {pattern!r}: not a regular expression ({error});"
                " fix the pattern, or escape it with re.escape() to match the text literally"
            ) from None
    else:
        raise ConfigurationError(
            f"invalid redact_patterns entry {pattern!r}: expected a str or a compiled pattern"
        )
    if compiled.fullmatch("") is not None:
        raise ConfigurationError(
            f"invalid redact_patterns entry {compiled.pattern!r}: it matches the empty string, so"
            " it would insert the marker between every character; require at least one"
            " character, for example with + instead of *"
        )
    return compiled


# Events


def scrub_event(event: ModerationEvent, settings: Settings) -> ModerationEvent:
    """Return `event` with the secrets in its title and message replaced by `REDACTED`.

    Text that redaction makes longer than its limit is cut with the truncation marker.

    Args:
        event: The event to scrub.
        settings: The settings whose token, `redact_secrets` and `redact_patterns` apply.

    Returns:
        `event` itself when nothing was redacted, else a copy.
    """
    token = settings.api_token.strip() if settings.api_token else None
    title = _redact_field(event.title, MAX_TITLE_LENGTH, token, settings)
    message = _redact_field(event.message, MAX_MESSAGE_LENGTH, token, settings)
    if title == event.title and message == event.message:
        return event
    return dataclasses.replace(event, title=title, message=message)


def _redact_field(
    text: str | None, limit: int, token: str | None, settings: Settings
) -> str | None:
    if not text:
        return text
    redacted = redact_text(
        text,
        token=token,
        patterns=settings.redact_patterns,
        builtin=settings.redact_secrets,
    )
    return truncate(redacted, limit)


class _HookState(threading.local):
    running = False


_hook_state = _HookState()
_failure_log = _stats.LogThrottle(_LOG_INTERVAL_SECONDS)


def prepare_event(event: ModerationEvent, settings: Settings) -> ModerationEvent | None:
    """Scrub `event`, then pass it to the `before_send` hook, without raising an `Exception`.

    The hook receives the scrubbed event. What it returns is used as it is, without another
    scrub. An event reported while the hook runs on the same thread, such as one from a
    decorated function the hook calls, is scrubbed but not passed to the hook again.

    Args:
        event: The event about to be sent, spooled, written to the event log or captured.
        settings: The settings in force.

    Returns:
        The event to use, or None when it is dropped. A drop is counted as
        `dropped_before_send` when the hook returned None, raised or returned something else,
        and as `dropped_internal_error` when scrubbing failed.
    """
    try:
        scrubbed = scrub_event(event, settings)
    except Exception as error:
        _stats.count_drop("internal_error")
        _log_failure("scrub", f"scrubbing an event failed with {_describe_error(error)}")
        return None

    hook = settings.before_send
    if hook is None or _hook_state.running:
        return scrubbed
    _hook_state.running = True
    try:
        result = hook(scrubbed)
    except Exception as error:
        _drop_for_hook(type(error).__name__, f"raised {_describe_error(error)}")
        return None
    finally:
        _hook_state.running = False

    if result is None:
        _stats.count("dropped_before_send")
        return None
    if not isinstance(result, ModerationEvent):
        name = type(result).__name__
        _drop_for_hook(name, f"returned a {name}, not a ModerationEvent or None")
        return None
    return result


def _drop_for_hook(key: str, problem: str) -> None:
    _stats.count("dropped_before_send")
    _log_failure(f"hook-{key}", f"the before_send hook {problem}, so the event was dropped")


def _describe_error(error: BaseException) -> str:
    """Name the exception's type and where it was raised, without its text.

    The text may quote the event, which can hold secrets that the hook was meant to remove.
    """
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return type(error).__name__
    last = frames[-1]
    return f"{type(error).__name__} at {last.filename}:{last.lineno} in {last.name}"


def _log_failure(key: str, description: str) -> None:
    """Log `description` at ERROR, at most once a minute for each `key`."""
    if not _failure_log.allow(key):
        return
    # A broken logging handler must not reach the guarded code either.
    with contextlib.suppress(Exception):
        logger.error(
            "%s; repeats are counted in mlops_guard_events.stats() and logged at most once a"
            " minute",
            description,
        )


def reset_log_limits() -> None:
    """Forget when failures were last logged, so the next one is logged; for tests."""
    _failure_log.reset()
