"""The single entry from automatic reporting into delivery; nothing here raises."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable

from . import _clock, _stats
from ._config import current_settings
from ._event import ModerationEvent, ModerationEventType

__all__ = [
    "EventSink",
    "capture_if_active",
    "has_sink",
    "pop_sink",
    "push_sink",
    "report_automatic",
    "submit",
]

logger = logging.getLogger("mlops_guard_events")

EventSink = Callable[[ModerationEvent], None]

# Sinks installed by mlops_guard_events.testing; the newest one takes every event in the
# process, from any thread, in place of delivery.
_sinks: list[EventSink] = []
_sinks_lock = threading.Lock()


def push_sink(sink: EventSink) -> None:
    """Send every event to `sink` instead of delivering it, until `pop_sink(sink)`."""
    with _sinks_lock:
        _sinks.append(sink)


def pop_sink(sink: EventSink) -> None:
    """Remove `sink`; events go where they went before it was pushed."""
    with _sinks_lock:
        _sinks.remove(sink)


def has_sink() -> bool:
    """Tell whether a sink is installed, so that events are captured instead of delivered."""
    return bool(_sinks)


def capture_if_active(event: ModerationEvent) -> bool:
    """Give `event` to the newest sink, if one is installed. The explicit call uses this.

    Unlike `submit`, this lets an exception of the sink propagate, because the explicit call
    raises its errors.

    Returns:
        Whether a sink took the event. When it did, the caller must not deliver the event.
    """
    with _sinks_lock:
        sink = _sinks[-1] if _sinks else None
    if sink is None:
        return False
    sink(event)
    return True


def submit(event: ModerationEvent) -> bool:
    """Hand `event` to the background worker, or to the newest sink, without blocking.

    A captured event is scrubbed and passed to the `before_send` hook here; the worker does
    the same for the events it delivers, after storm control.

    Returns:
        Whether the event was taken; False when reporting is off, the `before_send` hook
        dropped the event, or the library failed, which is logged and counted as
        `reporting_errors`.
    """
    try:
        sinks = _sinks
        if sinks:
            from ._scrub import prepare_event  # imported on first use, to keep imports cheap

            _stats.count("submitted")
            prepared = prepare_event(event, current_settings())
            if prepared is None:
                return False
            sinks[-1](prepared)
            return True
        if not current_settings().enabled:
            return False
        _stats.count("submitted")
        from ._worker import submit as submit_to_worker

        return submit_to_worker(event)
    except Exception as error:
        _record_internal_error("submitting a moderation event", error)
        return False


def report_automatic(
    event_type: ModerationEventType,
    *,
    title: str | None,
    message: str | None,
    guard_name: object = None,
    metric_name: object = None,
    deployment_id: object = None,
    org_id: object = None,
) -> bool:
    """Build an event the forgiving way and submit it; never raises.

    Text that is too long is cut with a marker, characters JSON cannot carry are replaced, and a
    missing deployment or organization ID comes from the settings.

    Returns:
        Whether the event was taken, as `submit` returns it.
    """
    try:
        settings = current_settings()
        if not settings.enabled and not _sinks:
            return False
        event = ModerationEvent.create(
            event_type,
            title=title,
            message=message,
            guard_name=guard_name,  # type: ignore[arg-type]
            metric_name=metric_name,  # type: ignore[arg-type]
            deployment_id=deployment_id if deployment_id is not None else settings.deployment_id,  # type: ignore[arg-type]
            org_id=org_id if org_id is not None else settings.org_id,  # type: ignore[arg-type]
            clock=_clock.wall_time,
            sanitize=True,
        )
    except Exception as error:
        _record_internal_error("building a moderation event", error)
        return False
    return submit(event)


def _record_internal_error(action: str, error: Exception) -> None:
    _stats.count("reporting_errors")
    # Decorators report while the guarded code's exception is being handled, so `error` is
    # chained to it, and its text, which may quote a prompt, must not reach the log.
    error.__suppress_context__ = True
    # A broken logging handler must not reach the guarded code either.
    with contextlib.suppress(Exception):
        logger.error(
            "mlops_guard_events failed while %s; the guarded code is unaffected",
            action,
            exc_info=error,
        )


def _reset_lock_after_fork() -> None:
    global _sinks_lock
    # The parent's lock may have been held by a thread that does not exist in the child.
    _sinks_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)
