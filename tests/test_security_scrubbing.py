"""Secrets and prompt text are scrubbed from events before they leave the process or reach disk.

Covered here:

- built-in redaction of secret shapes, the configured token and user patterns in titles and
  messages;
- the `before_send` hook;
- where scrubbing runs: after storm control, and before capture, the event log and the spool;
- prompts and responses left out of events by default.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import string
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_guard_events import (
    ConfigurationError,
    ModerationEvent,
    _dispatch,
    _scrub,
    _stats,
    _worker,
    configure,
    flush,
    guard_events,
    report_moderation_event,
    stats,
)
from mlops_guard_events._event import MAX_MESSAGE_LENGTH, MAX_TITLE_LENGTH, ModerationEventType
from mlops_guard_events._receiver import Faults, RemoteEventsReceiver
from mlops_guard_events._scrub import REDACTED, redact_text, scrub_event
from mlops_guard_events.testing import capture_events

RUNTIME = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR
TOKEN = "dr-9f8e7d6c5b4a3210-token"
DELIVERY_TIMEOUT = 30.0


@pytest.fixture(autouse=True)
def fresh_counters() -> Iterator[None]:
    _stats.reset_counters()
    _scrub.reset_log_limits()
    yield
    _scrub.reset_log_limits()


@pytest.fixture(autouse=True)
def private_log_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the worker a fresh log limit, so this module's warnings do not silence others'."""
    monkeypatch.setattr(_worker, "_throttle", _stats.LogThrottle())


def make_event(**fields: object) -> ModerationEvent:
    fields.setdefault("timestamp", "2026-01-31T12:00:00Z")
    return ModerationEvent.create(RUNTIME, **fields)  # type: ignore[arg-type]


# Built-in rules: each secret shape is found, and the text around it is kept.

SECRETS = [
    pytest.param(
        "upstream said 401 for Authorization: Bearer abc123DEF456ghi789",
        "abc123DEF456ghi789",
        "upstream said 401 for Authorization: Bearer [REDACTED]",
        id="authorization-header",
    ),
    pytest.param(
        "headers={'Authorization': 'Token 9a8b7c6d5e4f3a2b1c0d'}",
        "9a8b7c6d5e4f3a2b1c0d",
        "headers={'Authorization': 'Token [REDACTED]'}",
        id="authorization-in-dict",
    ),
    pytest.param(
        "retrying with bearer eyJraWQiOiJ4In0.payload.sig_9",
        "eyJraWQiOiJ4In0.payload.sig_9",
        "retrying with bearer [REDACTED]",
        id="bearer-lowercase",
    ),
    pytest.param(
        "proxy rejected Basic dXNlcjpodW50ZXIy",
        "dXNlcjpodW50ZXIy",
        "proxy rejected Basic [REDACTED]",
        id="basic-credential",
    ),
    pytest.param(
        "cannot reach postgresql://app:s3cr3t-pw@db.internal:5432/guards",
        "s3cr3t-pw",
        "cannot reach postgresql://app:[REDACTED]@db.internal:5432/guards",
        id="url-password",
    ),
    pytest.param(
        "GET https://api.example.com/v1/score?api_key=k-123456&lang=en failed",
        "k-123456",
        "GET https://api.example.com/v1/score?api_key=[REDACTED]&lang=en failed",
        id="query-api-key",
    ),
    pytest.param(
        "redirected to https://idp.example.com/cb?state=1&token=opaque-value-77",
        "opaque-value-77",
        "redirected to https://idp.example.com/cb?state=1&token=[REDACTED]",
        id="query-token",
    ),
    pytest.param(
        "config error: db_password=hunter2; retry later",
        "hunter2",
        "config error: db_password=[REDACTED]; retry later",
        id="password-assignment",
    ),
    pytest.param(
        'payload {"api_key": "q9w8e7r6t5y4", "model": "gpt"}',
        "q9w8e7r6t5y4",
        'payload {"api_key": "[REDACTED]", "model": "gpt"}',
        id="json-api-key",
    ),
    pytest.param(
        "openai.AuthenticationError: Incorrect API key sk-proj-Ab3dEf6hIj9kLm2nOp5q",
        "sk-proj-Ab3dEf6hIj9kLm2nOp5q",
        "openai.AuthenticationError: Incorrect API key [REDACTED]",
        id="openai-key",
    ),
    pytest.param(
        "anthropic key sk-ant-api03-XyZ123abcDEF456ghiJKL",
        "sk-ant-api03-XyZ123abcDEF456ghiJKL",
        "anthropic key [REDACTED]",
        id="anthropic-key",
    ),
    pytest.param(
        "clone failed with ghp_0123456789abcdefghijABCDEFGHIJ0123456789",
        "ghp_0123456789abcdefghijABCDEFGHIJ0123456789",
        "clone failed with [REDACTED]",
        id="github-token",
    ),
    pytest.param(
        "boto3 used AKIAIOSFODNN7EXAMPLE for the upload",
        "AKIAIOSFODNN7EXAMPLE",
        "boto3 used [REDACTED] for the upload",
        id="aws-access-key-id",
    ),
    pytest.param(
        "hub login hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
        "hub login [REDACTED]",
        id="hugging-face-token",
    ),
    pytest.param(
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ.c2lnbmF0dXJlLXZhbHVl expired",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ.c2lnbmF0dXJlLXZhbHVl",
        "jwt [REDACTED] expired",
        id="json-web-token",
    ),
    pytest.param(
        "bad key -----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----",
        "MIIBOgIBAAJBAK",
        "bad key -----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----",
        id="pem-private-key",
    ),
]


@pytest.mark.parametrize(("text", "secret", "expected"), SECRETS)
def test_builtin_rule_redacts(text: str, secret: str, expected: str) -> None:
    redacted = redact_text(text)

    assert secret not in redacted
    assert redacted == expected


def test_configured_token_redacted_anywhere() -> None:
    text = f"call failed: token={TOKEN}, header Bearer {TOKEN}, quoted '{TOKEN}'"

    redacted = redact_text(text, token=TOKEN)

    assert TOKEN not in redacted
    assert redacted.count(REDACTED) == 3


def test_short_token_not_redacted() -> None:
    assert redact_text("the cat sat", token="cat") == "the cat sat"


# False positives: ordinary guard and metric messages come through unchanged.

ORDINARY_MESSAGES = [
    "Guard 'Toxicity' timed out after 2.0 s",
    "TimeoutError: no result within 2 s, so the call was cancelled.",
    "KeyError: 'response'",
    "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.openai.com', port=443):"
    " Max retries exceeded with url: /v1/chat/completions (Caused by NewConnectionError("
    "'<urllib3.connection.HTTPSConnection object at 0x7f3a2c1b0d90>: Failed to establish a new"
    " connection: [Errno 111] Connection refused'))",
    "openai.RateLimitError: Error code: 429 - {'error': {'message': 'Rate limit reached for"
    " gpt-4o on tokens per min (TPM): Limit 30000, Used 29000, Requested 1500.', 'type':"
    " 'tokens', 'code': 'rate_limit_exceeded'}}",
    "Token limit exceeded: the prompt has 9000 tokens, the model accepts 8192",
    "Bearer authentication failed: the token has expired",
    "Authorization failed for deployment 65a1b2c3d4e5f6a7b8c9d0e1",
    "Basic validation failed for field 'email'",
    "Password must be at least 12 characters",
    "api_key is missing; set OPENAI_API_KEY",
    "model sk-learn-pipeline-version-20240101 failed to load",
    "Custom metric 'latency_ms' is not unique for deployment 65a1b2c3d4e5f6a7b8c9d0e1",
    "HTTP 503 Service Unavailable from http://guard-backend:8080/score?page=2&sort=asc",
    "cloning ssh://git@github.com/org/guards.git at 3f2a1b",
    "postgresql://db.internal:5432/app is unreachable",
    "ValueError: prompt contains 3 PII entities (EMAIL, PHONE, SSN)",
    "JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
    "time=2026-01-31T12:00:00Z level=error msg=timeout",
    "Repeated 1,024 more times in the last 60 s; the last message was: KeyError: 'score'",
]


@pytest.mark.parametrize("message", ORDINARY_MESSAGES)
def test_ordinary_message_unchanged(message: str) -> None:
    assert redact_text(message, token=TOKEN) == message


# Linear time: adversarial text of 1 MB, far beyond the 16384-character message limit.

ADVERSARIAL_SIZE = 1_000_000
# A linear scan of 1 MB takes well under a second. A pattern that backtracks quadratically would
# take hours (an estimate from about 10**12 steps), so this bound distinguishes the two.
ADVERSARIAL_SECONDS = 10.0

ADVERSARIAL_TEXTS = {
    "authorization-repeated": "authorization:" * (ADVERSARIAL_SIZE // 14),
    "authorization-long-value": "Authorization: " + "a" * ADVERSARIAL_SIZE,
    "bearer-repeated": "Bearer " * (ADVERSARIAL_SIZE // 7),
    "basic-long-base64": "Basic " + "QUJD" * (ADVERSARIAL_SIZE // 4),
    "url-scheme-repeated": "://" * (ADVERSARIAL_SIZE // 3),
    "url-user-without-at": "://" + "u" * ADVERSARIAL_SIZE + ":" + "p" * ADVERSARIAL_SIZE,
    "url-colons": "://a:" * (ADVERSARIAL_SIZE // 5),
    "query-repeated": "?password=" * (ADVERSARIAL_SIZE // 10),
    "assignment-repeated": "password:" * (ADVERSARIAL_SIZE // 9),
    "sk-repeated": "sk-" * (ADVERSARIAL_SIZE // 3),
    "jwt-without-dots": "eyJ" + "a" * ADVERSARIAL_SIZE,
    "jwt-segments": "eyJaaaaaaaaa." * (ADVERSARIAL_SIZE // 13),
    "pem-headers": "-----BEGIN PRIVATE KEY-----" * (ADVERSARIAL_SIZE // 27),
    "letters": "a" * ADVERSARIAL_SIZE,
    "mixed-triggers": "Bearer sk-aaa://x:y@ ?token= password: eyJ. " * (ADVERSARIAL_SIZE // 45),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL_TEXTS))
def test_redaction_linear_on_adversarial_text(name: str) -> None:
    text = ADVERSARIAL_TEXTS[name]

    started = time.perf_counter()
    redact_text(text, token=TOKEN)
    elapsed = time.perf_counter() - started

    assert elapsed < ADVERSARIAL_SECONDS


# Properties of redaction.

TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_."
secret_words = st.sampled_from(
    [
        "Bearer abc123DEF456ghi789",
        "sk-proj-Ab3dEf6hIj9kLm2nOp5q",
        "https://u:pw-77@h.example.com/",
        "?api_key=v-1&",
        "password=hunter2",
        "Basic dXNlcjpwYXNz",
        "[REDACTED]",
    ]
)
texts = st.lists(st.text(max_size=30) | secret_words, max_size=8).map(" ".join)


@given(text=texts, token=st.text(TOKEN_ALPHABET, min_size=12, max_size=40))
def test_redaction_is_idempotent(text: str, token: str) -> None:
    once = redact_text(text, token=token)

    assert redact_text(once, token=token) == once


@given(text=texts, token=st.text(TOKEN_ALPHABET, min_size=12, max_size=40))
def test_token_never_survives(text: str, token: str) -> None:
    assert token not in redact_text(f"{text}{token}{text}", token=token)


@given(
    title=st.text(max_size=MAX_TITLE_LENGTH),
    message=st.text(max_size=2000),
    fill=st.integers(min_value=0, max_value=MAX_MESSAGE_LENGTH),
)
def test_scrubbed_event_stays_valid(title: str, message: str, fill: int) -> None:
    # Each "q" grows into the 10-character marker, so the text can grow past its limit.
    settings = configure(redact_patterns=["q"])
    event = make_event(title=title, message="q" * fill + message, sanitize=True)

    scrubbed = scrub_event(event, settings)

    assert len(scrubbed.title or "") <= MAX_TITLE_LENGTH
    assert len(scrubbed.message or "") <= MAX_MESSAGE_LENGTH
    assert ModerationEvent.from_wire(json.loads(json.dumps(scrubbed.to_wire()))) == scrubbed


def test_growth_past_limit_is_truncated() -> None:
    # Each one-letter match becomes the 10-character marker, so the message grows tenfold.
    settings = configure(redact_patterns=["q"])
    event = make_event(message="q" * MAX_MESSAGE_LENGTH)

    scrubbed = scrub_event(event, settings)

    assert scrubbed.message is not None
    assert len(scrubbed.message) == MAX_MESSAGE_LENGTH
    assert scrubbed.message.endswith("characters]")


def test_names_and_ids_not_scrubbed() -> None:
    settings = configure(redact_patterns=["guard"])
    event = make_event(guard_name="guard-sk-proj-Ab3dEf6hIj9kLm2nOp5q", deployment_id="guard-1")

    scrubbed = scrub_event(event, settings)

    assert scrubbed.guard_name == "guard-sk-proj-Ab3dEf6hIj9kLm2nOp5q"
    assert scrubbed.deployment_id == "guard-1"


# User patterns: redact_patterns and redact_secrets.


def test_user_pattern_redacts_whole_match() -> None:
    configure(redact_patterns=[r"cust-\d{6}"])

    with capture_events() as captured:
        report_moderation_event(RUNTIME, message="lookup of cust-123456 failed")

    assert captured[0].message == "lookup of [REDACTED] failed"


def test_user_pattern_secret_group_only() -> None:
    configure(redact_patterns=[re.compile(r"email=(?P<secret>[^&\s]+)")])

    with capture_events() as captured:
        report_moderation_event(RUNTIME, title="email=ann@example.com rejected")

    assert captured[0].title == "email=[REDACTED] rejected"


def test_user_pattern_unmatched_group_kept() -> None:
    configure(redact_patterns=[r"key(=(?P<secret>\w+))?"])

    with capture_events() as captured:
        report_moderation_event(RUNTIME, message="key=abc123, then a bare key")

    assert captured[0].message == "key=[REDACTED], then a bare key"


def test_builtin_rules_can_be_switched_off() -> None:
    configure(redact_secrets=False)
    message = "key sk-proj-Ab3dEf6hIj9kLm2nOp5q"

    with capture_events() as captured:
        report_moderation_event(RUNTIME, message=message)

    assert captured[0].message == message


def test_token_redacted_without_builtin_rules(receiver: RemoteEventsReceiver) -> None:
    configure(endpoint=receiver.endpoint, api_token=TOKEN, redact_secrets=False)

    with capture_events() as captured:
        report_moderation_event(RUNTIME, message=f"token {TOKEN}")

    assert captured[0].message == f"token {REDACTED}"


@pytest.mark.parametrize(
    ("patterns", "expected_message"),
    [
        pytest.param("cust-\\d+", "wrap a single pattern in a list", id="bare-string"),
        pytest.param(["cust-(\\d+"], "not a regular expression", id="invalid-regex"),
        pytest.param(["x*"], "matches the empty string", id="empty-match"),
        pytest.param([re.compile(b"x")], "it matches bytes", id="bytes-pattern"),
        pytest.param([42], "expected a str or a compiled pattern", id="not-a-pattern"),
        pytest.param(7, "expected a list of regular expressions", id="not-iterable"),
    ],
)
def test_invalid_redact_patterns_raise(patterns: object, expected_message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(expected_message)):
        configure(redact_patterns=patterns)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_redact_secrets_must_be_bool(value: object) -> None:
    with pytest.raises(ConfigurationError, match="invalid redact_secrets"):
        configure(redact_secrets=value)  # type: ignore[arg-type]


def test_before_send_must_be_callable() -> None:
    with pytest.raises(ConfigurationError, match="invalid before_send 'drop'"):
        configure(before_send="drop")  # type: ignore[arg-type]


# The before_send hook on the automatic path.


def failing_guard(message: str) -> Callable[[], str]:
    @guard_events("Toxicity", fallback="fallback")
    def check() -> str:
        raise RuntimeError(message)

    return check


def test_hook_changes_event() -> None:
    def add_note(event: ModerationEvent) -> ModerationEvent:
        return dataclasses.replace(event, title=f"[staging] {event.title}")

    configure(before_send=add_note)

    with capture_events() as captured:
        assert failing_guard("model unavailable")() == "fallback"

    assert captured[0].title == "[staging] Guard 'Toxicity' failed"


def test_hook_receives_redacted_event() -> None:
    seen: list[ModerationEvent] = []

    def record(event: ModerationEvent) -> ModerationEvent:
        seen.append(event)
        return event

    configure(before_send=record)

    with capture_events():
        failing_guard("key sk-proj-Ab3dEf6hIj9kLm2nOp5q rejected")()

    assert seen[0].message is not None
    assert seen[0].message.startswith("RuntimeError: key [REDACTED] rejected\n")


def test_hook_returning_none_drops() -> None:
    configure(before_send=lambda event: None)

    with capture_events() as captured:
        assert failing_guard("model unavailable")() == "fallback"

    assert len(captured) == 0
    assert stats()["dropped_before_send"] == 1


def test_hook_error_never_reaches_guard(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: ModerationEvent) -> ModerationEvent:
        raise ValueError(f"cannot handle {event.message}")

    configure(before_send=broken)
    check = failing_guard("prompt was: my-private-prompt")

    with capture_events() as captured:
        results = [check() for _ in range(3)]

    assert results == ["fallback"] * 3
    assert len(captured) == 0
    assert stats()["dropped_before_send"] == 3
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "ValueError" in errors[0].getMessage()
    assert "in broken" in errors[0].getMessage()
    assert "my-private-prompt" not in caplog.text


def test_hook_error_keeps_guard_exception() -> None:
    def broken(event: ModerationEvent) -> ModerationEvent:
        raise ValueError("hook bug")

    configure(before_send=broken)
    failure = RuntimeError("model unavailable")

    @guard_events("Toxicity")
    def check() -> None:
        raise failure

    with capture_events(), pytest.raises(RuntimeError) as caught:
        check()

    assert caught.value is failure
    assert caught.value.__context__ is None


def test_hook_wrong_return_drops(caplog: pytest.LogCaptureFixture) -> None:
    configure(before_send=lambda event: event.to_wire())  # type: ignore[arg-type,return-value]

    with capture_events() as captured:
        failing_guard("model unavailable")()

    assert len(captured) == 0
    assert stats()["dropped_before_send"] == 1
    assert "returned a dict, not a ModerationEvent" in caplog.text


def test_hook_reporting_itself_terminates() -> None:
    calls: list[str | None] = []

    def noisy(event: ModerationEvent) -> ModerationEvent:
        calls.append(event.title)
        report_moderation_event(RUNTIME, title="reported from the hook")
        return event

    configure(before_send=noisy)

    with capture_events() as captured:
        failing_guard("model unavailable")()

    assert calls == ["Guard 'Toxicity' failed"]
    assert [event.title for event in captured] == [
        "reported from the hook",
        "Guard 'Toxicity' failed",
    ]


# The before_send hook on the explicit path.


def test_explicit_hook_none_sends_nothing(receiver: RemoteEventsReceiver) -> None:
    configure(endpoint=receiver.endpoint, before_send=lambda event: None)

    report_moderation_event(RUNTIME, title="dropped by the hook")

    assert receiver.requests() == []
    assert stats()["dropped_before_send"] == 1


def test_explicit_hook_error_not_raised(
    receiver: RemoteEventsReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: ModerationEvent) -> ModerationEvent:
        raise KeyError(event.title)

    configure(endpoint=receiver.endpoint, before_send=broken)

    report_moderation_event(RUNTIME, title="secret-title-text")

    assert receiver.requests() == []
    assert stats()["dropped_before_send"] == 1
    assert "KeyError" in caplog.text
    assert "secret-title-text" not in caplog.text


# Where scrubbing runs.


@pytest.mark.usefixtures("fresh_worker")
def test_storm_scrubs_only_sent_events(receiver: RemoteEventsReceiver) -> None:
    seen: list[ModerationEvent] = []

    def record(event: ModerationEvent) -> ModerationEvent:
        seen.append(event)
        return event

    configure(endpoint=receiver.endpoint, coalesce_window=600, before_send=record)
    check = failing_guard("key sk-proj-Ab3dEf6hIj9kLm2nOp5q rejected")

    for _ in range(50):
        check()
    assert flush(DELIVERY_TIMEOUT) == 0

    bodies = receiver.wait_for_events(2, timeout_seconds=DELIVERY_TIMEOUT)
    assert len(seen) == 2
    assert stats()["coalesced"] == 49
    assert all("sk-proj" not in json.dumps(body) for body in bodies)
    assert bodies[1]["message"].startswith("Repeated 49 more times")


@pytest.mark.usefixtures("fresh_worker")
def test_event_log_gets_redacted_text(tmp_path: Path) -> None:
    log_path = tmp_path / "events.jsonl"
    configure(event_log_path=log_path)

    failing_guard("upstream 401 for Bearer abc123DEF456ghi789")()
    report_moderation_event(RUNTIME, message="key sk-proj-Ab3dEf6hIj9kLm2nOp5q")
    assert flush(DELIVERY_TIMEOUT) == 0

    text = log_path.read_text()
    assert text.count(REDACTED) == 2
    assert "abc123DEF456ghi789" not in text
    assert "sk-proj" not in text


@pytest.mark.usefixtures("fresh_worker")
def test_spool_gets_redacted_text(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with RemoteEventsReceiver(faults=Faults(status=503)) as receiver:
        configure(endpoint=receiver.endpoint, state_dir=state_dir, max_retries=0)
        failing_guard("upstream 401 for Bearer abc123DEF456ghi789")()
        receiver.wait_for_requests(1, timeout_seconds=DELIVERY_TIMEOUT)
        flush(DELIVERY_TIMEOUT)

    spooled = b"".join(path.read_bytes() for path in (state_dir / "spool").iterdir())
    assert REDACTED.encode() in spooled
    assert b"abc123DEF456ghi789" not in spooled


def test_capture_gets_redacted_text() -> None:
    with capture_events() as captured:
        _dispatch.report_automatic(RUNTIME, title="t", message="pw at https://u:pw-77@h.example/")

    assert captured[0].message == "pw at https://u:[REDACTED]@h.example/"


# Prompt and response text stay out of events unless the user opts in.

PROMPT = "PROMPT: my card is 4111-1111-1111-1111"
RESPONSE = "RESPONSE: here is the card number back"


def guard_with_options(*, include_arguments: bool = False, include_result: bool = False) -> Any:
    @guard_events(
        "PII",
        blocked=lambda result: "leaks a card number",
        include_arguments=include_arguments,
        include_result=include_result,
    )
    def check(prompt: str) -> str:
        return RESPONSE

    return check


def guard_that_fails() -> Any:
    @guard_events("PII", fallback="")
    def check(prompt: str) -> str:
        raise RuntimeError("detector unavailable")

    return check


def test_prompt_and_response_left_out() -> None:
    with capture_events() as captured:
        guard_with_options()(PROMPT)
        guard_that_fails()(PROMPT)

    wire = json.dumps([event.to_wire() for event in captured])
    assert len(captured) == 2
    assert "PROMPT" not in wire
    assert "RESPONSE" not in wire


def test_opt_in_adds_prompt_and_response() -> None:
    with capture_events() as captured:
        guard_with_options(include_arguments=True, include_result=True)(PROMPT)

    assert captured[0].message is not None
    assert "PROMPT" in captured[0].message
    assert "RESPONSE" in captured[0].message
