"""Exceptions raised by mlops_guard_events.

Only the explicit call (`report_moderation_event`), `configure()` and the command line raise these.
Automatic reporting from decorators and context managers never raises into the guarded code.

The hierarchy:

    MLOpsGuardEventsError
    ├── ConfigurationError (also ValueError)     invalid or inconsistent settings
    ├── EventDeliveryError (also ValueError)     the server did not accept an event
    │   ├── EventRejectedError                   a final answer: 4xx other than 429, or 500
    │   └── EventRetryableError                  a connection error, timeout, 429, 502, 503 or 504
    └── SpoolError                               the local spool cannot be read or written

Delivery errors subclass `ValueError` because the official client documents `ValueError` for an
event that cannot be created, so code written for it keeps catching what it caught before.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "EventDeliveryError",
    "EventRejectedError",
    "EventRetryableError",
    "MLOpsGuardEventsError",
    "SpoolError",
]


class MLOpsGuardEventsError(Exception):
    """Base class of every exception this library raises."""


class ConfigurationError(MLOpsGuardEventsError, ValueError):
    """A setting is invalid or settings contradict each other."""


class EventDeliveryError(MLOpsGuardEventsError, ValueError):
    """The event could not be delivered to the DataRobot API.

    Attributes:
        status_code: The HTTP status of the last response, or None when no response arrived.
        server_message: The message from the body of the last response, or None.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.server_message = server_message


class EventRejectedError(EventDeliveryError):
    """The server rejected the event for good, so sending it again cannot help."""


class EventRetryableError(EventDeliveryError):
    """The attempt failed in a way that a later attempt may not.

    Attributes:
        retry_after: Seconds the server asked the client to wait (from `Retry-After`), or None.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        server_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, server_message=server_message)
        self.retry_after = retry_after


class SpoolError(MLOpsGuardEventsError):
    """The local spool directory or one of its files cannot be used."""
