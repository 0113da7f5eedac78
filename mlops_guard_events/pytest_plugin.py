"""The pytest plugin of mlops_guard_events, loaded through the `pytest11` entry point on install.

Fixtures:
    captured_events: The moderation events reported during the test, captured in memory as a
        `mlops_guard_events.testing.CapturedEvents`; nothing is sent, spooled or logged.
    events_receiver: A local `remoteEvents` receiver on 127.0.0.1, with the library configured
        to send to it. Events really travel over HTTP through the background worker.
    fake_clock: A `mlops_guard_events.testing.FakeClock` installed for the test.

Marker:
    `@pytest.mark.mlops_guard_events(**options)` calls `configure(**options)` for the test.
    `allow_dropped=True` among the options lets the test pass although events were dropped.

A test that uses any of these fails when the library dropped events during it, that is when a
`dropped_<reason>` counter or `reporting_errors` of `mlops_guard_events.stats()` grew, and the
message names each counter. After such a test the settings in force before it are restored.
Tests that use none of them run exactly as without the plugin.
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
from collections.abc import Collection, Generator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from ._config import Settings, configure
from ._stats import stats
from .exceptions import ConfigurationError
from .testing import (
    CapturedEvents,
    FakeClock,
    _check_configure_arguments,
    _restore_settings,
    _settings_in_force,
    capture_events,
)

if TYPE_CHECKING:
    from ._receiver import RemoteEventsReceiver

MARKER: Final = "mlops_guard_events"
_FIXTURES: Final = frozenset({"captured_events", "events_receiver", "fake_clock"})

# Seconds the plugin waits for the worker to send pending events before it checks for drops,
# and again when it shuts the worker down after an end-to-end test.
_FLUSH_TIMEOUT: Final = 10.0

# Meanings of the loss counters of stats(), for the failure message.
_LOSS_MEANINGS: Final = {
    "dropped_queue_full": "the queue was full and the spool could not take the event either",
    "dropped_spool_full": "the spool reached its size limit and evicted its oldest events",
    "dropped_spool_error": "the spool could not be written",
    "dropped_spool_corrupt": "a spooled line was corrupt or cut off by a crash, so it was skipped",
    "dropped_rejected": "the server answered with a final error",
    "dropped_before_send": "the before_send hook returned None or raised",
    "dropped_shutdown": "the worker stopped before the event could be sent or spooled",
    "dropped_internal_error": "a bug in mlops_guard_events, logged with its traceback",
    "reporting_errors": "failures inside mlops_guard_events, logged with their traceback",
}


@dataclasses.dataclass
class _TestState:
    """The plugin's record of one test that uses it."""

    settings_before: Settings | None
    loss_counters: dict[str, int]
    allow_dropped: bool


_STATE_KEY: Final = pytest.StashKey[_TestState]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so that `--strict-markers` accepts it."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(allow_dropped=False, **options): call mlops_guard_events.configure(**options)"
        " for this test and restore the settings afterwards; allow_dropped=True lets the test"
        " pass although the library dropped events",
    )


# Fixtures


@pytest.fixture
def captured_events() -> Iterator[CapturedEvents]:
    """Capture the moderation events reported during one test, in memory.

    Events reported from any thread during the test are captured in place of being delivered.
    The settings in force before the test are restored after it.

    Yields:
        The captured events, which keep growing until the test ends.
    """
    with capture_events() as captured:
        yield captured


@pytest.fixture
def fake_clock() -> Iterator[FakeClock]:
    """Install a `FakeClock` for one test. Call its `advance()` to move time on.

    Yields:
        The installed clock, which starts at `mlops_guard_events.testing.DEFAULT_START`.
    """
    with FakeClock() as clock:
        yield clock


@pytest.fixture
def events_receiver(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[RemoteEventsReceiver]:
    """Start a local `remoteEvents` receiver and configure the library to send to it.

    The receiver listens on 127.0.0.1 and requires a random API token, which the library is
    configured to send. The spool and the event log go to a temporary directory. Options of
    the `mlops_guard_events` marker are passed to `configure()` as well. After the test,
    pending events are flushed, the worker is shut down, the explicit call's connections are
    closed and the receiver is stopped.

    Yields:
        The running `mlops_guard_events._receiver.RemoteEventsReceiver`; call
        `wait_for_events(count)` on it to get the events it accepted.
    """
    from ._receiver import RemoteEventsReceiver

    options, _ = _marker_options(request.node)
    for name in ("endpoint", "api_token"):
        if name in options:
            pytest.fail(
                f"@pytest.mark.{MARKER}({name}=...) conflicts with the events_receiver"
                f" fixture, which sets {name} itself; remove {name} from the marker",
                pytrace=False,
            )
    token = secrets.token_urlsafe(16)
    state_dir = tmp_path / "mlops_guard_events-state"

    with RemoteEventsReceiver(host="127.0.0.1", token=token) as receiver:
        _configure_from_marker(
            {"state_dir": state_dir, **options, "endpoint": receiver.endpoint, "api_token": token}
        )
        try:
            yield receiver
        finally:
            _stop_delivery()


@pytest.fixture(autouse=True)
def _mlops_guard_events_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Apply the marker's options and record the loss counters, for tests using the plugin."""
    item = request.node
    if not _uses_plugin(item):
        yield
        return

    options, allow_dropped = _marker_options(item)
    state = _TestState(
        settings_before=_settings_in_force(),
        loss_counters=_loss_counters(),
        allow_dropped=allow_dropped,
    )
    item.stash[_STATE_KEY] = state
    try:
        # With events_receiver, that fixture passes the options to configure() itself.
        if options and "events_receiver" not in _fixture_names(item):
            _configure_from_marker(options)
        yield
    finally:
        _restore_settings(state.settings_before)


# The check for dropped events


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail a test that uses the plugin when the library dropped events while it ran."""
    state = item.stash.get(_STATE_KEY, None)
    if state is None:
        return (yield)

    try:
        result = yield
    except BaseException:
        # The test failed on its own; show the drops beside its error, since they may explain it.
        losses = _take_new_losses(state)
        if losses:
            item.add_report_section("call", MARKER, _describe_losses(losses, allow_dropped=True))
        raise

    if "events_receiver" in _fixture_names(item):
        _flush_worker()
    losses = _take_new_losses(state)
    if losses and not state.allow_dropped:
        pytest.fail(_describe_losses(losses, allow_dropped=False), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    """Report, as a teardown error, events dropped after the test body, such as at shutdown."""
    result = yield
    state = item.stash.get(_STATE_KEY, None)
    if state is None:
        return result

    del item.stash[_STATE_KEY]
    losses = _take_new_losses(state)
    if losses and not state.allow_dropped:
        pytest.fail(
            "during teardown: " + _describe_losses(losses, allow_dropped=False), pytrace=False
        )
    return result


# Helpers


def _fixture_names(item: pytest.Item) -> Collection[str]:
    # Only pytest.Function items have fixtures; items of other plugins may not.
    names: Collection[str] = getattr(item, "fixturenames", ())
    return names


def _uses_plugin(item: pytest.Item) -> bool:
    used = item.get_closest_marker(MARKER) is not None
    return used or not _FIXTURES.isdisjoint(_fixture_names(item))


def _marker_options(item: pytest.Item) -> tuple[dict[str, Any], bool]:
    """Return the `configure()` options of the test's markers and their `allow_dropped` flag.

    Markers on the module, the class and the function are merged; the closest one wins.

    Raises:
        pytest.fail.Exception: A marker has positional arguments, an unknown option, or an
            `allow_dropped` that is not a bool; the test fails in setup with that message.
    """
    options: dict[str, Any] = {}
    for marker in reversed(list(item.iter_markers(MARKER))):
        if marker.args:
            pytest.fail(
                f"invalid @pytest.mark.{MARKER}{marker.args!r}: the marker takes keyword"
                " arguments only, the options of mlops_guard_events.configure() and"
                " allow_dropped",
                pytrace=False,
            )
        options.update(marker.kwargs)

    allow_dropped = options.pop("allow_dropped", False)
    if not isinstance(allow_dropped, bool):
        pytest.fail(
            f"invalid allow_dropped {allow_dropped!r} in @pytest.mark.{MARKER}: expected True"
            " or False",
            pytrace=False,
        )
    # pytest.fail runs after the except block, because inside it the failure would carry the
    # TypeError as its context, and pytest would print the message twice.
    problem = None
    try:
        _check_configure_arguments(
            options, where=f"@pytest.mark.{MARKER}", other_options=("allow_dropped",)
        )
    except TypeError as error:
        problem = str(error)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    return options, allow_dropped


def _configure_from_marker(options: Mapping[str, Any]) -> None:
    problem = None
    try:
        configure(**options)
    except ConfigurationError as error:
        problem = f"invalid option in @pytest.mark.{MARKER}: {error}"
    if problem is not None:
        pytest.fail(problem, pytrace=False)


def _loss_counters() -> dict[str, int]:
    return {
        name: value
        for name, value in stats().items()
        if name.startswith("dropped_") or name == "reporting_errors"
    }


def _take_new_losses(state: _TestState) -> dict[str, int]:
    """Return how much each loss counter grew since the last call, and remember the new values."""
    current = _loss_counters()
    grown = {
        name: value - state.loss_counters.get(name, 0)
        for name, value in current.items()
        if value > state.loss_counters.get(name, 0)
    }
    state.loss_counters = current
    return grown


def _describe_losses(losses: Mapping[str, int], *, allow_dropped: bool) -> str:
    lines = ["mlops_guard_events dropped moderation events during this test:"]
    for name, amount in sorted(losses.items()):
        meaning = _LOSS_MEANINGS.get(name)
        lines.append(f"  {name}: {amount}" + (f" ({meaning})" if meaning else ""))
    lines.append(
        "The library's warnings and errors in the captured log give the details."
        " Counters are those of mlops_guard_events.stats()."
    )
    if not allow_dropped:
        lines.append(
            f"If the test expects the drops, mark it with"
            f" @pytest.mark.{MARKER}(allow_dropped=True)."
        )
    return "\n".join(lines)


def _flush_worker() -> None:
    # Only a test that reported something has loaded the worker; importing it here would load
    # requests for nothing.
    worker = sys.modules.get("mlops_guard_events._worker")
    if worker is not None:
        worker.flush(_FLUSH_TIMEOUT)


def _stop_delivery() -> None:
    """Deliver pending events, stop the worker and close the explicit call's connections."""
    worker = sys.modules.get("mlops_guard_events._worker")
    if worker is not None:
        worker.flush(_FLUSH_TIMEOUT)
        worker.shutdown(_FLUSH_TIMEOUT)
    # The explicit call keeps its connection open for the next call. A socket left open past
    # the test would cause a ResourceWarning, which fails suites that turn warnings into errors.
    report = sys.modules.get("mlops_guard_events._report")
    if report is not None:
        report.close_transport()
