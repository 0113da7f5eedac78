"""Invalid input: the explicit call and the CLI explain it, automatic reporting sanitizes it.

The explicit call rejects each class of invalid field with a `ValueError` that names the field,
shows the value shortened, and gives the fix. The `report` command prints that message and
exits with status 2. Automatic reporting never raises on the same input: it sanitizes the
event and reports it. Unit tests of each check are in tests/test_event.py.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from mlops_guard_events import (
    ModerationEventType,
    _dispatch,
    _stats,
    cli,
    configure,
    flush,
    guard_events,
    report_moderation_event,
    stats,
)
from mlops_guard_events._event import MAX_MESSAGE_LENGTH, MAX_NAME_LENGTH, MAX_TITLE_LENGTH
from mlops_guard_events._receiver import RemoteEventsReceiver
from mlops_guard_events.testing import capture_events

RUNTIME = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR
DELIVERY_TIMEOUT = 30.0


@pytest.fixture(autouse=True)
def fresh_counters() -> None:
    _stats.reset_counters()


class BrokenStr:
    """An object whose `__str__` and `__repr__` raise, as a buggy user class may."""

    def __str__(self) -> str:
        raise RuntimeError("broken __str__")

    def __repr__(self) -> str:
        raise RuntimeError("broken __repr__")


# The explicit call: (arguments, field named, value shown, fix given).

INVALID_CALLS = [
    pytest.param({"title": 42}, "title", "42", "expected a string or None", id="title-int"),
    pytest.param(
        {"message": b"bytes"}, "message", "b'bytes'", "expected a string", id="message-bytes"
    ),
    pytest.param({"deployment_id": 123}, "deployment_id", "123", "expected a string", id="id-int"),
    pytest.param(
        {"guard_name": 42}, "guard_name", "42", "expected a string or None", id="guard-name-int"
    ),
    pytest.param(
        {"metric_name": ["latency"]},
        "metric_name",
        "['latency']",
        "expected a string or None",
        id="metric-name-list",
    ),
    pytest.param(
        {"guard_name": BrokenStr()},
        "guard_name",
        "<BrokenStr object>",
        "expected a string or None",
        id="guard-name-broken-repr",
    ),
    pytest.param({"event_type": ""}, "event_type", "''", "expected one of", id="empty-event-type"),
    pytest.param(
        {"deployment_id": ""}, "deployment_id", "''", "or None to leave it out", id="empty-id"
    ),
    pytest.param({"org_id": "   "}, "org_id", "'   '", "non-empty ID", id="blank-org-id"),
    pytest.param(
        {"deployment_id": "None"}, "deployment_id", "'None'", "pass None", id="none-text-id"
    ),
    pytest.param({"title": "a\x00b"}, "title", "'a\\x00b'", "remove it", id="nul-title"),
    pytest.param(
        {"guard_name": "g\x00"}, "guard_name", "'g\\x00'", "remove it", id="nul-guard-name"
    ),
    pytest.param(
        {"message": "bad \udcff byte"},
        "message",
        "'bad \\udcff byte'",
        "errors='replace'",
        id="lone-surrogate",
    ),
    pytest.param(
        {"title": "t" * (MAX_TITLE_LENGTH + 1)},
        "title",
        f"{MAX_TITLE_LENGTH + 1} characters",
        f"shorten it to at most {MAX_TITLE_LENGTH}",
        id="oversize-title",
    ),
    pytest.param(
        {"message": "m" * (MAX_MESSAGE_LENGTH + 1)},
        "message",
        f"{MAX_MESSAGE_LENGTH + 1} characters",
        f"shorten it to at most {MAX_MESSAGE_LENGTH}",
        id="oversize-message",
    ),
    pytest.param(
        {"metric_name": "n" * (MAX_NAME_LENGTH + 1)},
        "metric_name",
        f"{MAX_NAME_LENGTH + 1} characters",
        f"shorten it to at most {MAX_NAME_LENGTH}",
        id="oversize-name",
    ),
    pytest.param(
        {"timestamp": "noon"}, "timestamp", "'noon'", "YYYY-MM-DDTHH:MM:SS", id="malformed-time"
    ),
    pytest.param(
        {"timestamp": "2026-02-30T12:00:00Z"},
        "timestamp",
        "'2026-02-30T12:00:00Z'",
        "give a date and time that exist",
        id="impossible-date",
    ),
    pytest.param(
        {"timestamp": "2026-01-31T12:00:00+25:00"},
        "timestamp",
        "'2026-01-31T12:00:00+25:00'",
        "give a date and time that exist",
        id="impossible-offset",
    ),
    pytest.param(
        {"timestamp": 1_769_860_800},
        "timestamp",
        "1769860800",
        "RFC 3339 string such as",
        id="epoch-seconds",
    ),
    pytest.param(
        {"timestamp": datetime(1, 1, 1, tzinfo=timezone.max)},
        "timestamp",
        "datetime.datetime(1, 1, 1",
        "give a time within that range",
        id="time-before-utc-range",
    ),
    pytest.param(
        {"event_type": "moderationModelRuntimeEror"},
        "event_type",
        "'moderationModelRuntimeEror'",
        "did you mean 'moderationModelRuntimeError'",
        id="misspelt-event-type",
    ),
    pytest.param(
        {"event_type": "MODERATION_MODEL_CONFIG_ERROR"},
        "event_type",
        "'MODERATION_MODEL_CONFIG_ERROR'",
        "did you mean 'moderationModelConfigError'",
        id="enum-name-event-type",
    ),
    pytest.param({"event_type": None}, "event_type", "None", "expected one of", id="no-type"),
]


@pytest.mark.parametrize(("arguments", "field", "shown", "fix"), INVALID_CALLS)
def test_explicit_call_explains_invalid_field(
    receiver: RemoteEventsReceiver, arguments: dict[str, Any], field: str, shown: str, fix: str
) -> None:
    configure(endpoint=receiver.endpoint)
    arguments = {"event_type": RUNTIME, **arguments}

    with pytest.raises(ValueError, match=f"invalid {field}") as caught:
        report_moderation_event(**arguments)

    message = str(caught.value)
    assert f"invalid {field}" in message
    assert shown in message
    assert fix in message
    assert receiver.requests() == []


def test_long_value_shown_shortened() -> None:
    with pytest.raises(ValueError, match="NUL character") as caught:
        report_moderation_event(RUNTIME, message="x" * 5000 + "\x00")

    # The repr of the value is 5006 characters: 5000 letters, the escape and the quotes.
    assert len(str(caught.value)) < 300
    assert "... (5006 chars)" in str(caught.value)


def test_oversize_id_names_limit() -> None:
    with pytest.raises(ValueError, match="invalid deployment_id") as caught:
        report_moderation_event(RUNTIME, deployment_id="d" * (MAX_NAME_LENGTH + 1))

    message = str(caught.value)
    assert f"over the limit of {MAX_NAME_LENGTH}" in message
    assert "'dddd" in message
    assert f"shorten it to at most {MAX_NAME_LENGTH} characters" in message


# The report command: exit status 2 and the same message.

INVALID_OPTIONS = [
    pytest.param(["--deployment-id", ""], "deployment_id", "''", id="empty-id"),
    pytest.param(["--org-id", "None"], "org_id", "'None'", id="none-text-id"),
    pytest.param(["--title", "t" * 513], "title", "513 characters", id="oversize-title"),
    pytest.param(["--guard-name", "g" * 513], "guard_name", "513 characters", id="oversize-name"),
    pytest.param(
        ["--timestamp", "2026-02-30T12:00:00Z"],
        "timestamp",
        "day is out of range",
        id="impossible-date",
    ),
    pytest.param(["--timestamp", "31/01/2026"], "timestamp", "'31/01/2026'", id="malformed-time"),
]


@pytest.mark.parametrize(("options", "field", "detail"), INVALID_OPTIONS)
def test_report_command_exits_2(
    options: list[str], field: str, detail: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["report", "--event-type", "moderationModelRuntimeError", *options])

    output = capsys.readouterr()
    assert status == cli.EXIT_USAGE
    assert f"invalid {field}" in output.err
    assert detail in output.err
    assert "Traceback" not in output.err


def test_report_command_suggests_type(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["report", "--event-type", "moderation-model-scoring-error"])

    assert status == cli.EXIT_USAGE
    assert "did you mean 'moderationModelScoringError'" in capsys.readouterr().err


def test_report_command_undecodable_argument(tmp_path: Path) -> None:
    # Bytes that are not UTF-8 reach Python as lone surrogates, which JSON cannot carry.
    environment = {"MLOPS_GUARD_EVENTS_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    arguments: list[str | bytes] = [
        sys.executable,
        "-m",
        "mlops_guard_events",
        "report",
        "--event-type",
        "moderationModelRuntimeError",
        "--title",
        b"caf\xe9 guard",
    ]

    result = subprocess.run(
        arguments, capture_output=True, env=environment, timeout=60, check=False
    )

    stderr = result.stderr.decode("utf-8", errors="replace")
    assert result.returncode == cli.EXIT_USAGE
    assert "invalid title 'caf\\udce9 guard': contains a lone surrogate" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "events.jsonl").exists()


# Automatic reporting: the same input is sanitized and reported, never raised.

SANITIZED_CALLS = [
    pytest.param({"title": 42}, "title", "42", id="title-int"),
    pytest.param({"message": b"bytes"}, "message", "b'bytes'", id="message-bytes"),
    pytest.param({"guard_name": 42}, "guard_name", "42", id="guard-name-int"),
    pytest.param(
        {"metric_name": BrokenStr()}, "metric_name", "<BrokenStr object>", id="broken-str"
    ),
    pytest.param({"deployment_id": ""}, "deployment_id", None, id="empty-id"),
    pytest.param({"org_id": "None"}, "org_id", None, id="none-text-id"),
    pytest.param({"deployment_id": 7}, "deployment_id", "7", id="id-int"),
    pytest.param({"title": "a\x00b"}, "title", "a\ufffdb", id="nul-title"),
    pytest.param({"message": "bad \udcff"}, "message", "bad \ufffd", id="lone-surrogate"),
]


@pytest.mark.parametrize(("arguments", "field", "expected"), SANITIZED_CALLS)
def test_automatic_reporting_sanitizes(
    arguments: dict[str, Any], field: str, expected: str | None
) -> None:
    fields: dict[str, Any] = {"title": "Guard failed", "message": None, **arguments}

    with capture_events() as captured:
        submitted = _dispatch.report_automatic(RUNTIME, **fields)

    assert submitted
    assert getattr(captured[0], field) == expected
    assert stats()["reporting_errors"] == 0


@pytest.mark.parametrize(
    ("field", "limit"),
    [("title", MAX_TITLE_LENGTH), ("message", MAX_MESSAGE_LENGTH), ("guard_name", MAX_NAME_LENGTH)],
)
def test_automatic_reporting_cuts_oversize(field: str, limit: int) -> None:
    fields: dict[str, Any] = {"title": "Guard failed", "message": None, field: "x" * (limit * 3)}

    with capture_events() as captured:
        _dispatch.report_automatic(RUNTIME, **fields)

    assert len(getattr(captured[0], field)) == limit
    assert getattr(captured[0], field).endswith("characters]")


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(RuntimeError("nul \x00 and \udcff surrogate"), id="bad-characters"),
        pytest.param(RuntimeError("x" * 1_000_000), id="one-megabyte"),
        pytest.param(UnprintableError(), id="broken-str"),
    ],
)
def test_guard_reports_any_exception(error: Exception) -> None:
    @guard_events(lambda text: BrokenStr(), fallback="fallback")
    def check(text: str) -> str:
        raise error

    with capture_events() as captured:
        assert check("prompt") == "fallback"

    assert len(captured) == 1
    assert len(captured[0].message or "") <= MAX_MESSAGE_LENGTH
    assert stats()["reporting_errors"] == 0


@pytest.mark.usefixtures("fresh_worker")
def test_sanitized_events_accepted_by_server(receiver: RemoteEventsReceiver) -> None:
    configure(endpoint=receiver.endpoint, coalesce_window=0)
    weird: list[Any] = ["nul \x00", "surrogate \udcff", "x" * 20_000, 42, BrokenStr(), "None", ""]

    for value in weird:
        _dispatch.report_automatic(
            RUNTIME, title=value, message=value, guard_name=value, deployment_id=value
        )
    assert flush(DELIVERY_TIMEOUT) == 0

    events = receiver.wait_for_events(len(weird), timeout_seconds=DELIVERY_TIMEOUT)
    assert len(events) == len(weird)
    assert stats()["rejected"] == 0
