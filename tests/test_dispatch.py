"""The automatic path's entry: it builds forgiving events and never raises."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from mlops_guard_events import _config, _dispatch, _stats
from mlops_guard_events._event import MAX_MESSAGE_LENGTH, ModerationEvent, ModerationEventType
from mlops_guard_events.testing import capture_events

RUNTIME = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Iterator[None]:
    for variable in ("DATAROBOT_ENDPOINT", "DATAROBOT_API_TOKEN", "MLOPS_DEPLOYMENT_ID"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DATAROBOT_CONFIG_FILE", "")
    monkeypatch.setenv("MLOPS_GUARD_EVENTS_STATE_DIR", str(tmp_path))
    _config.reset_settings()
    _stats.reset_counters()
    yield
    _config.reset_settings()


def test_report_automatic_fills_configured_ids() -> None:
    _config.configure(deployment_id="dep-1", org_id="org-1")
    with capture_events() as captured:
        taken = _dispatch.report_automatic(RUNTIME, title="t", message="m", guard_name="Toxicity")
    assert taken
    event = captured[0]
    assert event.deployment_id == "dep-1"
    assert event.org_id == "org-1"
    assert event.guard_name == "Toxicity"


def test_report_automatic_sanitizes_instead_of_raising() -> None:
    with capture_events() as captured:
        _dispatch.report_automatic(
            RUNTIME,
            title="x" * 2000,
            message="a\x00b" * 10_000,
            guard_name=42,
            deployment_id="",
        )
    event = captured[0]
    assert event.title is not None
    assert len(event.title) == 512
    assert event.title.endswith("characters]")
    assert event.message is not None
    assert len(event.message) <= MAX_MESSAGE_LENGTH
    assert "\x00" not in event.message
    assert event.guard_name == "42"
    assert event.deployment_id is None


def test_sink_that_raises_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    def broken_sink(event: ModerationEvent) -> None:
        raise RuntimeError("sink failed")

    _dispatch.push_sink(broken_sink)
    try:
        taken = _dispatch.report_automatic(RUNTIME, title="t", message=None)
    finally:
        _dispatch.pop_sink(broken_sink)
    assert not taken
    assert _stats.stats()["reporting_errors"] == 1
    assert any(record.levelno == logging.ERROR for record in caplog.records)


def test_invalid_environment_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_MAX_RETRIES", "many")
    _config.reset_settings()
    taken = _dispatch.report_automatic(RUNTIME, title="t", message=None)
    assert not taken
    assert _stats.stats()["reporting_errors"] == 1


def test_disabled_settings_submit_nothing() -> None:
    _config.configure(enabled=False)
    assert not _dispatch.report_automatic(RUNTIME, title="t", message=None)
    assert _stats.stats()["submitted"] == 0


def test_capture_is_process_wide_and_nested() -> None:
    with capture_events() as outer:
        _dispatch.report_automatic(RUNTIME, title="outer", message=None)
        with capture_events() as inner:
            _dispatch.report_automatic(RUNTIME, title="inner", message=None)
    assert [event.title for event in outer] == ["outer"]
    assert [event.title for event in inner] == ["inner"]
