"""The public factories of decorators and context managers, and the checks of their options.

Each factory returns an `EventReporter` that works as a decorator, as a `with` block and as an
`async with` block. The factories differ only in the default event type and in which names
they take. Every option is checked here, when the object is created, so a mistake surfaces at
import or decoration time rather than inside guarded code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from ._event import ModerationEventType, parse_event_type
from ._scope import ALWAYS_PASSED_THROUGH, NO_FALLBACK, VALUE_REPR, EventReporter, NameSource

if TYPE_CHECKING:
    # Never is in typing only from Python 3.11, and typing_extensions comes with mypy.
    from typing_extensions import Never

__all__ = [
    "NO_FALLBACK",
    "EventReporter",
    "EventTypeLike",
    "ExceptionTypes",
    "NameSource",
    "config_events",
    "guard_events",
    "metric_creation_events",
    "metric_reporting_events",
    "moderation_events",
    "scoring_events",
]

F = TypeVar("F")

EventTypeLike = ModerationEventType | str
"""A `ModerationEventType` member or its wire string, such as "moderationModelRuntimeError"."""

ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]
"""An exception class, or a tuple of them, as an `except` clause takes."""

RUNTIME_ERROR: Final = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR
CONFIG_ERROR: Final = ModerationEventType.MODERATION_MODEL_CONFIG_ERROR
METRIC_CREATION_ERROR: Final = ModerationEventType.MODERATION_METRIC_CREATION_ERROR
METRIC_REPORTING_ERROR: Final = ModerationEventType.MODERATION_METRIC_REPORTING_ERROR
SCORING_ERROR: Final = ModerationEventType.MODERATION_MODEL_SCORING_ERROR

# Each factory has three overloads, so that the decorated callable's return type includes the
# fallback's type: no fallback (the type is unchanged), a fallback callable (its return type),
# and a fallback value (its type).


@overload
def guard_events(
    guard_name: NameSource,
    *,
    event_type: EventTypeLike = RUNTIME_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[Never]: ...


@overload
def guard_events(
    guard_name: NameSource,
    *,
    event_type: EventTypeLike = RUNTIME_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: Callable[[BaseException], F],
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[F]: ...


@overload
def guard_events(
    guard_name: NameSource,
    *,
    event_type: EventTypeLike = RUNTIME_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: F,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[F]: ...


def guard_events(
    guard_name: NameSource,
    *,
    event_type: EventTypeLike = RUNTIME_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: object = NO_FALLBACK,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[Any]:
    """Report a guard's failures, timeouts and blocked responses.

    For example `@guard_events("Toxicity", fallback=None)` reports a
    `moderationModelRuntimeError` titled "Guard 'Toxicity' failed" and returns None.
    Options not listed here work as in `moderation_events`.

    Args:
        guard_name: The guard's name, or a callable that receives the call's arguments (for a
            method, the instance first) and returns it.
        event_type: The event type to report (default `moderationModelRuntimeError`).

    Returns:
        The decorator and context manager.

    Raises:
        TypeError: An option has the wrong type.
        ValueError: An option has an invalid value.
    """
    _check_required_name("guard_name", guard_name, "guard_events")
    return _build(
        "guard_events",
        event_type=event_type,
        guard_name=guard_name,
        metric_name=None,
        exception_event_types=exception_event_types,
        exceptions=exceptions,
        ignored_exceptions=ignored_exceptions,
        blocked=blocked,
        fallback=fallback,
        timeout=timeout,
        deployment_id=deployment_id,
        org_id=org_id,
        title=title,
        message=message,
        include_arguments=include_arguments,
        include_result=include_result,
        enabled=enabled,
    )


@overload
def config_events(
    guard_name: NameSource | None = None,
    *,
    event_type: EventTypeLike = CONFIG_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[Never]: ...


@overload
def config_events(
    guard_name: NameSource | None = None,
    *,
    event_type: EventTypeLike = CONFIG_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: Callable[[BaseException], F],
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[F]: ...


@overload
def config_events(
    guard_name: NameSource | None = None,
    *,
    event_type: EventTypeLike = CONFIG_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: F,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[F]: ...


def config_events(
    guard_name: NameSource | None = None,
    *,
    event_type: EventTypeLike = CONFIG_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: object = NO_FALLBACK,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[Any]:
    """Report a guard's configuration errors, such as missing columns.

    Use it around the code that sets a guard up.
    Options not listed here work as in `moderation_events`.

    Args:
        guard_name: The guard's name, a callable that returns it, or None.
        event_type: The event type to report (default `moderationModelConfigError`).

    Returns:
        The decorator and context manager.

    Raises:
        TypeError: An option has the wrong type.
        ValueError: An option has an invalid value.
    """
    return _build(
        "config_events",
        event_type=event_type,
        guard_name=guard_name,
        metric_name=None,
        exception_event_types=exception_event_types,
        exceptions=exceptions,
        ignored_exceptions=ignored_exceptions,
        blocked=blocked,
        fallback=fallback,
        timeout=timeout,
        deployment_id=deployment_id,
        org_id=org_id,
        title=title,
        message=message,
        include_arguments=include_arguments,
        include_result=include_result,
        enabled=enabled,
    )


@overload
def metric_creation_events(
    metric_name: NameSource,
    *,
    event_type: EventTypeLike = METRIC_CREATION_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[Never]: ...


@overload
def metric_creation_events(
    metric_name: NameSource,
    *,
    event_type: EventTypeLike = METRIC_CREATION_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: Callable[[BaseException], F],
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[F]: ...


@overload
def metric_creation_events(
    metric_name: NameSource,
    *,
    event_type: EventTypeLike = METRIC_CREATION_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: F,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[F]: ...


def metric_creation_events(
    metric_name: NameSource,
    *,
    event_type: EventTypeLike = METRIC_CREATION_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: object = NO_FALLBACK,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[Any]:
    """Report the failure to create a custom metric.

    Use it around the code that creates one custom metric.
    Options not listed here work as in `moderation_events`.

    Args:
        metric_name: The custom metric's name, or a callable that receives the call's
            arguments and returns it.
        event_type: The event type to report (default `moderationMetricCreationError`).

    Returns:
        The decorator and context manager.

    Raises:
        TypeError: An option has the wrong type.
        ValueError: An option has an invalid value.
    """
    _check_required_name("metric_name", metric_name, "metric_creation_events")
    return _build(
        "metric_creation_events",
        event_type=event_type,
        guard_name=None,
        metric_name=metric_name,
        exception_event_types=exception_event_types,
        exceptions=exceptions,
        ignored_exceptions=ignored_exceptions,
        blocked=blocked,
        fallback=fallback,
        timeout=timeout,
        deployment_id=deployment_id,
        org_id=org_id,
        title=title,
        message=message,
        include_arguments=include_arguments,
        include_result=include_result,
        enabled=enabled,
    )


@overload
def metric_reporting_events(
    metric_name: NameSource | None = None,
    *,
    event_type: EventTypeLike = METRIC_REPORTING_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[Never]: ...


@overload
def metric_reporting_events(
    metric_name: NameSource | None = None,
    *,
    event_type: EventTypeLike = METRIC_REPORTING_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: Callable[[BaseException], F],
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[F]: ...


@overload
def metric_reporting_events(
    metric_name: NameSource | None = None,
    *,
    event_type: EventTypeLike = METRIC_REPORTING_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: F,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[F]: ...


def metric_reporting_events(
    metric_name: NameSource | None = None,
    *,
    event_type: EventTypeLike = METRIC_REPORTING_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: object = NO_FALLBACK,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[Any]:
    """Report the failure to upload custom metric values.

    Use it around the upload, usually with a fallback, because a lost upload should not
    fail the model.
    Options not listed here work as in `moderation_events`.

    Args:
        metric_name: The custom metric's name, a callable that returns it, or None when
            the upload covers several metrics.
        event_type: The event type to report (default `moderationMetricReportingError`).

    Returns:
        The decorator and context manager.

    Raises:
        TypeError: An option has the wrong type.
        ValueError: An option has an invalid value.
    """
    return _build(
        "metric_reporting_events",
        event_type=event_type,
        guard_name=None,
        metric_name=metric_name,
        exception_event_types=exception_event_types,
        exceptions=exceptions,
        ignored_exceptions=ignored_exceptions,
        blocked=blocked,
        fallback=fallback,
        timeout=timeout,
        deployment_id=deployment_id,
        org_id=org_id,
        title=title,
        message=message,
        include_arguments=include_arguments,
        include_result=include_result,
        enabled=enabled,
    )


@overload
def scoring_events(
    *,
    event_type: EventTypeLike = SCORING_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[Never]: ...


@overload
def scoring_events(
    *,
    event_type: EventTypeLike = SCORING_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: Callable[[BaseException], F],
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[F]: ...


@overload
def scoring_events(
    *,
    event_type: EventTypeLike = SCORING_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: F,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[F]: ...


def scoring_events(
    *,
    event_type: EventTypeLike = SCORING_ERROR,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: object = NO_FALLBACK,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[Any]:
    """Report the failure of the score function that the guards surround.

    The exception still propagates unless a fallback is set.
    Options not listed here work as in `moderation_events`.

    Args:
        event_type: The event type to report (default `moderationModelScoringError`).

    Returns:
        The decorator and context manager.

    Raises:
        TypeError: An option has the wrong type.
        ValueError: An option has an invalid value.
    """
    return _build(
        "scoring_events",
        event_type=event_type,
        guard_name=None,
        metric_name=None,
        exception_event_types=exception_event_types,
        exceptions=exceptions,
        ignored_exceptions=ignored_exceptions,
        blocked=blocked,
        fallback=fallback,
        timeout=timeout,
        deployment_id=deployment_id,
        org_id=org_id,
        title=title,
        message=message,
        include_arguments=include_arguments,
        include_result=include_result,
        enabled=enabled,
    )


@overload
def moderation_events(
    event_type: EventTypeLike,
    *,
    guard_name: NameSource | None = None,
    metric_name: NameSource | None = None,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[Never]: ...


@overload
def moderation_events(
    event_type: EventTypeLike,
    *,
    guard_name: NameSource | None = None,
    metric_name: NameSource | None = None,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: Callable[[BaseException], F],
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[F]: ...


@overload
def moderation_events(
    event_type: EventTypeLike,
    *,
    guard_name: NameSource | None = None,
    metric_name: NameSource | None = None,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: F,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[F]: ...


def moderation_events(
    event_type: EventTypeLike,
    *,
    guard_name: NameSource | None = None,
    metric_name: NameSource | None = None,
    exception_event_types: Mapping[type[BaseException], EventTypeLike] | None = None,
    exceptions: ExceptionTypes = Exception,
    ignored_exceptions: ExceptionTypes = (),
    blocked: Callable[[Any], object] | None = None,
    fallback: object = NO_FALLBACK,
    timeout: float | timedelta | None = None,
    deployment_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    message: str | None = None,
    include_arguments: bool = False,
    include_result: bool = False,
    enabled: bool | Callable[[], object] = True,
) -> EventReporter[Any]:
    """Report moderation events of `event_type` when the guarded code fails, times out or blocks.

    The returned object decorates functions, methods, classmethods, staticmethods, callable
    objects, coroutine functions, generator functions and async generator functions, and
    guards `with` and `async with` blocks. The guarded code returns and raises exactly what it
    would without it, unless `fallback` is set.

    Args:
        event_type: The event type to report, as a `ModerationEventType` member or its wire
            string.
        guard_name: The guard's name, or a callable that receives the call's arguments (for a
            method, the instance or class first) and returns it. In a `with` block the callable
            receives no arguments.
        metric_name: The custom metric's name, or a callable like the one for `guard_name`.
        exception_event_types: Event types for particular exception classes, such as
            `{KeyError: "moderationModelConfigError"}`. The most specific class in the
            exception's method resolution order wins; other exceptions get `event_type`.
        exceptions: The exception classes to report (default `Exception`). `KeyboardInterrupt`,
            `SystemExit`, `GeneratorExit` and `asyncio.CancelledError` are never reported and
            always propagate untouched.
        ignored_exceptions: Exception classes that propagate unreported even though
            `exceptions` covers them.
        blocked: A callable that receives the return value (for a generator, each item) and
            returns a false value when it is acceptable, or True or a string that explains
            why it is blocked. A blocked outcome is reported with `event_type`, and the value
            is still returned unchanged. In a `with` block, `scope.check(value)` applies it.
        fallback: What to return instead of raising a reported exception or a timeout: a
            value, or a callable that receives the exception and returns the value. Without
            it the exception propagates; `fallback=None` returns None. A generator ends with
            the fallback as its return value, an async generator just ends, and a `with`
            block suppresses the exception and stores the value in `scope.fallback`.
        timeout: Seconds, as a number or a `timedelta`, that a coroutine function or an
            `async with` block may take. On expiry the guarded code is cancelled, a timeout
            event is reported, and `TimeoutError` is raised or the fallback returned.
        deployment_id: The DataRobot deployment of the events, instead of the configured one.
        org_id: The DataRobot organization of the events, instead of the configured one.
        title: A fixed title for every event, in place of the generated one such as
            "Guard 'Toxicity' failed".
        message: A fixed message for every event, in place of the exception's type and text
            or the reason of a block.
        include_arguments: Add the call's argument values to the message. They may contain
            prompts and responses, so they are left out unless this is True.
        include_result: Add the blocked value to the message of a blocked outcome, for the
            same reason left out unless this is True.
        enabled: False returns the decorated callable unwrapped and makes `with` blocks do
            nothing, fallback and timeout included. A callable without arguments is called
            before each call or block, and a false result has the same effect for that call.

    Returns:
        The decorator and context manager.

    Raises:
        TypeError: An option has the wrong type.
        ValueError: An option has an invalid value, such as an unknown event type or a
            timeout that is not more than zero.
    """
    return _build(
        "moderation_events",
        event_type=event_type,
        guard_name=guard_name,
        metric_name=metric_name,
        exception_event_types=exception_event_types,
        exceptions=exceptions,
        ignored_exceptions=ignored_exceptions,
        blocked=blocked,
        fallback=fallback,
        timeout=timeout,
        deployment_id=deployment_id,
        org_id=org_id,
        title=title,
        message=message,
        include_arguments=include_arguments,
        include_result=include_result,
        enabled=enabled,
    )


def _build(
    factory: str,
    *,
    event_type: object,
    guard_name: object,
    metric_name: object,
    exception_event_types: object,
    exceptions: object,
    ignored_exceptions: object,
    blocked: object,
    fallback: object,
    timeout: object,
    deployment_id: object,
    org_id: object,
    title: object,
    message: object,
    include_arguments: object,
    include_result: object,
    enabled: object,
) -> EventReporter[Any]:
    return EventReporter(
        factory,
        event_type=parse_event_type(event_type),
        guard_name=_check_name("guard_name", guard_name, factory),
        metric_name=_check_name("metric_name", metric_name, factory),
        exception_event_types=_check_exception_event_types(exception_event_types, factory),
        exceptions=_check_exception_classes("exceptions", exceptions, factory),
        ignored_exceptions=_check_exception_classes(
            "ignored_exceptions", ignored_exceptions, factory
        ),
        blocked=_check_optional_callable("blocked", blocked, factory),
        fallback=fallback,
        timeout=_check_timeout(timeout, factory),
        deployment_id=_check_identifier("deployment_id", deployment_id, factory),
        org_id=_check_identifier("org_id", org_id, factory),
        title=_check_text("title", title, factory),
        message=_check_text("message", message, factory),
        include_arguments=_check_flag("include_arguments", include_arguments, factory),
        include_result=_check_flag("include_result", include_result, factory),
        enabled=_check_enabled(enabled, factory),
    )


# Checks of the options. Each error names the option, the value and what to pass instead.


def _invalid(option: str, value: object, factory: str, expected: str) -> str:
    return f"invalid {option} {VALUE_REPR.repr(value)} for {factory}(): {expected}"


def _check_required_name(option: str, value: object, factory: str) -> None:
    if value is None:
        raise TypeError(
            f"missing {option} for {factory}(): give the name as a string, or a callable that"
            " returns it, such as lambda self, *args, **kwargs: self.name"
        )


def _check_name(option: str, value: object, factory: str) -> NameSource | None:
    if value is None or callable(value):
        return value
    if isinstance(value, str) and value.strip():
        return value
    expected = (
        "expected a non-empty string, or a callable that receives the call's arguments"
        " (for a method, the instance first) and returns the name"
    )
    error = ValueError if isinstance(value, str) else TypeError
    raise error(_invalid(option, value, factory, expected))


def _check_exception_classes(
    option: str, value: object, factory: str
) -> tuple[type[BaseException], ...]:
    members = tuple(value) if isinstance(value, (tuple, list, set, frozenset)) else (value,)
    for member in members:
        if not (isinstance(member, type) and issubclass(member, BaseException)):
            expected = (
                "expected an exception class or a tuple of them, such as (ValueError, KeyError)"
            )
            raise TypeError(_invalid(option, value, factory, expected))
    if option != "exceptions":
        return members
    if not members:
        expected = "with no exception class nothing is reported; pass enabled=False for that"
        raise ValueError(_invalid(option, value, factory, expected))
    for member in members:
        if issubclass(member, ALWAYS_PASSED_THROUGH):
            expected = (
                f"{member.__name__} is never reported, because KeyboardInterrupt, SystemExit,"
                " GeneratorExit and asyncio.CancelledError always pass through; remove it"
            )
            raise ValueError(_invalid(option, value, factory, expected))
    return members


def _check_exception_event_types(
    value: object, factory: str
) -> dict[type[BaseException], ModerationEventType]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        expected = (
            "expected a mapping from exception classes to event types, such as"
            " {KeyError: 'moderationModelConfigError'}"
        )
        raise TypeError(_invalid("exception_event_types", value, factory, expected))
    mapping: dict[type[BaseException], ModerationEventType] = {}
    for key, event_type in value.items():
        if not (isinstance(key, type) and issubclass(key, BaseException)):
            expected = "expected exception classes as keys, such as KeyError"
            raise TypeError(_invalid("exception_event_types key", key, factory, expected))
        parameter = f"exception_event_types[{key.__name__}]"
        mapping[key] = parse_event_type(event_type, parameter=parameter)
    return mapping


def _check_optional_callable(
    option: str, value: object, factory: str
) -> Callable[[Any], object] | None:
    if value is None or callable(value):
        return value
    raise TypeError(_invalid(option, value, factory, "expected a callable or None"))


def _check_timeout(value: object, factory: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        expected = "expected a number of seconds or a timedelta, such as timeout=2.5"
        raise TypeError(_invalid("timeout", value, factory, expected))
    if not math.isfinite(seconds) or seconds <= 0:
        expected = (
            "expected a finite number of seconds, more than zero; leave it unset for no limit"
        )
        raise ValueError(_invalid("timeout", value, factory, expected))
    return seconds


def _check_identifier(option: str, value: object, factory: str) -> str | None:
    if value is None:
        return None
    expected = "expected a DataRobot ID, or None for the configured one"
    if not isinstance(value, str):
        raise TypeError(_invalid(option, value, factory, expected))
    if not value.strip() or value in ("None", "null"):
        raise ValueError(_invalid(option, value, factory, expected))
    return value


def _check_text(option: str, value: object, factory: str) -> str | None:
    if value is None:
        return None
    expected = "expected a non-empty string, or None for the default text"
    if not isinstance(value, str):
        raise TypeError(_invalid(option, value, factory, expected))
    if not value.strip():
        raise ValueError(_invalid(option, value, factory, expected))
    return value


def _check_flag(option: str, value: object, factory: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(_invalid(option, value, factory, "expected True or False"))
    return value


def _check_enabled(value: object, factory: str) -> bool | Callable[[], object]:
    if isinstance(value, bool) or callable(value):
        return value
    expected = "expected True, False, or a callable without arguments that returns either"
    raise TypeError(_invalid("enabled", value, factory, expected))
