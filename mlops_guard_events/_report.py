"""The explicit, synchronous call, with the signature of the official `datarobot` client."""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from typing import NoReturn

from . import _clock, _dispatch, _stats
from ._config import Settings, current_settings
from ._event import ModerationEvent, ModerationEventType
from ._scrub import prepare_event, redact_text
from ._transport import EventLog, HttpTransport
from .exceptions import EventRejectedError

__all__ = ["MLOpsEvent", "report_moderation_event"]

logger = logging.getLogger("mlops_guard_events")


def report_moderation_event(
    event_type: ModerationEventType | str,
    timestamp: datetime | str | None = None,
    title: str | None = None,
    message: str | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    guard_name: str | None = None,
    metric_name: str | None = None,
) -> None:
    """Report one moderation event and return once it is stored.

    The signature and the errors match `datarobot.mlops.events.MLOpsEvent.report_moderation_event`.
    With an endpoint configured, the call posts the event and returns when the server has
    accepted it. It retries connection errors, timeouts and HTTP 429, 502, 503 and 504 up to
    `max_retries` times, and blocks the calling thread meanwhile. Without an endpoint, the
    event is appended to the local event log. With `enabled=False`, the event is validated and
    nothing else happens. Inside `mlops_guard_events.testing.capture_events()`, the event is
    captured instead.

    Secrets in the title and message are replaced by `[REDACTED]` before the event is sent,
    logged or captured, and then the `before_send` hook runs. When the hook returns None,
    raises, or returns something other than an event, the call returns without sending
    anything: the drop is counted as `dropped_before_send`, and a hook failure is logged with
    its exception type, not raised, as for automatic reporting.

    Args:
        event_type: One of the five moderation event types, as a `ModerationEventType` or its
            wire string such as `"moderationModelRuntimeError"`.
        timestamp: When it happened: a datetime, naive meaning UTC, or an RFC 3339 string.
            None means now, read from the library's clock (a `FakeClock` in tests).
        title: A one-line summary, at most 512 characters.
        message: The details, at most 16384 characters.
        deployment_id: The deployment the event belongs to; None means the configured one.
        org_id: The organization the event belongs to; None means the configured one.
        guard_name: The guard the event is about, at most 512 characters.
        metric_name: The custom metric the event is about, at most 512 characters.

    Raises:
        ValueError: An argument is invalid; raised before any request, and the message names
            the parameter and shows the value shortened, with secrets redacted.
        EventRejectedError: The server responded with a final error, such as 401 or 422. It
            is a `ValueError`. `status_code` and `server_message` describe the response, and
            the message contains both.
        EventRetryableError: Every attempt failed with a connection error, a timeout, or HTTP
            429, 502, 503 or 504. It is a `ValueError`, and `__cause__` is the exception from
            `requests` for the last attempt.
        SpoolError: No endpoint is configured and the event log cannot be written.
        ConfigurationError: The environment or the config file contains an invalid setting.
    """
    settings = current_settings()
    try:
        event = ModerationEvent.create(
            event_type,
            timestamp,
            title,
            message,
            deployment_id if deployment_id is not None else settings.deployment_id,
            org_id if org_id is not None else settings.org_id,
            guard_name,
            metric_name,
            clock=_clock.wall_time,
        )
    except ValueError as error:
        _raise_without_secrets(error, settings)
    if not settings.enabled and not _dispatch.has_sink():
        return
    prepared = prepare_event(event, settings)
    if prepared is None or _dispatch.capture_if_active(prepared):
        return
    if not settings.enabled:
        return
    _deliver(prepared, settings)


def _raise_without_secrets(error: ValueError, settings: Settings) -> NoReturn:
    """Re-raise a validation error, redacted when the value it shows contains a secret."""
    text = str(error)
    redacted = redact_text(
        text,
        token=settings.api_token.strip() if settings.api_token else None,
        patterns=settings.redact_patterns,
        builtin=settings.redact_secrets,
    )
    if redacted == text:
        raise error
    raise ValueError(redacted) from None


class MLOpsEvent:
    """A drop-in replacement for `datarobot.mlops.events.MLOpsEvent` for moderation events.

    Replace `from datarobot.mlops.events import MLOpsEvent` with
    `from mlops_guard_events import MLOpsEvent`; calls to `report_moderation_event` keep
    working, configured through `configure()` or the DataRobot environment variables.
    """

    @classmethod
    def report_moderation_event(
        cls,
        event_type: ModerationEventType | str,
        timestamp: datetime | str | None = None,
        title: str | None = None,
        message: str | None = None,
        deployment_id: str | None = None,
        org_id: str | None = None,
        guard_name: str | None = None,
        metric_name: str | None = None,
    ) -> None:
        """Report one moderation event, as `mlops_guard_events.report_moderation_event` does.

        Args:
            event_type: One of the five moderation event types, as a `ModerationEventType` or
                its wire string.
            timestamp: When it happened: a datetime, naive meaning UTC, or an RFC 3339 string.
                None means now.
            title: A one-line summary, at most 512 characters.
            message: The details, at most 16384 characters.
            deployment_id: The deployment the event belongs to; None means the configured one.
            org_id: The organization the event belongs to; None means the configured one.
            guard_name: The guard the event is about, at most 512 characters.
            metric_name: The custom metric the event is about, at most 512 characters.

        Raises:
            ValueError: An argument is invalid; raised before any request.
            EventRejectedError: The server rejected the event for good, such as with 401 or 422.
            EventRetryableError: Every attempt failed with a connection error, a timeout, or
                HTTP 429, 502, 503 or 504.
            SpoolError: No endpoint is configured and the event log cannot be written.
            ConfigurationError: The environment or the config file contains an invalid setting.
        """
        report_moderation_event(
            event_type,
            timestamp,
            title,
            message,
            deployment_id,
            org_id,
            guard_name,
            metric_name,
        )


def _deliver(event: ModerationEvent, settings: Settings) -> None:
    body = event.to_wire()
    event_log_path = settings.event_log_path
    if settings.uses_event_log and event_log_path is not None:
        EventLog(event_log_path).append(body)
        _stats.count("logged")
        return

    try:
        _transport_for(settings).send(body)
    except EventRejectedError:
        _stats.count("rejected")
        raise
    _stats.count("delivered")
    logger.debug("reported moderation event %s", event.event_type.value)


# One transport for the settings in force, so that calls reuse connections. It is replaced
# when configure() installs new settings.
_transport_lock = threading.Lock()
_transport: tuple[Settings, HttpTransport] | None = None


def _transport_for(settings: Settings) -> HttpTransport:
    global _transport
    with _transport_lock:
        current = _transport
        if current is not None and current[0] is settings:
            return current[1]
        transport = HttpTransport(settings)
        _transport = (settings, transport)
    if current is not None:
        current[1].close()
    return transport


def close_transport() -> None:
    """Close the cached transport, so the next call opens new connections."""
    global _transport
    with _transport_lock:
        current, _transport = _transport, None
    if current is not None:
        current[1].close()


def _after_fork_in_child() -> None:
    global _transport_lock
    _transport_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
