"""Helpers for testing code that reports moderation events, without a DataRobot server.

- `capture_events()` collects every event reported inside it, in memory, in place of
  delivering it: nothing is sent, spooled or written to the event log. The result is a
  `CapturedEvents`, with assertion helpers that match any subset of an event's fields.
- `FakeClock` replaces the library's clock, so event timestamps and storm-control windows move
  only when the test advances the clock.
- `override_settings()` applies `configure()` for a block and restores the settings from before.
- `RemoteEventsReceiver` and `Faults` run a local server that speaks the `remoteEvents`
  contract, for end-to-end tests. They are imported on first use.

For example:

    from mlops_guard_events import ModerationEventType, guard_events
    from mlops_guard_events.testing import capture_events

    @guard_events("Toxicity", fallback=False)
    def is_toxic(text: str) -> bool:
        raise TimeoutError("model timed out")

    with capture_events() as captured:
        assert is_toxic("hello") is False
    captured.assert_reported(
        event_type=ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR, guard_name="Toxicity"
    )

With pytest, the plugin installed with this package offers the same through fixtures; see
`mlops_guard_events.pytest_plugin`.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Final, overload

from . import _clock, _config
from ._config import Settings, configure
from ._dispatch import pop_sink, push_sink
from ._event import ModerationEvent, parse_event_type, parse_timestamp

if TYPE_CHECKING:
    from ._receiver import Faults, RemoteEventsReceiver

__all__ = [
    "DEFAULT_START",
    "CapturedEvents",
    "FakeClock",
    "Faults",
    "RemoteEventsReceiver",
    "capture_events",
    "override_settings",
]

DEFAULT_START: Final = datetime(2026, 1, 1, tzinfo=timezone.utc)
"""The wall-clock time a `FakeClock` starts at when no other start is given."""

# A FakeClock's monotonic time starts well above zero, so code that treats 0.0 as "never" or
# subtracts an interval from the current time still gets ordinary values.
_MONOTONIC_START: Final = 1_000_000.0

# Failure messages list at most this many events, so a test that captured thousands stays
# readable.
_MAX_EVENTS_SHOWN: Final = 20
_MAX_VALUE_WIDTH: Final = 120

_FIELD_NAMES: Final = tuple(field.name for field in dataclasses.fields(ModerationEvent))


# The clock


class FakeClock:
    """A clock that moves only when the test advances it.

    While installed (as a context manager, or through the `fake_clock` pytest fixture), it
    replaces the library's clock. Event timestamps come from `now()`, and storm control (the
    coalescing window and the per-minute cap) measures time with `monotonic()`. Both move
    together when `advance()` or `sleep()` is called, and never otherwise. Retry backoff and
    the worker's other waits still use the system's clocks. It is safe to use from any thread.

    Args:
        start: The initial wall-clock time, as a datetime (naive means UTC) or an RFC 3339
            string.

    Raises:
        ValueError: `start` is not a valid time.
    """

    def __init__(self, start: datetime | str = DEFAULT_START) -> None:
        self._now = parse_timestamp(start, parameter="start")
        self._monotonic = _MONOTONIC_START
        self._lock = threading.Lock()
        self._replaced: list[_clock.ClockSource] = []

    def now(self) -> datetime:
        """Return the current fake wall-clock time, an aware UTC datetime."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Return the current fake monotonic time in seconds."""
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float | timedelta) -> None:
        """Move both the wall-clock and the monotonic time forward.

        Args:
            seconds: How far to move, in seconds or as a timedelta; 0 or more.

        Raises:
            ValueError: `seconds` is negative, not finite, or not a number.
        """
        step = _to_seconds(seconds)
        with self._lock:
            self._now += timedelta(seconds=step)
            self._monotonic += step

    def sleep(self, seconds: float) -> None:
        """Advance the clock by `seconds` instead of waiting.

        Pass this method where code expects a sleep function, such as `time.sleep`.

        Args:
            seconds: How far to move, in seconds; 0 or more.

        Raises:
            ValueError: `seconds` is negative, not finite, or not a number.
        """
        self.advance(seconds)

    def __enter__(self) -> FakeClock:
        self._replaced.append(_clock.install(self))
        return self

    def __exit__(self, *exc_info: object) -> None:
        _clock.install(self._replaced.pop())

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now().isoformat()!r}, monotonic={self.monotonic()!r})"


def _to_seconds(value: object) -> float:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValueError(f"invalid seconds {value!r}: expected a number of seconds or a timedelta")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            f"invalid seconds {value!r}: expected a finite duration, 0 or more, because a"
            " FakeClock never moves backwards"
        )
    return seconds


# Matching events against expected fields


class _Expectation:
    """One expected field: an exact value, a compiled regular expression, or a predicate."""

    def __init__(self, field: str, expected: object) -> None:
        self.field = field
        self.expected = _normalize_expected(field, expected)

    def matches(self, event: ModerationEvent) -> bool:
        actual = getattr(event, self.field)
        expected = self.expected
        if isinstance(expected, re.Pattern):
            return actual is not None and expected.search(_text_of(actual)) is not None
        if callable(expected):
            return bool(expected(actual))
        return bool(actual == expected)

    def describe_expected(self) -> str:
        expected = self.expected
        if isinstance(expected, re.Pattern):
            return f"a match for {expected.pattern!r}"
        if callable(expected):
            name = getattr(expected, "__qualname__", None) or type(expected).__qualname__
            return f"a value for which {name}() is true"
        return _format_value(expected)

    def describe(self) -> str:
        expected = self.expected
        if isinstance(expected, re.Pattern):
            return f"{self.field}=re.compile({expected.pattern!r})"
        if callable(expected):
            return f"{self.field}={self.describe_expected()}"
        return f"{self.field}={_format_value(expected)}"


def _normalize_expected(field: str, expected: object) -> object:
    if isinstance(expected, re.Pattern) or callable(expected):
        return expected
    if field == "event_type":
        return parse_event_type(expected, parameter="expected event_type")
    if field == "timestamp":
        return parse_timestamp(expected, parameter="expected timestamp")
    if expected is None or isinstance(expected, str):
        # Events store a missing name as None, and the wire format sends it as "".
        if field in ("guard_name", "metric_name") and expected == "":
            return None
        return expected
    raise TypeError(
        f"invalid expected {field} {expected!r}: expected a string, None, a compiled regular"
        " expression (re.compile) or a function that takes the value and returns a bool"
    )


def _parse_expectations(fields: Mapping[str, object]) -> list[_Expectation]:
    expectations = []
    for name, expected in fields.items():
        if name not in _FIELD_NAMES:
            message = f"unknown event field {name!r}: expected one of {', '.join(_FIELD_NAMES)}"
            suggestion = difflib.get_close_matches(name, _FIELD_NAMES, n=1)
            if suggestion:
                message += f"; did you mean {suggestion[0]!r}?"
            raise TypeError(message)
        expectations.append(_Expectation(name, expected))
    return expectations


def _text_of(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return str(value)


def _format_value(value: object) -> str:
    if isinstance(value, datetime):
        return repr(value.isoformat(timespec="microseconds"))
    if not isinstance(value, str):
        return repr(value)

    # A ModerationEventType member shows as its wire string.
    text = repr(str(value))
    if len(text) > _MAX_VALUE_WIDTH:
        text = f"{text[: _MAX_VALUE_WIDTH - 25]}... ({len(value)} characters)"
    return text


def _describe_expectations(expectations: Sequence[_Expectation]) -> str:
    if not expectations:
        return "any fields"
    return ", ".join(expectation.describe() for expectation in expectations)


def _format_event(
    index: int, event: ModerationEvent, expectations: Sequence[_Expectation], *, label: str = ""
) -> list[str]:
    """Render one event as lines, marking with "!" each expected field that differs."""
    by_field = {expectation.field: expectation for expectation in expectations}
    lines = [f"  [{index}]{label}"]
    for field in _FIELD_NAMES:
        value = getattr(event, field)
        expectation = by_field.get(field)
        # The timestamp is noise unless the test names it.
        if expectation is None and (value is None or field == "timestamp"):
            continue
        field_text = f"{field}={_format_value(value)}"
        if expectation is not None and not expectation.matches(event):
            lines.append(f"    ! {field_text}  (expected {expectation.describe_expected()})")
        else:
            lines.append(f"      {field_text}")
    return lines


def _format_events(
    events: Sequence[tuple[int, ModerationEvent]],
    expectations: Sequence[_Expectation],
    *,
    label_matches: bool = False,
) -> list[str]:
    lines = []
    for index, event in events[:_MAX_EVENTS_SHOWN]:
        matched = all(expectation.matches(event) for expectation in expectations)
        label = " matches" if label_matches and matched else ""
        lines.extend(_format_event(index, event, expectations, label=label))
    if len(events) > _MAX_EVENTS_SHOWN:
        hidden = len(events) - _MAX_EVENTS_SHOWN
        noun = "event" if hidden == 1 else "events"
        lines.append(f"  ... and {hidden} more {noun} not shown")
    return lines


# Captured events


class CapturedEvents(Sequence[ModerationEvent]):
    """The moderation events captured so far, in the order they were reported.

    It is a sequence of `ModerationEvent` values, safe to read from any thread while events
    are still being captured. The assertion helpers take the fields to match as keyword
    arguments, named as the attributes of `ModerationEvent`. Each expected value is one of:

    - an exact value: a string or None; for `event_type` also a `ModerationEventType` member;
      for `timestamp` a datetime (naive means UTC) or an RFC 3339 string;
    - a compiled regular expression, which must be found anywhere in the text of the field
      (with `re.search`; `event_type` is read as its wire string);
    - a function that takes the field's value and returns whether it matches.

    Fields that are not named may have any value.

    Args:
        events: Events to start with, such as events built by a test.
    """

    def __init__(self, events: Iterable[ModerationEvent] = ()) -> None:
        self._events: list[ModerationEvent] = list(events)
        self._lock = threading.Lock()

    @classmethod
    def from_wire(cls, bodies: Iterable[Mapping[str, Any]]) -> CapturedEvents:
        """Build captured events from JSON bodies as the DataRobot API receives them.

        Use it to run the assertion helpers on what a receiver got, such as
        `CapturedEvents.from_wire(events_receiver.wait_for_events(1))`. Keys that are not
        fields of a moderation event, such as the receiver's `id`, are ignored.

        Args:
            bodies: Decoded JSON bodies, with wire keys such as `eventType`.

        Returns:
            The events, in the order of `bodies`.

        Raises:
            ValueError: A body is not a valid moderation event.
        """
        return cls(ModerationEvent.from_wire(body) for body in bodies)

    def append(self, event: ModerationEvent) -> None:
        """Add `event` at the end. `capture_events` calls this for each reported event.

        Args:
            event: The reported event.
        """
        with self._lock:
            self._events.append(event)

    def clear(self) -> None:
        """Forget every event captured so far. Capturing goes on."""
        with self._lock:
            self._events.clear()

    @property
    def events(self) -> list[ModerationEvent]:
        """A copy of the captured events."""
        with self._lock:
            return list(self._events)

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def __iter__(self) -> Iterator[ModerationEvent]:
        return iter(self.events)

    @overload
    def __getitem__(self, index: int) -> ModerationEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[ModerationEvent]: ...

    def __getitem__(self, index: int | slice) -> ModerationEvent | list[ModerationEvent]:
        with self._lock:
            return self._events[index]

    def __repr__(self) -> str:
        count = len(self)
        return f"<CapturedEvents: {count} {'event' if count == 1 else 'events'}>"

    def matching(self, **fields: object) -> list[ModerationEvent]:
        """Return the captured events whose fields match `fields`, in the order reported.

        Args:
            **fields: Expected values by event field name: a value, a compiled regular
                expression to search the field's text for, or a predicate on the value.

        Raises:
            TypeError: A field name is unknown, or an expected value has an unsupported type.
            ValueError: An expected `event_type` or `timestamp` is invalid.
        """
        expectations = _parse_expectations(fields)
        return [
            event
            for event in self.events
            if all(expectation.matches(event) for expectation in expectations)
        ]

    def assert_reported(self, **fields: object) -> ModerationEvent:
        """Assert that at least one captured event matches `fields`, and return the first.

        Args:
            **fields: Expected values by event field name, as for `matching`.

        Returns:
            The first matching event.

        Raises:
            AssertionError: No event matches. The message shows the expected fields and every
                captured event, with "!" before each field that differs.
            TypeError: A field name is unknown, or an expected value has an unsupported type.
            ValueError: An expected `event_type` or `timestamp` is invalid.
        """
        __tracebackhide__ = True
        expectations = _parse_expectations(fields)
        events = self.events
        for event in events:
            if all(expectation.matches(event) for expectation in expectations):
                return event

        lines = [f"no captured moderation event matches {_describe_expectations(expectations)}."]
        if not events:
            lines.append("No events were captured.")
        else:
            lines.append(
                f"Captured events: {len(events)}; '!' marks a field that differs from the"
                " expected value."
            )
            lines.extend(_format_events(list(enumerate(events)), expectations))
        raise AssertionError("\n".join(lines))

    def assert_not_reported(self, **fields: object) -> None:
        """Assert that no captured event matches `fields`; with no fields, that none was captured.

        Args:
            **fields: Expected values by event field name, as for `matching`.

        Raises:
            AssertionError: Some events match. The message lists them.
            TypeError: A field name is unknown, or an expected value has an unsupported type.
            ValueError: An expected `event_type` or `timestamp` is invalid.
        """
        __tracebackhide__ = True
        expectations = _parse_expectations(fields)
        events = self.events
        matches = [
            (index, event)
            for index, event in enumerate(events)
            if all(expectation.matches(event) for expectation in expectations)
        ]
        if not matches:
            return

        lines = [
            "expected no captured moderation event with"
            f" {_describe_expectations(expectations)}, but {len(matches)} of {len(events)}"
            " captured events match:"
        ]
        lines.extend(_format_events(matches, expectations))
        raise AssertionError("\n".join(lines))

    def assert_count(self, count: int, /, **fields: object) -> list[ModerationEvent]:
        """Assert that exactly `count` captured events match `fields`, and return them.

        Args:
            count: The expected number of matching events.
            **fields: Expected values by event field name, as for `matching`.

        Returns:
            The matching events, in the order reported.

        Raises:
            AssertionError: Another number of events matches. The message shows every
                captured event, labels those that match, and marks with "!" each field
                that differs.
            TypeError: A field name is unknown, or an expected value has an unsupported type.
            ValueError: `count` is not an integer of 0 or more, or an expected `event_type` or
                `timestamp` is invalid.
        """
        __tracebackhide__ = True
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"invalid count {count!r}: expected an integer, 0 or more")
        expectations = _parse_expectations(fields)
        events = self.events
        matches = [
            event
            for event in events
            if all(expectation.matches(event) for expectation in expectations)
        ]
        if len(matches) == count:
            return matches

        noun = "event" if count == 1 else "events"
        lines = [
            f"expected {count} captured moderation {noun} with"
            f" {_describe_expectations(expectations)}, found {len(matches)}."
        ]
        if not events:
            lines.append("No events were captured.")
        else:
            lines.append(
                f"Captured events: {len(events)}; '!' marks a field that differs from the"
                " expected value."
            )
            lines.extend(_format_events(list(enumerate(events)), expectations, label_matches=True))
        raise AssertionError("\n".join(lines))


@contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Capture every event reported in this process while the block runs; nothing is sent.

    Events reported from any thread are captured, both those of the decorators and context
    managers and those of `report_moderation_event`. They are captured as they would be sent:
    validated or sanitized, with the configured deployment and organization IDs filled in.
    They are captured before storm control, so repeats are not coalesced, and they are
    captured even while `configure(enabled=False)` is in force. Captures nest: while an inner
    capture is active, events go only to the inner one.

    Yields:
        The captured events, which keep growing until the block ends.
    """
    captured = CapturedEvents()
    push_sink(captured.append)
    try:
        yield captured
    finally:
        pop_sink(captured.append)


# Settings


def _configure_parameters() -> tuple[str, ...]:
    return tuple(inspect.signature(configure).parameters)


def _check_configure_arguments(
    arguments: Mapping[str, object], *, where: str, other_options: Sequence[str] = ()
) -> None:
    """Raise TypeError naming `where` unless every key of `arguments` is a `configure()` option.

    Args:
        arguments: The keyword arguments meant for `configure()`.
        where: What passed them, for the message, such as "override_settings()".
        other_options: Options that `where` takes besides those of `configure()`, which the
            caller has removed from `arguments`. The message lists them first.
    """
    known = _configure_parameters()
    for name in arguments:
        if name in known:
            continue
        if other_options:
            message = (
                f"unknown option {name!r} in {where}: expected {' or '.join(other_options)}, or"
                f" one of the configure() options {', '.join(known)}"
            )
        else:
            message = (
                f"unknown configure() option {name!r} in {where}: expected one of"
                f" {', '.join(known)}"
            )
        suggestion = difflib.get_close_matches(name, (*other_options, *known), n=1)
        if suggestion:
            message += f"; did you mean {suggestion[0]!r}?"
        raise TypeError(message)


def _settings_in_force() -> Settings | None:
    """Return the settings object in force, or None when none is resolved yet."""
    with _config._lock:
        return _config._current


def _restore_settings(settings: Settings | None) -> None:
    """Put back settings from `_settings_in_force()`. With None, the next use resolves them."""
    with _config._lock:
        _config._current = settings


@contextmanager
def override_settings(**arguments: Any) -> Iterator[Settings]:
    """Apply `configure(**arguments)` while the block runs, then restore the settings from before.

    As with `configure()`, options left out come from the environment, the DataRobot config file
    and the defaults, not from the settings in force before.

    Args:
        **arguments: Options of `configure()`, such as `deployment_id="..."`.

    Yields:
        The effective settings inside the block.

    Raises:
        TypeError: An argument is not a `configure()` option.
        ConfigurationError: `configure()` rejected a value.
    """
    _check_configure_arguments(arguments, where="override_settings()")
    before = _settings_in_force()
    try:
        yield configure(**arguments)
    finally:
        _restore_settings(before)


def __getattr__(name: str) -> Any:
    # The receiver needs http.server and socket, which most tests never use, and the pytest
    # plugin imports this module in every pytest session.
    if name in ("Faults", "RemoteEventsReceiver"):
        from . import _receiver

        return getattr(_receiver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
