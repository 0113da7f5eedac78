"""The moderation event: its types, validation and wire format."""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_TITLE_LENGTH",
    "Clock",
    "ModerationEvent",
    "ModerationEventType",
    "parse_event_type",
    "parse_timestamp",
    "utc_now",
]

MAX_TITLE_LENGTH: Final = 512
MAX_MESSAGE_LENGTH: Final = 16384
MAX_NAME_LENGTH: Final = 512

Clock = Callable[[], datetime]
"""A function returning the current time; a naive result is read as UTC."""


class ModerationEventType(str, enum.Enum):
    """The five moderation event types DataRobot accepts, valued as their wire strings."""

    MODERATION_METRIC_CREATION_ERROR = "moderationMetricCreationError"
    MODERATION_METRIC_REPORTING_ERROR = "moderationMetricReportingError"
    MODERATION_MODEL_CONFIG_ERROR = "moderationModelConfigError"
    MODERATION_MODEL_RUNTIME_ERROR = "moderationModelRuntimeError"
    MODERATION_MODEL_SCORING_ERROR = "moderationModelScoringError"

    def __str__(self) -> str:
        return self.value


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def parse_event_type(value: object, *, parameter: str = "event_type") -> ModerationEventType:
    """Convert an enum member or its wire string to `ModerationEventType`.

    Raises:
        ValueError: `value` is not one of the five types; the message lists them and suggests
            the closest one.
    """
    if isinstance(value, ModerationEventType):
        return value
    if isinstance(value, str):
        try:
            return ModerationEventType(value)
        except ValueError:
            pass
    valid = [member.value for member in ModerationEventType]
    message = (
        f"invalid {parameter} {_shorten(value)}: expected one of {', '.join(valid)}"
        " (a string or a ModerationEventType member)"
    )
    suggestion = _closest_event_type(value) if isinstance(value, str) else None
    if suggestion is not None:
        message += f"; did you mean {suggestion.value!r}?"
    raise ValueError(message)


def _closest_event_type(text: str) -> ModerationEventType | None:
    # Compare case-insensitively and without separators, so that "MODERATION_MODEL_RUNTIME_ERROR"
    # and "moderation-model-runtime-error" both point at moderationModelRuntimeError.
    def squash(word: str) -> str:
        return re.sub(r"[^a-z]", "", word.lower())

    by_key = {squash(member.value): member for member in ModerationEventType}
    import difflib  # only an invalid event type needs it, so imports stay cheap

    matches = difflib.get_close_matches(squash(text), list(by_key), n=1, cutoff=0.6)
    return by_key[matches[0]] if matches else None


_RFC3339 = re.compile(
    r"""
    (?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})
    [Tt ]
    (?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})
    (?:\.(?P<fraction>\d+))?
    (?P<offset>[Zz]|[+-]\d{2}:\d{2})?
    """,
    re.VERBOSE,
)


def parse_timestamp(value: object, *, parameter: str = "timestamp") -> datetime:
    """Convert a datetime or an RFC 3339 string to an aware UTC datetime.

    A naive datetime, or a string without an offset, is read as UTC. An aware datetime in
    another zone becomes the same instant in UTC. Digits past microseconds are dropped.

    Raises:
        ValueError: `value` is neither a datetime nor a valid RFC 3339 string, or names a time
            that does not exist (such as February 30) or cannot be expressed in UTC.
    """
    if isinstance(value, datetime):
        return _to_utc(value, parameter)
    if not isinstance(value, str):
        raise ValueError(
            f"invalid {parameter} {_shorten(value)}: expected a datetime or an RFC 3339 string"
            " such as '2026-01-31T12:00:00Z'"
        )

    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            f"invalid {parameter} {_shorten(value)}: not an RFC 3339 timestamp;"
            " write it as 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z' or with an offset such as '+02:00'"
        )
    fields = match.groupdict()
    microsecond = int((fields["fraction"] or "0")[:6].ljust(6, "0"))
    try:
        parsed = datetime(
            int(fields["year"]),
            int(fields["month"]),
            int(fields["day"]),
            int(fields["hour"]),
            int(fields["minute"]),
            int(fields["second"]),
            microsecond,
            tzinfo=_parse_offset(fields["offset"]),
        )
    except ValueError as error:
        raise ValueError(
            f"invalid {parameter} {_shorten(value)}: {error}; give a date and time that exist"
        ) from None
    return _to_utc(parsed, parameter, shown=value)


def _parse_offset(text: str | None) -> timezone:
    if text is None or text in ("Z", "z"):
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 23 or minutes > 59:
        raise ValueError(f"UTC offset {text} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _to_utc(value: datetime, parameter: str, shown: object = None) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(
            f"invalid {parameter} {_shorten(shown or value)}: the time cannot be expressed in UTC"
            " (it is outside the years 1 to 9999); give a time within that range"
        ) from None


def _shorten(value: object, width: int = 80) -> str:
    """Return the repr of `value` cut to about `width` characters, for error messages."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__} object>"
    if len(text) > width:
        text = f"{text[: width - 15]}... ({len(text)} chars)"
    return text


_LIMITS: Final[dict[str, int]] = {
    "title": MAX_TITLE_LENGTH,
    "message": MAX_MESSAGE_LENGTH,
    "guard_name": MAX_NAME_LENGTH,
    "metric_name": MAX_NAME_LENGTH,
}
_IDENTIFIERS: Final = ("deployment_id", "org_id")
_TRUNCATION_MARKER: Final = "... [truncated {count} characters]"


@dataclasses.dataclass(frozen=True)
class ModerationEvent:
    """One moderation event, validated, in the form the DataRobot API receives.

    Build events with `ModerationEvent.create`, which accepts the same loose inputs as
    `report_moderation_event`. The constructor takes the normalized fields and checks them.

    Attributes:
        event_type: One of the five moderation event types.
        timestamp: When it happened, an aware datetime in UTC.
        title: A one-line summary, at most 512 characters.
        message: The details, at most 16384 characters.
        deployment_id: The DataRobot deployment the event belongs to.
        org_id: The DataRobot organization, if the deployment's owner sets one.
        guard_name: The guard the event is about, at most 512 characters.
        metric_name: The custom metric the event is about, at most 512 characters.
    """

    event_type: ModerationEventType
    timestamp: datetime
    title: str | None = None
    message: str | None = None
    deployment_id: str | None = None
    org_id: str | None = None
    guard_name: str | None = None
    metric_name: str | None = None

    def __post_init__(self) -> None:
        parse_event_type(self.event_type)
        if not isinstance(self.timestamp, datetime) or self.timestamp.utcoffset() != timedelta(0):
            raise ValueError(
                f"invalid timestamp {_shorten(self.timestamp)}: expected an aware UTC datetime;"
                " use ModerationEvent.create to convert other times"
            )
        for field, limit in _LIMITS.items():
            _check_text(field, getattr(self, field), limit)
        for field in _IDENTIFIERS:
            _check_identifier(field, getattr(self, field))
        # The wire format has "" for a missing name, so "" and None are the same event.
        for field in ("guard_name", "metric_name"):
            if getattr(self, field) == "":
                object.__setattr__(self, field, None)

    @classmethod
    def create(
        cls,
        event_type: ModerationEventType | str,
        timestamp: datetime | str | None = None,
        title: str | None = None,
        message: str | None = None,
        deployment_id: str | None = None,
        org_id: str | None = None,
        guard_name: str | None = None,
        metric_name: str | None = None,
        *,
        clock: Clock = utc_now,
        sanitize: bool = False,
    ) -> ModerationEvent:
        """Validate loose inputs and build an event.

        Args:
            event_type: A `ModerationEventType` member or its wire string.
            timestamp: A datetime or RFC 3339 string; naive means UTC; None means `clock()`.
            title: A one-line summary.
            message: The details.
            deployment_id: The DataRobot deployment ID.
            org_id: The DataRobot organization ID.
            guard_name: The guard the event is about.
            metric_name: The custom metric the event is about.
            clock: The source of the default timestamp.
            sanitize: Fix text instead of rejecting it, as automatic reporting must: cut
                over-long text with a visible marker, replace NUL characters and lone
                surrogates, turn names that are not strings into strings, and drop empty IDs.

        Returns:
            The validated event, with an aware UTC timestamp.

        Raises:
            ValueError: An argument is invalid; the message names the parameter as written here.
                With `sanitize`, only an invalid `event_type` or `timestamp` raises.
        """
        fields: dict[str, Any] = {
            "title": title,
            "message": message,
            "deployment_id": deployment_id,
            "org_id": org_id,
            "guard_name": guard_name,
            "metric_name": metric_name,
        }
        if sanitize:
            fields = {name: _sanitize(name, value) for name, value in fields.items()}
        when = clock() if timestamp is None else timestamp
        return cls(
            event_type=parse_event_type(event_type),
            timestamp=parse_timestamp(when),
            **fields,
        )

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> ModerationEvent:
        """Build an event from the JSON body the DataRobot API receives.

        Args:
            body: The decoded JSON body, with wire keys such as `eventType`.

        Returns:
            The event.

        Raises:
            ValueError: The body is not a valid moderation event.
        """
        if "timestamp" not in body:
            raise ValueError("invalid event body: missing timestamp")
        moderation_data = body.get("moderationData")
        if moderation_data is None:
            moderation_data = {}
        if not isinstance(moderation_data, Mapping):
            raise ValueError(
                f"invalid moderationData {_shorten(moderation_data)}: expected an object"
            )
        return cls.create(
            body.get("eventType"),  # type: ignore[arg-type]
            timestamp=body["timestamp"],
            title=body.get("title"),
            message=body.get("message"),
            deployment_id=body.get("deploymentId"),
            org_id=body.get("orgId"),
            guard_name=moderation_data.get("guardName"),
            metric_name=moderation_data.get("metricName"),
        )

    def to_wire(self) -> dict[str, Any]:
        """Return the JSON body for `POST {endpoint}/remoteEvents/`.

        Fields that are None are left out, as the official client leaves them out, except that
        `moderationData` always carries both names, with "" for a missing one.
        """
        body: dict[str, Any] = {
            "eventType": self.event_type.value,
            "timestamp": self.timestamp.isoformat(timespec="microseconds"),
        }
        optional = {
            "title": self.title,
            "message": self.message,
            "deploymentId": self.deployment_id,
            "orgId": self.org_id,
        }
        body.update((key, value) for key, value in optional.items() if value is not None)
        body["moderationData"] = {
            "guardName": self.guard_name or "",
            "metricName": self.metric_name or "",
        }
        return body


def _check_text(field: str, value: object, limit: int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"invalid {field} {_shorten(value)}: expected a string or None")
    if len(value) > limit:
        raise ValueError(
            f"invalid {field} {_shorten(value)}: {len(value)} characters is over the limit of"
            f" {limit}; shorten it to at most {limit} characters"
        )
    _check_characters(field, value)


def _check_identifier(field: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"invalid {field} {_shorten(value)}: expected a string or None")
    if not value.strip():
        raise ValueError(
            f"invalid {field} {value!r}: expected a non-empty ID, or None to leave it out"
        )
    if value in ("None", "null"):
        raise ValueError(
            f"invalid {field} {value!r}: this is the text of a missing value, not an ID;"
            " pass None to leave it out"
        )
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(
            f"invalid {field} {_shorten(value)}: {len(value)} characters is over the limit of"
            f" {MAX_NAME_LENGTH}; shorten it to at most {MAX_NAME_LENGTH} characters"
        )
    _check_characters(field, value)


def _check_characters(field: str, value: str) -> None:
    if "\x00" in value:
        raise ValueError(f"invalid {field} {_shorten(value)}: contains a NUL character; remove it")
    if _LONE_SURROGATE.search(value):
        raise ValueError(
            f"invalid {field} {_shorten(value)}: contains a lone surrogate, which is not valid"
            " Unicode text; decode the source with errors='replace' or remove it"
        )


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _sanitize(field: str, value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else _safe_str(value)
    text = _LONE_SURROGATE.sub("\ufffd", text.replace("\x00", "\ufffd"))
    if field in _IDENTIFIERS:
        text = text.strip()
        return text[:MAX_NAME_LENGTH] if text and text not in ("None", "null") else None
    return truncate(text, _LIMITS[field])


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # any failure of a user's __str__ falls back to the type
        return f"<{type(value).__name__} object>"


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, ending with a marker that counts the cut ones."""
    if len(text) <= limit:
        return text
    # The marker's own length depends on the count it shows, so size it for the longest count.
    marker = _TRUNCATION_MARKER.format(count=len(text))
    kept = max(limit - len(marker), 0)
    return text[:kept] + _TRUNCATION_MARKER.format(count=len(text) - kept)[: limit - kept]
