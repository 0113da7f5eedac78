"""The moderation event: validation, sanitizing, timestamps and the wire format."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_guard_events._event import (
    MAX_MESSAGE_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TITLE_LENGTH,
    ModerationEvent,
    ModerationEventType,
    parse_event_type,
    parse_timestamp,
    truncate,
)

RUNTIME = "moderationModelRuntimeError"
FIXED = datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=timezone.utc)
TEXT_LIMITS = [
    ("title", MAX_TITLE_LENGTH),
    ("message", MAX_MESSAGE_LENGTH),
    ("guard_name", MAX_NAME_LENGTH),
    ("metric_name", MAX_NAME_LENGTH),
]
TEXT_FIELDS = [field for field, _ in TEXT_LIMITS]
ID_FIELDS = ["deployment_id", "org_id"]


def create(**fields: Any) -> ModerationEvent:
    fields.setdefault("event_type", RUNTIME)
    fields.setdefault("timestamp", FIXED)
    return ModerationEvent.create(**fields)


# Event types.


def test_five_event_types() -> None:
    assert sorted(member.value for member in ModerationEventType) == [
        "moderationMetricCreationError",
        "moderationMetricReportingError",
        "moderationModelConfigError",
        "moderationModelRuntimeError",
        "moderationModelScoringError",
    ]


def test_type_from_wire_string() -> None:
    assert parse_event_type(RUNTIME) is ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR


def test_unknown_type_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="invalid event_type") as caught:
        create(event_type="guardFailed")

    for member in ModerationEventType:
        assert member.value in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "MODERATION_MODEL_RUNTIME_ERROR",
        "moderation-model-runtime-error",
        "moderationModelRuntimeErr",
    ],
)
def test_unknown_type_suggests_closest(text: str) -> None:
    with pytest.raises(ValueError, match="did you mean 'moderationModelRuntimeError'"):
        create(event_type=text)


def test_unrelated_type_has_no_suggestion() -> None:
    with pytest.raises(ValueError, match="invalid event_type") as caught:
        create(event_type="xyz")

    assert "did you mean" not in str(caught.value)


@pytest.mark.parametrize("value", [None, 3, b"moderationModelRuntimeError"])
def test_type_must_be_string(value: object) -> None:
    with pytest.raises(ValueError, match="invalid event_type"):
        create(event_type=value)


def test_type_is_checked_when_sanitizing() -> None:
    with pytest.raises(ValueError, match="invalid event_type"):
        create(event_type="nope", sanitize=True)


# Text fields.


@pytest.mark.parametrize(("field", "limit"), TEXT_LIMITS)
def test_text_at_limit_accepted(field: str, limit: int) -> None:
    event = create(**{field: "x" * limit})

    assert len(getattr(event, field)) == limit


@pytest.mark.parametrize(("field", "limit"), TEXT_LIMITS)
def test_limit_error_names_field_and_limit(field: str, limit: int) -> None:
    with pytest.raises(ValueError, match=f"invalid {field}") as caught:
        create(**{field: "x" * (limit + 1)})

    assert f"invalid {field} 'xxx" in str(caught.value)
    assert f"limit of {limit}" in str(caught.value)
    assert f"shorten it to at most {limit} characters" in str(caught.value)


@pytest.mark.parametrize("field", TEXT_FIELDS + ID_FIELDS)
def test_non_string_rejected(field: str) -> None:
    with pytest.raises(ValueError, match=f"invalid {field} 42: expected a string or None"):
        create(**{field: 42})


@pytest.mark.parametrize("field", TEXT_FIELDS + ID_FIELDS)
def test_nul_character_rejected(field: str) -> None:
    with pytest.raises(ValueError, match=f"invalid {field} .*NUL character"):
        create(**{field: "a\x00b"})


@pytest.mark.parametrize("field", TEXT_FIELDS + ID_FIELDS)
def test_lone_surrogate_rejected(field: str) -> None:
    with pytest.raises(ValueError, match=f"invalid {field} .*lone surrogate"):
        create(**{field: "a\ud800b"})


def test_empty_title_is_kept() -> None:
    assert create(title="").to_wire()["title"] == ""


def test_empty_name_equals_none() -> None:
    assert create(guard_name="") == create(guard_name=None)


# Identifiers.


@pytest.mark.parametrize("field", ID_FIELDS)
@pytest.mark.parametrize("value", ["", "   "])
def test_blank_id_rejected(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"invalid {field} .*non-empty ID"):
        create(**{field: value})


@pytest.mark.parametrize("field", ID_FIELDS)
@pytest.mark.parametrize("value", ["None", "null"])
def test_missing_value_text_rejected(field: str, value: str) -> None:
    with pytest.raises(ValueError, match="pass None to leave it out"):
        create(**{field: value})


@pytest.mark.parametrize("field", ID_FIELDS)
def test_overlong_id_rejected(field: str) -> None:
    with pytest.raises(ValueError, match=f"invalid {field} 'ddd.*: 513 characters"):
        create(**{field: "d" * 513})


def test_deployment_id_never_none_text() -> None:
    wire = create(deployment_id=None).to_wire()

    assert "deploymentId" not in wire


def test_from_wire_rejects_none_text() -> None:
    body = {**create(deployment_id="dep").to_wire(), "deploymentId": "None"}

    with pytest.raises(ValueError, match="deployment_id"):
        ModerationEvent.from_wire(body)


# Sanitize mode.


@pytest.mark.parametrize(("field", "limit"), TEXT_LIMITS)
def test_sanitize_cuts_with_marker(field: str, limit: int) -> None:
    event = create(**{field: "y" * (limit + 100)}, sanitize=True)

    value = getattr(event, field)
    assert len(value) <= limit
    assert value.endswith("characters]")
    assert "[truncated" in value


def test_sanitize_marker_counts_removed() -> None:
    original = "z" * (MAX_TITLE_LENGTH + 100)

    title = create(title=original, sanitize=True).title

    assert title is not None
    kept = title.index("... [truncated")
    assert f"[truncated {len(original) - kept} characters]" in title


def test_sanitize_replaces_nul_and_surrogate() -> None:
    event = create(message="a\x00b\udc80c", sanitize=True)

    assert event.message == "a\ufffdb\ufffdc"


def test_sanitize_stringifies_names() -> None:
    event = create(guard_name=42, metric_name=3.5, sanitize=True)

    assert event.guard_name == "42"
    assert event.metric_name == "3.5"


def test_sanitize_survives_broken_str() -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("broken")

    event = create(guard_name=Broken(), sanitize=True)

    assert event.guard_name == "<Broken object>"


@pytest.mark.parametrize("value", ["", "  ", "None", "null"])
def test_sanitize_drops_empty_ids(value: str) -> None:
    event = create(deployment_id=value, org_id=value, sanitize=True)

    assert event.deployment_id is None
    assert event.org_id is None


def test_sanitize_strips_and_cuts_ids() -> None:
    event = create(deployment_id=" " + "d" * 600 + " ", sanitize=True)

    assert event.deployment_id == "d" * MAX_NAME_LENGTH


def test_sanitize_checks_timestamp() -> None:
    with pytest.raises(ValueError, match="invalid timestamp"):
        create(timestamp="yesterday", sanitize=True)


@given(
    title=st.text(max_size=700),
    message=st.text(max_size=50),
    guard=st.text(max_size=600),
    deployment=st.text(max_size=20),
)
def test_sanitized_event_always_encodes(
    title: str, message: str, guard: str, deployment: str
) -> None:
    event = create(
        title=title, message=message, guard_name=guard, deployment_id=deployment, sanitize=True
    )

    encoded = json.dumps(event.to_wire(), ensure_ascii=False).encode("utf-8")

    assert json.loads(encoded) == event.to_wire()


@given(text=st.text(max_size=300), limit=st.integers(min_value=0, max_value=200))
def test_truncate_never_exceeds_limit(text: str, limit: int) -> None:
    assert len(truncate(text, limit)) <= limit


@given(text=st.text(max_size=50))
def test_truncate_keeps_short_text(text: str) -> None:
    assert truncate(text, 50) == text


# Timestamps.


def test_naive_datetime_means_utc() -> None:
    event = create(timestamp=datetime(2026, 1, 31, 12, 0, 0))

    assert event.timestamp == datetime(2026, 1, 31, 12, 0, 0, tzinfo=timezone.utc)


def test_aware_datetime_converted_to_utc() -> None:
    berlin_winter = timezone(timedelta(hours=1))

    event = create(timestamp=datetime(2026, 1, 31, 13, 0, 0, tzinfo=berlin_winter))

    assert event.timestamp == datetime(2026, 1, 31, 12, 0, 0, tzinfo=timezone.utc)
    assert event.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31T12:00:00Z", "2026-01-31T12:00:00.000000+00:00"),
        ("2026-01-31T12:00:00z", "2026-01-31T12:00:00.000000+00:00"),
        ("2026-01-31T12:00:00+00:00", "2026-01-31T12:00:00.000000+00:00"),
        ("2026-01-31T14:30:00+02:30", "2026-01-31T12:00:00.000000+00:00"),
        ("2026-01-31T07:00:00-05:00", "2026-01-31T12:00:00.000000+00:00"),
        ("2026-01-31 12:00:00.5Z", "2026-01-31T12:00:00.500000+00:00"),
        ("2026-01-31T12:00:00.123456789Z", "2026-01-31T12:00:00.123456+00:00"),
        ("2026-01-31T12:00:00", "2026-01-31T12:00:00.000000+00:00"),
        (" 2026-01-31T12:00:00Z ", "2026-01-31T12:00:00.000000+00:00"),
    ],
)
def test_rfc3339_string_to_wire(text: str, expected: str) -> None:
    assert create(timestamp=text).to_wire()["timestamp"] == expected


def test_wire_timestamp_has_explicit_offset() -> None:
    wire = create(timestamp=datetime(2026, 1, 31, 12, 0, 0)).to_wire()["timestamp"]

    assert wire.endswith("+00:00")


@pytest.mark.parametrize(
    "text", ["2026-02-30T12:00:00Z", "2026-13-01T00:00:00Z", "2026-01-31T25:00:00Z"]
)
def test_impossible_date_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="give a date and time that exist"):
        create(timestamp=text)


def test_offset_out_of_range_rejected() -> None:
    with pytest.raises(ValueError, match="out of range"):
        create(timestamp="2026-01-31T12:00:00+24:00")


@pytest.mark.parametrize(
    "text", ["yesterday", "2026-01-31", "31/01/2026 12:00", "2026-01-31T12:00Z"]
)
def test_malformed_string_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="not an RFC 3339 timestamp"):
        create(timestamp=text)


@pytest.mark.parametrize("value", [1_769_860_800, 1.5, b"2026-01-31T12:00:00Z"])
def test_timestamp_type_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="expected a datetime or an RFC 3339 string"):
        create(timestamp=value)


def test_unrepresentable_utc_rejected() -> None:
    early = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))

    with pytest.raises(ValueError, match="cannot be expressed in UTC"):
        parse_timestamp(early)


def test_default_timestamp_from_clock() -> None:
    event = ModerationEvent.create(RUNTIME, clock=lambda: FIXED)

    assert event.timestamp == FIXED


def test_naive_clock_result_means_utc() -> None:
    event = ModerationEvent.create(RUNTIME, clock=lambda: datetime(2026, 1, 31, 12, 0, 0))

    assert event.timestamp.tzinfo is timezone.utc


def test_explicit_timestamp_ignores_clock() -> None:
    def failing_clock() -> datetime:
        raise AssertionError("the clock must not be read")

    event = ModerationEvent.create(RUNTIME, FIXED, clock=failing_clock)

    assert event.timestamp == FIXED


def test_constructor_requires_utc() -> None:
    with pytest.raises(ValueError, match="aware UTC datetime"):
        ModerationEvent(ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR, datetime(2026, 1, 1))


# The wire format.


def test_wire_omits_none_fields() -> None:
    wire = create().to_wire()

    assert wire == {
        "eventType": RUNTIME,
        "timestamp": "2026-01-31T12:00:00.123456+00:00",
        "moderationData": {"guardName": "", "metricName": ""},
    }


def test_wire_has_every_field() -> None:
    wire = create(
        title="t", message="m", deployment_id="d", org_id="o", guard_name="g", metric_name="n"
    ).to_wire()

    assert wire == {
        "eventType": RUNTIME,
        "timestamp": "2026-01-31T12:00:00.123456+00:00",
        "title": "t",
        "message": "m",
        "deploymentId": "d",
        "orgId": "o",
        "moderationData": {"guardName": "g", "metricName": "n"},
    }


def test_moderation_data_has_both_names() -> None:
    assert create(metric_name="latency").to_wire()["moderationData"] == {
        "guardName": "",
        "metricName": "latency",
    }


def test_event_is_frozen() -> None:
    event = create()

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.title = "changed"  # type: ignore[misc]


def test_from_wire_requires_timestamp() -> None:
    with pytest.raises(ValueError, match="missing timestamp"):
        ModerationEvent.from_wire({"eventType": RUNTIME})


@pytest.mark.parametrize("value", [[], "", 0, "guard"])
def test_from_wire_rejects_bad_moderation_data(value: object) -> None:
    body = {"eventType": RUNTIME, "timestamp": "2026-01-31T12:00:00Z", "moderationData": value}

    with pytest.raises(ValueError, match="invalid moderationData"):
        ModerationEvent.from_wire(body)


def test_from_wire_accepts_missing_moderation_data() -> None:
    event = ModerationEvent.from_wire({"eventType": RUNTIME, "timestamp": "2026-01-31T12:00:00Z"})

    assert event.guard_name is None


optional_text = st.none() | st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40
)
identifier = st.none() | st.from_regex(r"[0-9a-f]{24}", fullmatch=True)


@given(
    event_type=st.sampled_from(list(ModerationEventType)),
    when=st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9999, 1, 1),
        timezones=st.just(timezone.utc),
    ),
    title=optional_text,
    message=optional_text,
    deployment_id=identifier,
    org_id=identifier,
    guard_name=optional_text,
    metric_name=optional_text,
)
def test_wire_round_trip(
    event_type: ModerationEventType,
    when: datetime,
    title: str | None,
    message: str | None,
    deployment_id: str | None,
    org_id: str | None,
    guard_name: str | None,
    metric_name: str | None,
) -> None:
    event = ModerationEvent.create(
        event_type, when, title, message, deployment_id, org_id, guard_name, metric_name
    )

    wire = json.loads(json.dumps(event.to_wire()))

    assert ModerationEvent.from_wire(wire) == event
