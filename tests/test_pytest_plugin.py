"""The pytest plugin, run as users run it: in pytest sessions started by `pytester`."""

from __future__ import annotations

# The inner sessions run in this process, and pytester removes the modules they imported when
# they end. A module imported again by the next session would not be the one that objects of
# the first still use, such as requests' classes in the worker's cached session, so everything
# the inner tests import is imported here first.
import pytest
import requests  # noqa: F401

from mlops_guard_events import (  # noqa: F401
    _receiver,
    _report,
    _reporting,
    _stats,
    _transport,
    _worker,
    pytest_plugin,
    testing,
)

pytest_plugins = ["pytester"]

# Every inner test module starts with these imports and a guard that always times out.
PREAMBLE = """
import re
import threading

import pytest

from mlops_guard_events import (
    ModerationEventType,
    configure,
    guard_events,
    report_moderation_event,
)
from mlops_guard_events.testing import CapturedEvents

RUNTIME = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR


@guard_events("Toxicity", fallback=False)
def is_toxic(text):
    raise TimeoutError("model timed out")
"""


@pytest.fixture(autouse=True)
def fresh_counters() -> None:
    # The inner sessions run in this process (except one), so they share the library's
    # counters; tests/conftest.py already isolates settings and the environment.
    _stats.reset_counters()


def write_tests(pytester: pytest.Pytester, body: str) -> None:
    pytester.makepyfile(test_user=PREAMBLE + body)


def run_pytest(pytester: pytest.Pytester, *arguments: str) -> pytest.RunResult:
    # Hypothesis's plugin imports the whole of hypothesis again in every inner session, which
    # takes most of each run's time. These inner tests do not use hypothesis.
    return pytester.runpytest("-p", "no:hypothesispytest", "-p", "no:cacheprovider", *arguments)


# Loading


def test_plugin_loads_from_entry_point(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
def test_registered(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("mlops_guard_events")
""",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_strict_markers_accept_marker(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
@pytest.mark.mlops_guard_events(deployment_id="dep-1")
def test_marked():
    pass
""",
    )
    result = run_pytest(pytester, "--strict-markers")
    result.assert_outcomes(passed=1)


def test_marker_listed_in_help(pytester: pytest.Pytester) -> None:
    result = run_pytest(pytester, "--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.mlops_guard_events(allow_dropped=False, **options):*"]
    )


def test_fixtures_listed(pytester: pytest.Pytester) -> None:
    result = run_pytest(pytester, "--fixtures")
    result.stdout.fnmatch_lines(
        [
            "captured_events -- *pytest_plugin.py:*",
            "    Capture the moderation events reported during one test, in memory.",
        ]
    )
    result.stdout.fnmatch_lines(["events_receiver -- *"])
    result.stdout.fnmatch_lines(["fake_clock -- *"])


# captured_events


def test_captured_events_passing_test(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
def test_reports(captured_events):
    report_moderation_event(RUNTIME, title="Guard failed", guard_name="Toxicity")
    captured_events.assert_reported(event_type=RUNTIME, guard_name="Toxicity")
    captured_events.assert_count(1)
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=1)


def test_captured_events_failure_message(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
def test_reports(captured_events):
    report_moderation_event(RUNTIME, title="Guard failed", guard_name="PII")
    captured_events.assert_reported(event_type=RUNTIME, guard_name="Safety")
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: no captured moderation event matches"
            " event_type='moderationModelRuntimeError', guard_name='Safety'.",
            "E       Captured events: 1; '!' marks a field that differs from the expected value.",
            "E         [0]",
            "E             event_type='moderationModelRuntimeError'",
            "E             title='Guard failed'",
            "E           ! guard_name='PII'  (expected 'Safety')",
        ]
    )


def test_failure_hides_helper_frames(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
def test_reports(captured_events):
    captured_events.assert_reported(guard_name="Safety")
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.no_fnmatch_line("*mlops_guard_events/testing.py*")


def test_captured_events_are_per_test(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
def test_first(captured_events):
    report_moderation_event(RUNTIME, title="first")
    captured_events.assert_count(1)

def test_second(captured_events):
    captured_events.assert_not_reported()
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=2)


def test_settings_restored_after_test(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
def test_configures(captured_events):
    configure(deployment_id="dep-inside")
    report_moderation_event(RUNTIME, title="inside")
    captured_events.assert_reported(deployment_id="dep-inside")

def test_after(captured_events):
    report_moderation_event(RUNTIME, title="after")
    captured_events.assert_reported(deployment_id=None)
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=2)


def test_session_settings_survive(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import pytest
from mlops_guard_events import configure

@pytest.fixture(autouse=True, scope="session")
def datarobot_settings():
    configure(deployment_id="dep-session")
"""
    )
    write_tests(
        pytester,
        """
@pytest.mark.mlops_guard_events(deployment_id="dep-marked")
def test_marked(captured_events):
    report_moderation_event(RUNTIME, title="marked")
    captured_events.assert_reported(deployment_id="dep-marked")

def test_unmarked(captured_events):
    report_moderation_event(RUNTIME, title="unmarked")
    captured_events.assert_reported(deployment_id="dep-session")
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=2)


# The marker


def test_marker_configures_one_test(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
from mlops_guard_events._config import current_settings

@pytest.mark.mlops_guard_events(deployment_id="dep-1", org_id="org-1")
def test_marked():
    assert current_settings().deployment_id == "dep-1"
    assert current_settings().org_id == "org-1"

def test_unmarked():
    assert current_settings().deployment_id is None
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=2)


def test_closest_marker_wins(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
pytestmark = pytest.mark.mlops_guard_events(deployment_id="dep-module", org_id="org-module")

@pytest.mark.mlops_guard_events(deployment_id="dep-function")
def test_marked(captured_events):
    report_moderation_event(RUNTIME, title="marked")
    captured_events.assert_reported(deployment_id="dep-function", org_id="org-module")
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=1)


def test_marker_unknown_option(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
@pytest.mark.mlops_guard_events(deploymentid="dep-1")
def test_marked():
    pass
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*unknown option 'deploymentid' in @pytest.mark.mlops_guard_events: expected"
            " allow_dropped, or one of the configure() options endpoint, *; did you mean"
            " 'deployment_id'?",
        ]
    )


def test_marker_unknown_option_once(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
@pytest.mark.mlops_guard_events(no_such_option=1)
def test_marked(captured_events):
    pass
""",
    )
    result = run_pytest(pytester)
    # The short test summary repeats the message cut to the terminal's width, after "ERROR".
    messages = [
        line for line in result.outlines if line.startswith("unknown option 'no_such_option'")
    ]
    result.assert_outcomes(errors=1)
    assert len(messages) == 1
    assert "expected allow_dropped, or one of the configure() options" in messages[0]
    assert "During handling of the above exception" not in result.stdout.str()


def test_marker_suggests_allow_dropped(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
@pytest.mark.mlops_guard_events(allow_drop=True)
def test_marked():
    pass
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown option 'allow_drop' *; did you mean 'allow_dropped'?"])


def test_marker_invalid_value(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
@pytest.mark.mlops_guard_events(queue_size=0)
def test_marked():
    pass
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*invalid option in @pytest.mark.mlops_guard_events: invalid queue_size 0:"
            " expected an integer, 1 or more",
        ]
    )
    # The ConfigurationError, shown again as the context of the failure, would repeat the message.
    assert "During handling of the above exception" not in result.stdout.str()


def test_marker_positional_argument(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
@pytest.mark.mlops_guard_events("dep-1")
def test_marked():
    pass
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*invalid @pytest.mark.mlops_guard_events('dep-1',): the marker takes keyword arguments*"]
    )


def test_marker_invalid_allow_dropped(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
@pytest.mark.mlops_guard_events(allow_dropped="yes")
def test_marked():
    pass
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*invalid allow_dropped 'yes' in @pytest.mark.mlops_guard_events: expected True or False"]
    )


# fake_clock


def test_fake_clock_stamps_events(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
def test_stamps(captured_events, fake_clock):
    report_moderation_event(RUNTIME, title="first")
    fake_clock.advance(30)
    report_moderation_event(RUNTIME, title="second")
    captured_events.assert_reported(title="first", timestamp="2026-01-01T00:00:00Z")
    captured_events.assert_reported(title="second", timestamp="2026-01-01T00:00:30Z")

def test_restored():
    from mlops_guard_events import _clock
    assert _clock._source is _clock.SYSTEM_CLOCK
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=2)


# events_receiver


def test_events_receiver_gets_events(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
def test_sent(events_receiver):
    assert is_toxic("hello") is False
    received = CapturedEvents.from_wire(events_receiver.wait_for_events(1))
    received.assert_reported(event_type=RUNTIME, guard_name="Toxicity")

def test_explicit_call_sent(events_receiver):
    report_moderation_event(RUNTIME, title="explicit", guard_name="PII")
    received = CapturedEvents.from_wire(events_receiver.events())
    received.assert_reported(title="explicit", guard_name="PII")
    assert events_receiver.requests()[0].header("Authorization").startswith("Bearer ")
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=2)


def test_events_receiver_cleans_up(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
from mlops_guard_events._config import current_settings
from mlops_guard_events._worker import THREAD_NAME

def test_sends(events_receiver):
    assert is_toxic("hello") is False

def test_after():
    assert current_settings().endpoint is None
    for thread in threading.enumerate():
        if thread.name == THREAD_NAME:
            thread.join(10)
            assert not thread.is_alive()
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=2)


def test_events_receiver_uses_marker(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
@pytest.mark.mlops_guard_events(deployment_id="dep-1")
def test_sent(events_receiver):
    is_toxic("hello")
    received = CapturedEvents.from_wire(events_receiver.wait_for_events(1))
    received.assert_reported(deployment_id="dep-1")
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=1)


def test_events_receiver_rejects_marker_endpoint(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
@pytest.mark.mlops_guard_events(endpoint="http://127.0.0.1:9/api/v2")
def test_sent(events_receiver):
    pass
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.mlops_guard_events(endpoint=...) conflicts with the events_receiver"
            " fixture, which sets endpoint itself; remove endpoint from the marker"
        ]
    )


def test_fake_clock_closes_storm_window(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
@pytest.mark.mlops_guard_events(coalesce_window=60)
def test_storm(events_receiver, fake_clock):
    for _ in range(5):
        is_toxic("hello")
    events_receiver.wait_for_events(1)
    fake_clock.advance(61)
    received = CapturedEvents.from_wire(events_receiver.wait_for_events(2))
    received.assert_count(2, guard_name="Toxicity")
    received.assert_reported(message=re.compile("^Repeated 4 more times in the last 61 s"))
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=1)


# The check for dropped events


def test_dropped_events_fail_test(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
from mlops_guard_events._receiver import Faults

@pytest.mark.mlops_guard_events(max_retries=0)
def test_rejected(events_receiver):
    events_receiver.set_faults(Faults(status=403))
    assert is_toxic("hello") is False
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_rejected _*",
            "mlops_guard_events dropped moderation events during this test:",
            "  dropped_rejected: 1 (the server answered with a final error)",
            "The library's warnings and errors in the captured log give the details.*",
            "If the test expects the drops, mark it with"
            " @pytest.mark.mlops_guard_events(allow_dropped=True).",
            "*- Captured log call -*",
            "WARNING *moderation events were dropped*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["FAILED test_user.py::test_rejected - Failed: mlops_guard_events*"]
    )


def test_allow_dropped_passes(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
from mlops_guard_events._receiver import Faults

@pytest.mark.mlops_guard_events(max_retries=0, allow_dropped=True)
def test_rejected(events_receiver):
    events_receiver.set_faults(Faults(status=403))
    assert is_toxic("hello") is False
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=1)


def test_reporting_errors_fail_test(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
def test_broken_environment(captured_events, monkeypatch):
    monkeypatch.setenv("DATAROBOT_MAX_RETRIES", "many")
    assert is_toxic("hello") is False
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  reporting_errors: 1 (failures inside mlops_guard_events,"
            " logged with their traceback)",
            "ERROR *mlops_guard_events failed while building a moderation event*",
        ]
    )


def test_unused_plugin_ignores_drops(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
from mlops_guard_events import stats

def test_broken_environment(monkeypatch):
    monkeypatch.setenv("DATAROBOT_MAX_RETRIES", "many")
    assert is_toxic("hello") is False
    assert stats()["reporting_errors"] == 1
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=1)


def test_failed_test_shows_drops(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
def test_broken_environment(captured_events, monkeypatch):
    monkeypatch.setenv("DATAROBOT_MAX_RETRIES", "many")
    is_toxic("hello")
    captured_events.assert_reported(guard_name="Toxicity")
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: no captured moderation event matches guard_name='Toxicity'.",
            "E       No events were captured.",
            "*- Captured mlops_guard_events call -*",
            "mlops_guard_events dropped moderation events during this test:",
            "  reporting_errors: 1 (*",
        ]
    )
    result.stdout.no_fnmatch_line("If the test expects the drops*")


def test_teardown_drops_are_errors(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
@pytest.fixture
def guard_called_at_teardown(monkeypatch):
    monkeypatch.setenv("DATAROBOT_MAX_RETRIES", "many")
    yield
    is_toxic("hello")

def test_body(captured_events, guard_called_at_teardown):
    pass
""",
    )
    result = run_pytest(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_body _*",
            "during teardown: mlops_guard_events dropped moderation events during this test:",
            "  reporting_errors: 1 (*",
        ]
    )
