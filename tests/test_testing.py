"""The public testing helpers: capture, assertions on captured events, the fake clock, settings."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_guard_events import _clock, _config, _dispatch, _stats, testing
from mlops_guard_events._event import ModerationEvent, ModerationEventType
from mlops_guard_events._receiver import Faults, RemoteEventsReceiver
from mlops_guard_events._report import report_moderation_event
from mlops_guard_events.exceptions import ConfigurationError
from mlops_guard_events.testing import (
    DEFAULT_START,
    CapturedEvents,
    FakeClock,
    capture_events,
    override_settings,
)

RUNTIME = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR
CONFIG = ModerationEventType.MODERATION_MODEL_CONFIG_ERROR
WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def fresh_counters() -> None:
    # tests/conftest.py already isolates settings and the environment.
    _stats.reset_counters()


def event(**fields: object) -> ModerationEvent:
    values: dict[str, object] = {"event_type": RUNTIME, "timestamp": WHEN}
    values.update(fields)
    return ModerationEvent(**values)  # type: ignore[arg-type]


def installed_clock() -> _clock.ClockSource:
    return _clock._source


def sample() -> CapturedEvents:
    return CapturedEvents(
        [
            event(title="PII failed", guard_name="PII", message="ValueError: bad input"),
            event(event_type=CONFIG, title="Toxicity misconfigured", guard_name="Toxicity"),
            event(title="Toxicity timed out", guard_name="Toxicity", deployment_id="dep-1"),
        ]
    )


# capture_events


def test_capture_takes_automatic_events() -> None:
    with capture_events() as captured:
        _dispatch.report_automatic(RUNTIME, title="t", message="m", guard_name="Toxicity")
    assert len(captured) == 1
    assert captured[0].guard_name == "Toxicity"


def test_capture_takes_explicit_calls() -> None:
    with capture_events() as captured:
        report_moderation_event("moderationModelConfigError", title="bad", guard_name="PII")
    captured.assert_reported(event_type=CONFIG, title="bad", guard_name="PII")


def test_capture_fills_configured_ids() -> None:
    with override_settings(deployment_id="dep-9", org_id="org-9"), capture_events() as captured:
        _dispatch.report_automatic(RUNTIME, title="t", message=None)
        report_moderation_event(CONFIG, title="explicit")
    captured.assert_count(2, deployment_id="dep-9", org_id="org-9")


def test_capture_sends_nothing(receiver: RemoteEventsReceiver, tmp_path: Path) -> None:
    event_log = tmp_path / "events.jsonl"
    with (
        override_settings(endpoint=receiver.endpoint, event_log_path=event_log),
        capture_events() as captured,
    ):
        report_moderation_event(RUNTIME, title="explicit")
        _dispatch.report_automatic(RUNTIME, title="automatic", message=None)
    assert len(captured) == 2
    assert receiver.requests() == []
    assert not event_log.exists()


def test_capture_writes_no_event_log(tmp_path: Path) -> None:
    event_log = tmp_path / "events.jsonl"
    with override_settings(event_log_path=event_log), capture_events() as captured:
        report_moderation_event(RUNTIME, title="explicit")
    assert len(captured) == 1
    assert not event_log.exists()


def test_capture_takes_other_threads() -> None:
    def report(number: int) -> None:
        _dispatch.report_automatic(RUNTIME, title=f"thread {number}", message=None)

    with capture_events() as captured:
        threads = [threading.Thread(target=report, args=(number,)) for number in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(event.title or "" for event in captured) == [f"thread {n}" for n in range(8)]


def test_capture_sees_sanitized_event() -> None:
    with capture_events() as captured:
        _dispatch.report_automatic(RUNTIME, title="x" * 600, message=None, guard_name=7)
    assert captured[0].guard_name == "7"
    assert len(captured[0].title or "") == 512


def test_capture_stops_after_block(receiver: RemoteEventsReceiver) -> None:
    with capture_events() as captured:
        pass
    _config.configure(endpoint=receiver.endpoint)
    report_moderation_event(RUNTIME, title="after")
    assert len(captured) == 0
    assert len(receiver.events()) == 1


def test_nested_capture_takes_inner_only() -> None:
    with capture_events() as outer:
        with capture_events() as inner:
            report_moderation_event(RUNTIME, title="inner")
        report_moderation_event(RUNTIME, title="outer")
    assert [event.title for event in inner] == ["inner"]
    assert [event.title for event in outer] == ["outer"]


# CapturedEvents as a sequence


def test_captured_events_is_a_sequence() -> None:
    captured = sample()
    assert len(captured) == 3
    assert captured[-1].deployment_id == "dep-1"
    assert [event.guard_name for event in captured[:2]] == ["PII", "Toxicity"]
    assert [event.title for event in captured] == [event.title for event in captured.events]
    assert captured[0] in captured


def test_events_property_is_a_copy() -> None:
    captured = sample()
    captured.events.clear()
    assert len(captured) == 3


def test_clear_forgets_events() -> None:
    with capture_events() as captured:
        report_moderation_event(RUNTIME, title="first")
        captured.clear()
        report_moderation_event(RUNTIME, title="second")
    assert [event.title for event in captured] == ["second"]


def test_from_wire_reads_receiver_bodies(receiver: RemoteEventsReceiver) -> None:
    _config.configure(endpoint=receiver.endpoint, deployment_id="dep-1")
    report_moderation_event(RUNTIME, timestamp=WHEN, title="sent", guard_name="PII")
    captured = CapturedEvents.from_wire(receiver.events())
    found = captured.assert_reported(event_type=RUNTIME, guard_name="PII", deployment_id="dep-1")
    assert found.timestamp == WHEN


# Matching


def test_event_type_matches_enum_or_string() -> None:
    captured = sample()
    assert len(captured.matching(event_type=CONFIG)) == 1
    assert len(captured.matching(event_type="moderationModelConfigError")) == 1


def test_regex_searches_field_text() -> None:
    captured = sample()
    assert len(captured.matching(title=re.compile("timed out$"))) == 1
    assert len(captured.matching(message=re.compile("ValueError"))) == 1
    assert len(captured.matching(event_type=re.compile("Config"))) == 1


def test_regex_never_matches_none() -> None:
    captured = CapturedEvents([event(message=None)])
    assert captured.matching(message=re.compile(".*")) == []


def test_callable_gets_field_value() -> None:
    captured = sample()
    seen: list[object] = []

    def starts_with_tox(value: object) -> bool:
        seen.append(value)
        return isinstance(value, str) and value.startswith("Tox")

    assert len(captured.matching(guard_name=starts_with_tox)) == 2
    assert seen == ["PII", "Toxicity", "Toxicity"]


def test_none_matches_missing_field() -> None:
    captured = sample()
    assert len(captured.matching(deployment_id=None)) == 2


def test_empty_name_matches_missing_name() -> None:
    captured = sample()
    assert len(captured.matching(metric_name="")) == 3


def test_timestamp_matches_datetime_or_string() -> None:
    captured = sample()
    assert len(captured.matching(timestamp=WHEN)) == 3
    assert len(captured.matching(timestamp="2026-03-01T12:00:00Z")) == 3
    assert len(captured.matching(timestamp=datetime(2026, 3, 1, 12, 0))) == 3
    assert captured.matching(timestamp=WHEN + timedelta(seconds=1)) == []


def test_no_fields_match_every_event() -> None:
    assert len(sample().matching()) == 3


def test_unknown_field_raises_with_suggestion() -> None:
    with pytest.raises(TypeError, match=r"unknown event field 'guard'.*did you mean 'guard_name'"):
        sample().assert_reported(guard="PII")


def test_invalid_event_type_raises_with_suggestion() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'moderationModelRuntimeError'"):
        sample().assert_reported(event_type="MODERATION_MODEL_RUNTIME_ERROR")


def test_unsupported_expected_type_raises() -> None:
    with pytest.raises(TypeError, match=r"invalid expected guard_name 42: expected a string"):
        sample().matching(guard_name=42)


# assert_reported


def test_assert_reported_returns_first_match() -> None:
    found = sample().assert_reported(guard_name="Toxicity")
    assert found.title == "Toxicity misconfigured"


def test_assert_reported_failure_marks_differences() -> None:
    with pytest.raises(AssertionError) as raised:
        sample().assert_reported(event_type=RUNTIME, guard_name="Safety")
    lines = str(raised.value).splitlines()
    assert lines[0] == (
        "no captured moderation event matches"
        " event_type='moderationModelRuntimeError', guard_name='Safety'."
    )
    assert lines[1] == "Captured events: 3; '!' marks a field that differs from the expected value."
    assert lines[2] == "  [0]"
    assert "      event_type='moderationModelRuntimeError'" in lines
    assert "    ! guard_name='PII'  (expected 'Safety')" in lines
    assert (
        "    ! event_type='moderationModelConfigError'  (expected 'moderationModelRuntimeError')"
        in lines
    )
    assert "      title='PII failed'" in lines


def test_assert_reported_failure_without_events() -> None:
    with pytest.raises(AssertionError) as raised:
        CapturedEvents().assert_reported(guard_name="PII")
    assert str(raised.value) == (
        "no captured moderation event matches guard_name='PII'.\nNo events were captured."
    )


def test_failure_describes_regex_and_callable() -> None:
    def is_long(value: object) -> bool:
        return isinstance(value, str) and len(value) > 100

    with pytest.raises(AssertionError) as raised:
        sample().assert_reported(title=re.compile("^Safety"), message=is_long)
    text = str(raised.value)
    assert "title=re.compile('^Safety')" in text
    assert "(expected a match for '^Safety')" in text
    assert "message=a value for which test_failure_describes_regex_and_callable" in text


def test_failure_hides_timestamp_unless_expected() -> None:
    with pytest.raises(AssertionError) as unexpected:
        sample().assert_reported(guard_name="Safety")
    with pytest.raises(AssertionError) as expected:
        sample().assert_reported(timestamp="2027-01-01T00:00:00Z")
    assert "timestamp=" not in str(unexpected.value)
    assert "! timestamp='2026-03-01T12:00:00.000000+00:00'" in str(expected.value)


def test_failure_shortens_long_values() -> None:
    captured = CapturedEvents([event(message="m" * 5000)])
    with pytest.raises(AssertionError) as raised:
        captured.assert_reported(guard_name="PII")
    message_line = next(line for line in str(raised.value).splitlines() if "message=" in line)
    assert len(message_line) < 200
    assert message_line.endswith("... (5000 characters)")


def test_failure_lists_at_most_twenty() -> None:
    captured = CapturedEvents([event(title=f"event {number}") for number in range(25)])
    with pytest.raises(AssertionError) as raised:
        captured.assert_reported(guard_name="PII")
    text = str(raised.value)
    assert "  [19]" in text
    assert "  [20]" not in text
    assert text.endswith("  ... and 5 more events not shown")


# assert_not_reported and assert_count


def test_assert_not_reported_passes() -> None:
    sample().assert_not_reported(guard_name="Safety")
    CapturedEvents().assert_not_reported()


def test_assert_not_reported_lists_matches() -> None:
    with pytest.raises(AssertionError) as raised:
        sample().assert_not_reported(guard_name="Toxicity")
    lines = str(raised.value).splitlines()
    assert lines[0] == (
        "expected no captured moderation event with guard_name='Toxicity',"
        " but 2 of 3 captured events match:"
    )
    assert lines[1] == "  [1]"
    assert "  [0]" not in lines
    assert "  [2]" in lines


def test_assert_count_returns_matches() -> None:
    matches = sample().assert_count(2, guard_name="Toxicity")
    assert [event.title for event in matches] == ["Toxicity misconfigured", "Toxicity timed out"]
    assert sample().assert_count(0, guard_name="Safety") == []


def test_assert_count_labels_matches() -> None:
    with pytest.raises(AssertionError) as raised:
        sample().assert_count(1, guard_name="Toxicity")
    lines = str(raised.value).splitlines()
    assert lines[0] == "expected 1 captured moderation event with guard_name='Toxicity', found 2."
    assert "  [0]" in lines
    assert "  [1] matches" in lines
    assert "  [2] matches" in lines


def test_assert_count_rejects_negative() -> None:
    with pytest.raises(ValueError, match=r"invalid count -1: expected an integer, 0 or more"):
        sample().assert_count(-1)


@given(
    title=st.one_of(st.none(), st.text(max_size=40)),
    guard_name=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
    metric_name=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
    event_type=st.sampled_from(list(ModerationEventType)),
    chosen=st.sets(st.sampled_from(["event_type", "title", "guard_name", "metric_name"])),
)
def test_event_matches_own_fields(
    title: str | None,
    guard_name: str | None,
    metric_name: str | None,
    event_type: ModerationEventType,
    chosen: set[str],
) -> None:
    own = ModerationEvent.create(
        event_type,
        timestamp=WHEN,
        title=title,
        guard_name=guard_name,
        metric_name=metric_name,
        sanitize=True,
    )
    fields = {name: getattr(own, name) for name in chosen}
    captured = CapturedEvents([event(event_type=CONFIG, title="other"), own])
    assert captured.assert_reported(**fields) in (own, captured[0])
    assert own in captured.matching(**fields)


# FakeClock


def test_fake_clock_starts_at_default() -> None:
    clock = FakeClock()
    assert clock.now() == DEFAULT_START


def test_fake_clock_accepts_rfc3339_start() -> None:
    clock = FakeClock("2026-05-01T08:00:00+02:00")
    assert clock.now() == datetime(2026, 5, 1, 6, 0, tzinfo=timezone.utc)


def test_fake_clock_rejects_invalid_start() -> None:
    with pytest.raises(ValueError, match=r"invalid start 'yesterday'"):
        FakeClock("yesterday")


def test_advance_moves_both_clocks() -> None:
    clock = FakeClock()
    before = clock.monotonic()
    clock.advance(90)
    clock.advance(timedelta(minutes=1))
    clock.sleep(0.5)
    assert clock.now() == DEFAULT_START + timedelta(seconds=150.5)
    assert clock.monotonic() == before + 150.5


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf"), "5", True, timedelta(-1)])
def test_advance_rejects_invalid_seconds(seconds: object) -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match=r"invalid seconds"):
        clock.advance(seconds)  # type: ignore[arg-type]
    assert clock.now() == DEFAULT_START


def test_fake_clock_installs_and_restores() -> None:
    with FakeClock() as clock:
        assert _clock.wall_time() == DEFAULT_START
        clock.advance(5)
        assert _clock.monotonic() == clock.monotonic()
    assert installed_clock() is _clock.SYSTEM_CLOCK


def test_nested_fake_clocks_restore_in_order() -> None:
    with FakeClock() as outer:
        with FakeClock("2030-01-01T00:00:00Z"):
            assert _clock.wall_time().year == 2030
        assert installed_clock() is outer
    assert installed_clock() is _clock.SYSTEM_CLOCK


def test_fake_clock_stamps_automatic_events() -> None:
    with FakeClock() as clock, capture_events() as captured:
        _dispatch.report_automatic(RUNTIME, title="first", message=None)
        clock.advance(61)
        _dispatch.report_automatic(RUNTIME, title="second", message=None)
    assert captured[0].timestamp == DEFAULT_START
    assert captured[1].timestamp == DEFAULT_START + timedelta(seconds=61)
    captured.assert_reported(title="second", timestamp="2026-01-01T00:01:01Z")


def test_fake_clock_repr_shows_time() -> None:
    assert repr(FakeClock()) == "FakeClock(now='2026-01-01T00:00:00+00:00', monotonic=1000000.0)"


def test_install_rejects_non_clock() -> None:
    with pytest.raises(TypeError, match=r"it has no callable now\(\)"):
        _clock.install(object())  # type: ignore[arg-type]
    assert installed_clock() is _clock.SYSTEM_CLOCK


def test_system_clock_is_aware_utc() -> None:
    assert _clock.wall_time().utcoffset() == timedelta(0)


# override_settings


def test_override_settings_restores_previous() -> None:
    before = _config.configure(deployment_id="dep-before")
    with override_settings(deployment_id="dep-inside") as inside:
        assert _config.current_settings().deployment_id == "dep-inside"
        assert inside.deployment_id == "dep-inside"
    assert _config.current_settings() is before


def test_override_settings_restores_unresolved() -> None:
    with override_settings(deployment_id="dep-inside"):
        pass
    assert _config._current is None


def test_override_settings_restores_after_error() -> None:
    before = _config.configure(deployment_id="dep-before")
    with pytest.raises(RuntimeError), override_settings(deployment_id="dep-inside"):
        raise RuntimeError("test body failed")
    assert _config.current_settings() is before


def test_override_settings_names_unknown_option() -> None:
    with (
        pytest.raises(TypeError, match=r"unknown configure\(\) option 'deploymentid'"),
        override_settings(deploymentid="dep-1"),
    ):
        pass


def test_override_settings_suggests_option() -> None:
    with (
        pytest.raises(TypeError, match=r"did you mean 'deployment_id'"),
        override_settings(deploymentid="dep-1"),
    ):
        pass


def test_override_settings_passes_invalid_value() -> None:
    before = _config.configure(deployment_id="dep-before")
    with (
        pytest.raises(ConfigurationError, match=r"invalid queue_size 0"),
        override_settings(queue_size=0),
    ):
        pass
    assert _config.current_settings() is before


# The module's surface


def test_testing_all_is_pinned() -> None:
    assert testing.__all__ == [
        "DEFAULT_START",
        "CapturedEvents",
        "FakeClock",
        "Faults",
        "RemoteEventsReceiver",
        "capture_events",
        "override_settings",
    ]


def test_receiver_names_are_reexported() -> None:
    assert testing.RemoteEventsReceiver is RemoteEventsReceiver
    assert testing.Faults is Faults


def test_unknown_testing_attribute_raises() -> None:
    with pytest.raises(AttributeError, match=r"has no attribute 'no_such_helper'"):
        testing.no_such_helper  # noqa: B018


@pytest.mark.parametrize(
    "module", ["mlops_guard_events.testing", "mlops_guard_events.pytest_plugin"]
)
def test_import_stays_light(module: str) -> None:
    script = f"import sys, {module}\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(result.stdout.split())
    assert "requests" not in loaded
    assert "wrapt" not in loaded
    assert "mlops_guard_events._receiver" not in loaded


def test_capture_if_active_without_capture() -> None:
    assert not _dispatch.capture_if_active(event(title="nobody listens"))


def test_capture_if_active_with_capture() -> None:
    with capture_events() as captured:
        assert _dispatch.capture_if_active(event(title="captured"))
    assert [captured_event.title for captured_event in captured] == ["captured"]
