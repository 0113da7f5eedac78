"""Properties of validation and serialization, for any input a caller may pass.

- An accepted event serializes to JSON, as HTTP, the spool and the event log write it, that
  parses back to the same fields.
- Rejected input raises `ValueError`, never another exception, in `ModerationEvent.create`,
  `from_wire`, `parse_timestamp` and the explicit call.
- With `sanitize=True`, as automatic reporting builds events, only an invalid event type or
  timestamp raises; every other field is fixed instead.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_guard_events import _dispatch, _stats, report_moderation_event
from mlops_guard_events._event import (
    MAX_MESSAGE_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TITLE_LENGTH,
    ModerationEvent,
    ModerationEventType,
    parse_timestamp,
)
from mlops_guard_events._spool import encode_body
from mlops_guard_events._transport import _decode_line, _encode_line
from mlops_guard_events.testing import capture_events


@pytest.fixture(autouse=True)
def fresh_counters() -> None:
    _stats.reset_counters()


class BrokenRepr:
    """A value whose `__str__` and `__repr__` raise, as a buggy user class may."""

    def __str__(self) -> str:
        raise RuntimeError("broken __str__")

    def __repr__(self) -> str:
        raise RuntimeError("broken __repr__")


# Any character, lone surrogates and NUL included.
characters = st.characters() | st.characters(categories=["Cs"]) | st.just("\x00")


def text_near(limit: int) -> st.SearchStrategy[str]:
    """Text of about `limit` characters, on both sides of the limit."""
    return st.integers(min_value=limit - 2, max_value=limit + 2).map(lambda size: "x" * size)


def text_field(limit: int) -> st.SearchStrategy[Any]:
    return st.none() | st.text(characters, max_size=40) | text_near(limit)


fixed_offsets = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)
datetimes = st.datetimes(timezones=st.none() | fixed_offsets)
rfc3339_like = st.from_regex(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?", fullmatch=True
)
timestamps = (
    st.none()
    | datetimes
    | rfc3339_like
    | datetimes.map(lambda value: value.isoformat())
    | st.text(characters, max_size=30)
    | st.integers()
    | st.floats()
)
event_types = (
    st.sampled_from(list(ModerationEventType))
    | st.sampled_from([member.value for member in ModerationEventType])
    | st.text(characters, max_size=40)
    | st.sampled_from(["", "moderationModelRuntimeEror", "MODERATION_MODEL_CONFIG_ERROR"])
    | st.none()
    | st.integers()
)
identifiers = st.none() | st.text(characters, max_size=20) | st.sampled_from(["", " ", "None"])
wrong_types = (
    st.integers() | st.floats() | st.binary(max_size=8) | st.lists(st.integers(), max_size=2)
)
anything = wrong_types | st.builds(BrokenRepr)

event_arguments = st.fixed_dictionaries(
    {
        "event_type": event_types,
        "timestamp": timestamps,
        "title": text_field(MAX_TITLE_LENGTH) | wrong_types,
        "message": text_field(MAX_MESSAGE_LENGTH) | wrong_types,
        "deployment_id": identifiers | wrong_types,
        "org_id": identifiers,
        "guard_name": text_field(MAX_NAME_LENGTH) | anything,
        "metric_name": text_field(MAX_NAME_LENGTH),
    }
)


def create_or_none(arguments: dict[str, Any], **options: Any) -> ModerationEvent | None:
    """Build the event, or return None when the input is rejected with `ValueError`."""
    try:
        return ModerationEvent.create(**arguments, **options)
    except ValueError:
        return None


def assert_wire_round_trip(event: ModerationEvent) -> None:
    wire = event.to_wire()
    # The encodings of the HTTP transport, the spool and the event log, in that order.
    encoded = [
        json.dumps(wire, ensure_ascii=False, allow_nan=False).encode("utf-8"),
        encode_body(wire),
        _encode_line(wire),
    ]
    for data in encoded:
        assert json.loads(data) == wire
    assert _decode_line(encoded[2]) == wire
    assert ModerationEvent.from_wire(json.loads(encoded[0])) == event


@given(arguments=event_arguments)
def test_create_accepts_or_raises_value_error(arguments: dict[str, Any]) -> None:
    event = create_or_none(arguments)

    if event is not None:
        assert_wire_round_trip(event)


@given(arguments=event_arguments)
def test_accepted_fields_survive_serialization(arguments: dict[str, Any]) -> None:
    event = create_or_none(arguments)

    if event is not None:
        wire = json.loads(json.dumps(event.to_wire(), ensure_ascii=False))
        assert wire.get("title") == event.title
        assert wire.get("message") == event.message
        assert wire.get("deploymentId") == event.deployment_id
        assert wire.get("orgId") == event.org_id
        assert wire["moderationData"]["guardName"] == (event.guard_name or "")
        assert wire["moderationData"]["metricName"] == (event.metric_name or "")
        assert datetime.fromisoformat(wire["timestamp"]) == event.timestamp


@given(arguments=event_arguments)
def test_sanitize_raises_only_for_type_or_time(arguments: dict[str, Any]) -> None:
    strict_type_and_time = {
        "event_type": arguments["event_type"],
        "timestamp": arguments["timestamp"],
    }

    sanitized = create_or_none(arguments, sanitize=True)

    assert (sanitized is None) == (create_or_none(strict_type_and_time) is None)
    if sanitized is not None:
        assert_wire_round_trip(sanitized)


@given(value=timestamps)
def test_parse_timestamp_raises_value_error_only(value: object) -> None:
    try:
        parsed = parse_timestamp(value)
    except ValueError:
        return

    assert parsed.utcoffset() == timedelta(0)


# RFC 3339 offsets are whole minutes, from -23:59 to +23:59.
minute_offsets = st.integers(min_value=-1439, max_value=1439).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(when=st.datetimes(timezones=minute_offsets))
def test_timestamp_string_round_trips(when: datetime) -> None:
    try:
        expected = when.astimezone(timezone.utc)
    except OverflowError:
        return  # outside the years 1 to 9999 in UTC; parse_timestamp rejects it

    assert parse_timestamp(when.isoformat()) == expected


wire_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
wire_bodies = st.fixed_dictionaries(
    {},
    optional={
        "eventType": event_types.filter(lambda value: not isinstance(value, ModerationEventType))
        | wire_values,
        "timestamp": rfc3339_like | wire_values,
        "title": wire_values,
        "message": wire_values,
        "deploymentId": wire_values,
        "orgId": wire_values,
        "moderationData": wire_values
        | st.fixed_dictionaries({}, optional={"guardName": wire_values, "metricName": wire_values}),
    },
)


@given(body=wire_bodies)
def test_from_wire_raises_value_error_only(body: dict[str, Any]) -> None:
    try:
        event = ModerationEvent.from_wire(body)
    except ValueError:
        return

    assert ModerationEvent.from_wire(event.to_wire()) == event


@given(arguments=event_arguments)
def test_explicit_call_raises_value_error_only(arguments: dict[str, Any]) -> None:
    expected = create_or_none(arguments)

    with capture_events() as captured:
        try:
            report_moderation_event(**arguments)
        except ValueError:
            assert expected is None
            return

    assert expected is not None
    assert len(captured) == 1
    if arguments["timestamp"] is not None:
        assert captured[0] == expected


@given(arguments=event_arguments)
def test_automatic_reporting_never_raises(arguments: dict[str, Any]) -> None:
    fields = {
        name: value for name, value in arguments.items() if name not in ("event_type", "timestamp")
    }

    with capture_events() as captured:
        submitted = _dispatch.report_automatic(
            ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR, **fields
        )

    assert submitted
    assert len(captured) == 1
    assert_wire_round_trip(captured[0])
