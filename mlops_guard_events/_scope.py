"""The reporting object the factories return, and the scope of each `with` block it guards.

`EventReporter` is at once a decorator and a context manager. It stores the options checked
when it was created, and nothing about a call once the call has returned, so one object can
serve many threads and tasks. Each entry into `with reporter as scope:` gets its own
`EventScope`, kept on a stack in a context variable until the block exits, so the same object
can also be reused and nested in itself.

Nothing here raises into the guarded code, except the user's own fallback callable and the
`TimeoutError` that replaces an expired `async with` block.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import logging
import os
import reprlib
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, Final, Generic, ParamSpec, TypeVar, overload

from . import _stats
from ._dispatch import report_automatic
from ._event import ModerationEventType
from ._wrappers import Deadline, new_timeout_error, wrap

__all__ = [
    "ALWAYS_PASSED_THROUGH",
    "NO_FALLBACK",
    "VALUE_REPR",
    "EventReporter",
    "EventScope",
    "NameSource",
]

logger = logging.getLogger(__name__)

F = TypeVar("F")
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
V = TypeVar("V")
Y = TypeVar("Y")
S = TypeVar("S")

NameSource = str | Callable[..., object]
"""A guard or metric name, or a callable that receives the call's arguments and returns it."""

# Signals and control flow, never a guard's failure: these always propagate unreported.
ALWAYS_PASSED_THROUGH: Final = (
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    asyncio.CancelledError,
)


class _Sentinel(enum.Enum):
    NO_FALLBACK = "NO_FALLBACK"
    NO_RESULT = "NO_RESULT"

    def __repr__(self) -> str:
        return self.value


NO_FALLBACK: Final = _Sentinel.NO_FALLBACK
"""The default of `fallback`: the exception propagates. It differs from `fallback=None`."""

_NO_RESULT: Final = _Sentinel.NO_RESULT

LOG_INTERVAL: Final = 60.0
"""Seconds between two log records about the same kind of failure inside reporting."""

_failure_log = _stats.LogThrottle(LOG_INTERVAL)

RUNTIME_ERROR: Final = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR
CONFIG_ERROR: Final = ModerationEventType.MODERATION_MODEL_CONFIG_ERROR
METRIC_CREATION_ERROR: Final = ModerationEventType.MODERATION_METRIC_CREATION_ERROR
METRIC_REPORTING_ERROR: Final = ModerationEventType.MODERATION_METRIC_REPORTING_ERROR


class EventReporter(Generic[F]):
    """A decorator and context manager that reports moderation events of the guarded code.

    Create it with a factory such as `guard_events`, which checks the options. It keeps
    nothing about a call once the call has returned, so the same object can decorate many
    callables and guard many `with` and `async with` blocks, from any thread or task at once.

    `F` is the type of the fallback value; it is `Never` when no fallback is set.
    """

    __slots__ = (
        "_blocked",
        "_caught",
        "_deployment_id",
        "_enabled",
        "_event_type",
        "_exception_event_types",
        "_factory",
        "_fallback",
        "_fallback_is_callable",
        "_guard_name",
        "_include_arguments",
        "_include_result",
        "_message",
        "_metric_name",
        "_open_scopes",
        "_org_id",
        "_passed_through",
        "_timeout",
        "_title",
    )

    def __init__(
        self,
        factory: str,
        *,
        event_type: ModerationEventType,
        guard_name: NameSource | None,
        metric_name: NameSource | None,
        exception_event_types: dict[type[BaseException], ModerationEventType],
        exceptions: tuple[type[BaseException], ...],
        ignored_exceptions: tuple[type[BaseException], ...],
        blocked: Callable[[Any], object] | None,
        fallback: object,
        timeout: float | None,
        deployment_id: str | None,
        org_id: str | None,
        title: str | None,
        message: str | None,
        include_arguments: bool,
        include_result: bool,
        enabled: bool | Callable[[], object],
    ) -> None:
        """Store options that the factory `factory` has already checked.

        The arguments are those of `moderation_events`, in their checked form: `timeout` in
        seconds, and exception classes as tuples.
        """
        self._factory = factory
        self._event_type = event_type
        self._guard_name = guard_name
        self._metric_name = metric_name
        self._exception_event_types = exception_event_types
        self._caught = exceptions
        self._passed_through = ALWAYS_PASSED_THROUGH + ignored_exceptions
        self._blocked = blocked
        self._fallback = fallback
        self._fallback_is_callable = callable(fallback)
        self._timeout = timeout
        self._deployment_id = deployment_id
        self._org_id = org_id
        self._title = title
        self._message = message
        self._include_arguments = include_arguments
        self._include_result = include_result
        self._enabled = enabled
        # Scopes of this reporter's blocks not yet exited, in any context. Only a block that
        # exits in another context than it entered needs this.
        self._open_scopes: set[EventScope[F]] = set()

    def __repr__(self) -> str:
        fields = [f"event_type={self._event_type.value}"]
        for option, source in (
            ("guard_name", self._guard_name),
            ("metric_name", self._metric_name),
        ):
            if source is not None:
                fields.append(f"{option}={VALUE_REPR.repr(source)}")
        if self._timeout is not None:
            fields.append(f"timeout={self._timeout:g}")
        if self._fallback is not NO_FALLBACK:
            fields.append(f"fallback={VALUE_REPR.repr(self._fallback)}")
        return f"<{self._factory} {' '.join(fields)}>"

    @property
    def event_type(self) -> ModerationEventType:
        """The event type reported, unless `exception_event_types` maps the exception."""
        return self._event_type

    @property
    def guard_name(self) -> NameSource | None:
        """The guard name, or the callable that returns it."""
        return self._guard_name

    @property
    def metric_name(self) -> NameSource | None:
        """The custom metric name, or the callable that returns it."""
        return self._metric_name

    @property
    def timeout(self) -> float | None:
        """Seconds a coroutine function or an `async with` block may take, or None."""
        return self._timeout

    # The decorator.

    @overload
    def __call__(
        self, wrapped: classmethod[T, P, Coroutine[Any, Any, R]], /
    ) -> classmethod[T, P, Coroutine[Any, Any, R | F]]: ...

    @overload
    def __call__(self, wrapped: classmethod[T, P, R], /) -> classmethod[T, P, R | F]: ...

    @overload
    def __call__(
        self, wrapped: staticmethod[P, Coroutine[Any, Any, R]], /
    ) -> staticmethod[P, Coroutine[Any, Any, R | F]]: ...

    # A staticmethod object is also callable, so it matches the overloads below as well. The
    # first matching overload wins, and that is the intended one.
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, wrapped: staticmethod[P, R], /
    ) -> staticmethod[P, R | F]: ...

    @overload
    def __call__(
        self, wrapped: Callable[P, Coroutine[Any, Any, R]], /
    ) -> Callable[P, Coroutine[Any, Any, R | F]]: ...

    @overload
    def __call__(
        self, wrapped: Callable[P, Generator[Y, S, R]], /
    ) -> Callable[P, Generator[Y, S, R | F]]: ...

    @overload
    def __call__(
        self, wrapped: Callable[P, AsyncGenerator[Y, S]], /
    ) -> Callable[P, AsyncGenerator[Y, S]]: ...

    @overload
    def __call__(self, wrapped: Callable[P, R], /) -> Callable[P, R | F]: ...

    def __call__(self, *wrapped: Any, **unexpected: Any) -> Any:
        """Decorate a function, method, classmethod, staticmethod or callable object.

        Coroutine functions, generator functions and async generator functions keep their
        kind, and their failures are reported when they are awaited or iterated.

        Args:
            wrapped: The callable to decorate, exactly one. The parameter collects every
                positional argument only so that a wrong call gets a clear `TypeError`.
            unexpected: Always empty in a correct call; keyword arguments here mean the
                reporter was called like the guarded function, and raise `TypeError`.

        Returns:
            A transparent proxy of `wrapped`, or `wrapped` itself when `enabled=False`.

        Raises:
            TypeError: Not exactly one callable was given, keyword arguments were given, or
                `timeout` is set and `wrapped` is not a coroutine function.
        """
        target = wrapped[0] if len(wrapped) == 1 else None
        decoratable = callable(target) or isinstance(target, (classmethod, staticmethod))
        if unexpected or not decoratable:
            raise TypeError(
                f"{self._factory}() returns a decorator that takes one function, method or"
                f" callable object, but it got {_describe_call(wrapped, unexpected)}; write"
                f" @{self._factory}(...) with its arguments, not @{self._factory}"
            )
        if self._enabled is False:
            return target
        return wrap(self, target)

    # The context manager.

    def __enter__(self) -> EventScope[F]:
        return _open_scope(self, asynchronous=False)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return _close_scope(self, exc_value)

    async def __aenter__(self) -> EventScope[F]:
        return _open_scope(self, asynchronous=True)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return _close_scope(self, exc_value)

    # Hooks for the wrappers and scopes. Only `fallback_for` can raise, because it runs the
    # user's fallback callable.

    @property
    def caught(self) -> tuple[type[BaseException], ...]:
        """The exception classes that are reported, unless `passed_through` matches."""
        return self._caught

    @property
    def passed_through(self) -> tuple[type[BaseException], ...]:
        """The exception classes that always propagate unreported."""
        return self._passed_through

    @property
    def checks_results(self) -> bool:
        """Whether a `blocked` callable checks each result."""
        return self._blocked is not None

    @property
    def has_enabled_callable(self) -> bool:
        """Whether `enabled` is a callable, called before each call."""
        return not isinstance(self._enabled, bool)

    def is_enabled(self) -> bool:
        """Return the `enabled` option, calling it if it is a callable."""
        enabled = self._enabled
        if isinstance(enabled, bool):
            return enabled
        try:
            return bool(enabled())
        except Exception:
            self.note_failure("enabled", "the enabled callable raised, so this call is reported")
            return True

    def reports(self, error: BaseException) -> bool:
        """Tell whether `error` is reported, rather than passed through."""
        return isinstance(error, self._caught) and not isinstance(error, self._passed_through)

    def fallback_for(self, error: BaseException) -> Any:
        """Return the fallback value for `error`. Call it only when a fallback is set.

        Raises:
            Exception: Whatever the user's fallback callable raises, as a hand-written
                `except` clause would let it propagate.
        """
        if self._fallback_is_callable:
            return self._fallback(error)  # type: ignore[operator]
        return self._fallback

    def report_failure(
        self, error: BaseException, instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> bool:
        """Report that the guarded code raised `error`.

        Args:
            error: The exception.
            instance: The instance or class a method was called on, or None.
            args: The call's positional arguments, without `instance`.
            kwargs: The call's keyword arguments.

        Returns:
            Whether a fallback is set, in which case the caller uses it instead of raising.
        """
        try:
            guard_name, metric_name = self._names(instance, args, kwargs)
            event_type = self._event_type_for(error)
            title = self._title or f"{_subject(event_type, guard_name, metric_name)} failed"
            message = self._message or self._with_details(
                _describe_exception(error), args, kwargs, outcome_replaced=True
            )
            self._submit(event_type, title, message, guard_name, metric_name)
        except Exception:
            self.note_failure("event", "building a moderation event failed", level=logging.ERROR)
        return self._fallback is not NO_FALLBACK

    def report_timeout(
        self,
        error: TimeoutError,
        instance: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> bool:
        """Report that the guarded code ran out of time.

        `error` is the `TimeoutError` to raise. The other arguments and the return value are
        those of `report_failure`.
        """
        try:
            seconds = f"{self._timeout:g} s"
            guard_name, metric_name = self._names(instance, args, kwargs)
            event_type = self._event_type_for(error)
            subject = _subject(event_type, guard_name, metric_name)
            title = self._title or f"{subject} timed out after {seconds}"
            message = self._message or self._with_details(
                f"TimeoutError: no result within {seconds}, so the call was cancelled.",
                args,
                kwargs,
                outcome_replaced=True,
            )
            self._submit(event_type, title, message, guard_name, metric_name)
        except Exception:
            self.note_failure("event", "building a moderation event failed", level=logging.ERROR)
        return self._fallback is not NO_FALLBACK

    def report_block(
        self,
        reason: object,
        instance: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        result: object = _NO_RESULT,
    ) -> None:
        """Report a blocked outcome with the reporter's event type.

        Args:
            reason: Why it was blocked, or None.
            instance: As for `report_failure`.
            args: As for `report_failure`.
            kwargs: As for `report_failure`.
            result: The blocked value, shown only with `include_result=True`.
        """
        try:
            guard_name, metric_name = self._names(instance, args, kwargs)
            title = self._title or f"{_actor(guard_name, metric_name)} blocked the response"
            if self._message:
                message = self._message
            else:
                text = _safe_str(reason) if reason else "No reason was given."
                if self._include_result and result is not _NO_RESULT:
                    text += f"\nBlocked value: {VALUE_REPR.repr(result)}"
                message = self._with_details(text, args, kwargs, outcome_replaced=False)
            self._submit(self._event_type, title, message, guard_name, metric_name)
        except Exception:
            self.note_failure("event", "building a moderation event failed", level=logging.ERROR)

    def check_result(
        self, result: object, instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Ask the `blocked` callable about `result`, and report a blocked outcome.

        The other arguments are those of `report_failure`.
        """
        blocked = self._blocked
        if blocked is None:
            return
        try:
            verdict = blocked(result)
            if not verdict:
                return
        except Exception:
            self.note_failure("blocked", "the blocked callable raised, so the result is unchecked")
            return
        reason = verdict if isinstance(verdict, str) else "The blocked check flagged the result."
        self.report_block(reason, instance, args, kwargs, result=result)

    def note_failure(
        self,
        kind: str,
        description: str,
        *,
        level: int = logging.WARNING,
        with_traceback: bool = True,
    ) -> None:
        """Count a failure inside reporting, and log it at most once a minute for each kind.

        Call it from the `except` clause that caught the failure, so that the log record
        carries its traceback.

        Args:
            kind: What failed, such as "blocked". The rate limit applies to each kind.
            description: What failed and what happened instead, without user data.
            level: The logging level.
            with_traceback: Whether to log the traceback of the exception being handled.
        """
        _stats.count("reporting_errors")
        if not _failure_log.allow(kind):
            return
        failure = sys.exc_info()[1]
        if with_traceback and failure is not None:
            # The failure may have happened while the guarded code's exception was handled,
            # and that exception's text, which may quote a prompt, must not reach the log.
            failure.__suppress_context__ = True
        # A broken logging handler must not reach the guarded code either.
        with contextlib.suppress(Exception):
            logger.log(
                level,
                "%r: %s; the guarded code is unaffected (repeats are counted in"
                " stats()['reporting_errors'] and logged at most once a minute)",
                self,
                description,
                exc_info=with_traceback,
            )

    def _names(
        self, instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[object, object]:
        return (
            self._resolve_name("guard_name", self._guard_name, instance, args, kwargs),
            self._resolve_name("metric_name", self._metric_name, instance, args, kwargs),
        )

    def _resolve_name(
        self,
        option: str,
        source: NameSource | None,
        instance: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> object:
        if source is None or isinstance(source, str):
            return source
        try:
            if instance is None:
                return source(*args, **kwargs)
            return source(instance, *args, **kwargs)
        except Exception:
            self.note_failure(option, f"the {option} callable raised, so the event has no {option}")
            return None

    def _event_type_for(self, error: BaseException) -> ModerationEventType:
        mapping = self._exception_event_types
        if mapping:
            for cls in type(error).__mro__:
                event_type = mapping.get(cls)
                if event_type is not None:
                    return event_type
        return self._event_type

    def _with_details(
        self, text: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, outcome_replaced: bool
    ) -> str:
        if outcome_replaced and self._fallback is not NO_FALLBACK:
            text += "\nThe fallback value was used instead of raising."
        if self._include_arguments and (args or kwargs):
            text += f"\nArguments: {_describe_arguments(args, kwargs)}"
        return text

    def _submit(
        self,
        event_type: ModerationEventType,
        title: str,
        message: str,
        guard_name: object,
        metric_name: object,
    ) -> None:
        report_automatic(
            event_type,
            title=title,
            message=message,
            guard_name=guard_name,
            metric_name=metric_name,
            deployment_id=self._deployment_id,
            org_id=self._org_id,
        )


class EventScope(Generic[F]):
    """One entry into a `with` block of an `EventReporter`: the target of `as`.

    Attributes:
        exception: The exception the block raised and this scope reported (a `TimeoutError`
            when the timeout expired), or None.
        suppressed: Whether `exception` was suppressed because the reporter has a fallback.
        fallback: The fallback value once `exception` was suppressed, else None.
    """

    __slots__ = ("_deadline", "_enabled", "_reporter", "exception", "fallback", "suppressed")

    def __init__(self, reporter: EventReporter[F], *, enabled: bool) -> None:
        self._reporter = reporter
        self._enabled = enabled
        self._deadline: Deadline | None = None
        self.exception: BaseException | None = None
        self.suppressed = False
        self.fallback: F | None = None

    def __repr__(self) -> str:
        return (
            f"<EventScope of {self._reporter!r}: exception={self.exception!r},"
            f" suppressed={self.suppressed}>"
        )

    def block(self, reason: str | None = None) -> None:
        """Report that the code in the block blocked the response.

        The event is submitted at once. This never raises, and does nothing while the
        reporter is disabled.

        Args:
            reason: Why the response was blocked; it becomes the event's message.
        """
        if self._enabled:
            self._reporter.report_block(reason, None, (), {})

    def check(self, value: V) -> V:
        """Report a blocked outcome if the `blocked` option flags `value`, and return `value`.

        Without a `blocked` option, or while the reporter is disabled, this only returns
        `value`.

        Args:
            value: A result produced inside the block, such as a model's response.

        Returns:
            `value`, unchanged.
        """
        if self._enabled:
            self._reporter.check_result(value, None, (), {})
        return value


# Scopes of the blocks entered and not yet exited in the current context, innermost last.
_scopes_in_context: contextvars.ContextVar[tuple[EventScope[Any], ...]] = contextvars.ContextVar(
    "mlops_guard_events_open_scopes", default=()
)
_other_context_lock = threading.Lock()


def _reset_lock_after_fork() -> None:
    # A fork while another thread held this lock would leave it held in the child.
    global _other_context_lock
    _other_context_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


def _open_scope(reporter: EventReporter[F], *, asynchronous: bool) -> EventScope[F]:
    timeout = reporter.timeout
    if timeout is not None and not asynchronous:
        raise TypeError(
            f"{reporter!r} has timeout={timeout:g}, which applies only to coroutine functions"
            " and `async with`; use `async with`, or create another object without timeout"
            " for this plain `with` block"
        )
    scope = EventScope(reporter, enabled=reporter.is_enabled())
    if scope._enabled and timeout is not None:
        scope._deadline = Deadline.start(timeout)
        if scope._deadline is None:
            reporter.note_failure(
                "timeout",
                "no asyncio task is running, so the block runs without its timeout",
                with_traceback=False,
            )
    _scopes_in_context.set((*_scopes_in_context.get(), scope))
    reporter._open_scopes.add(scope)
    return scope


def _close_scope(reporter: EventReporter[F], error: BaseException | None) -> bool:
    """Exit the innermost open block of `reporter` and report how it ended.

    Returns:
        Whether to suppress `error`, which is so when a fallback replaces it.

    Raises:
        TimeoutError: The timeout expired and there is no fallback.
    """
    scope = _pop_scope(reporter)
    if scope is None:
        # NOTE: a block entered in another context finds its scope only while it is the
        # reporter's one open block. Otherwise the event goes through a new scope, so the `as`
        # target keeps its initial attributes and its timeout timer keeps running.
        scope = EventScope(reporter, enabled=reporter.is_enabled())
    if not scope._enabled:
        return False

    deadline = scope._deadline
    if deadline is not None and deadline.stop(error):
        timeout_error = new_timeout_error(deadline.seconds)
        scope.exception = timeout_error
        if not reporter.report_timeout(timeout_error, None, (), {}):
            raise timeout_error from error
        scope.fallback = reporter.fallback_for(timeout_error)
        scope.suppressed = True
        return True

    if error is None or not reporter.reports(error):
        return False
    scope.exception = error
    if not reporter.report_failure(error, None, (), {}):
        return False
    scope.fallback = reporter.fallback_for(error)
    scope.suppressed = True
    return True


def _pop_scope(reporter: EventReporter[F]) -> EventScope[F] | None:
    scopes = _scopes_in_context.get()
    for index in range(len(scopes) - 1, -1, -1):
        scope = scopes[index]
        if scope._reporter is reporter:
            _scopes_in_context.set(scopes[:index] + scopes[index + 1 :])
            reporter._open_scopes.discard(scope)
            return scope
    # The block was entered in another context: a generator holding it may be resumed in a
    # copy of the caller's context, as a thread pool that runs each next() call does.
    with _other_context_lock:
        if len(reporter._open_scopes) == 1:
            return reporter._open_scopes.pop()
    return None


# Event text.

VALUE_REPR: Final = reprlib.Repr()
"""Shortens argument values and blocked results, which appear only when the user opts in."""
VALUE_REPR.maxstring = 1000
VALUE_REPR.maxother = 200
VALUE_REPR.maxlong = 100


def _subject(event_type: ModerationEventType, guard_name: object, metric_name: object) -> str:
    """Name what failed, for a title such as "Guard 'Toxicity' failed"."""
    if event_type is RUNTIME_ERROR:
        return f"Guard '{_safe_str(guard_name)}'" if guard_name else "Guard"
    if event_type is CONFIG_ERROR:
        if guard_name:
            return f"Configuration of guard '{_safe_str(guard_name)}'"
        return "Guard configuration"
    if event_type is METRIC_CREATION_ERROR:
        if metric_name:
            return f"Creation of custom metric '{_safe_str(metric_name)}'"
        return "Custom metric creation"
    if event_type is METRIC_REPORTING_ERROR:
        if metric_name:
            return f"Reporting of custom metric '{_safe_str(metric_name)}'"
        return "Custom metric reporting"
    return "Scoring"


def _actor(guard_name: object, metric_name: object) -> str:
    """Name what blocked, for a title such as "Guard 'Toxicity' blocked the response"."""
    if guard_name:
        return f"Guard '{_safe_str(guard_name)}'"
    if metric_name:
        return f"Custom metric '{_safe_str(metric_name)}'"
    return "Moderation"


def _describe_exception(error: BaseException) -> str:
    """Return "<type>: <text>" for `error`, even when its `__str__` raises.

    The type is qualified by its module unless it is a built-in.
    """
    cls = type(error)
    name = getattr(cls, "__qualname__", None) or cls.__name__
    module = getattr(cls, "__module__", None)
    if module not in (None, "builtins"):
        name = f"{module}.{name}"
    try:
        text = str(error)
    except Exception as str_error:  # a broken __str__ must not lose the event
        text = f"<no text, because its __str__ raised {type(str_error).__name__}>"
    return f"{name}: {text}" if text else name


def _describe_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Return the shortened reprs of a call's arguments, as "(1, 'text', key=2)"."""
    parts = [VALUE_REPR.repr(value) for value in args]
    parts.extend(f"{key}={VALUE_REPR.repr(value)}" for key, value in kwargs.items())
    return f"({', '.join(parts)})"


def _describe_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return _describe_arguments(args, kwargs) if args or kwargs else "no arguments"


def _safe_str(value: object) -> str:
    """Return `str(value)`, or a placeholder naming its type when `__str__` raises."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # a broken __str__ must not lose the event
        return f"<{type(value).__name__} object>"
