"""The wrapt wrappers behind the decorators, one per kind of callable.

A plain `try`/`except` around the call catches only exceptions raised before the call returns. A
coroutine fails when it is awaited, and a generator when an item is requested, so each of those
kinds gets a wrapper that guards the awaiting or the iteration. The kind is decided once, when
the decorator is applied. No wrapper takes a lock or reads the settings, and the wrapper of a
regular function allocates nothing of its own on the success path.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import sys
import types
from collections.abc import AsyncGenerator, Callable, Generator
from typing import TYPE_CHECKING, Any, Final

import wrapt

if TYPE_CHECKING:
    from ._scope import EventReporter

__all__ = ["CallableKind", "Deadline", "GuardedFunction", "kind_of", "new_timeout_error", "wrap"]

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]
"""A wrapt wrapper: `(wrapped, instance, args, kwargs) -> result`."""


class CallableKind(enum.Enum):
    """The kind of a decorated callable, which decides where its failures appear."""

    FUNCTION = "a regular function"
    COROUTINE_FUNCTION = "a coroutine function"
    GENERATOR_FUNCTION = "a generator function"
    ASYNC_GENERATOR_FUNCTION = "an async generator function"


def kind_of(wrapped: object) -> CallableKind:
    """Return the kind of `wrapped`, looking through classmethod and staticmethod objects."""
    target: Any = wrapped
    if isinstance(target, (classmethod, staticmethod)):
        target = target.__func__
    candidates = [target]
    plain_object = not (
        inspect.isclass(target)
        or inspect.isroutine(target)
        or isinstance(target, functools.partial)
    )
    if plain_object and callable(target):
        # A callable object: its __call__ method decides.
        candidates.append(type(target).__call__)
    for candidate in candidates:
        if inspect.iscoroutinefunction(candidate):
            return CallableKind.COROUTINE_FUNCTION
        if inspect.isasyncgenfunction(candidate):
            return CallableKind.ASYNC_GENERATOR_FUNCTION
        if inspect.isgeneratorfunction(candidate):
            return CallableKind.GENERATOR_FUNCTION
    return CallableKind.FUNCTION


if TYPE_CHECKING:
    _FunctionWrapper = wrapt.FunctionWrapper[..., Any]
else:
    _FunctionWrapper = wrapt.FunctionWrapper


class GuardedFunction(_FunctionWrapper):
    """The object a decorator returns: a transparent wrapt proxy of the decorated callable.

    wrapt's proxies refuse to be pickled or copied. A decorated function is pickled by its
    qualified name, as pickle stores a plain function, so it still crosses to `multiprocessing`
    workers. Copying returns the same object, as it does for a plain function.
    """

    def __reduce_ex__(self, protocol: object) -> str:
        try:
            return str(self.__qualname__)
        except AttributeError:
            raise TypeError(
                f"cannot pickle {self.__wrapped__!r} decorated by mlops_guard_events: it has no"
                " __qualname__; only functions defined at module level can be pickled"
            ) from None

    def __copy__(self) -> GuardedFunction:
        return self

    def __deepcopy__(self, memo: object) -> GuardedFunction:
        return self


# Called directly rather than through a class or an instance, wrapt's proxy looks up `__self__`
# on the wrapped object on every call, to find the instance of a bound method. On a plain
# function that lookup fails, and building and discarding its AttributeError is most of
# wrapt's cost per call: about 350 ns of 480 ns with wrapt 2.5 on CPython 3.11. A plain function
# has no instance, so the two classes below do the wrapper's work in their own `__call__` with
# no instance, as wrapt does after the failed lookup, and save the wrapper's frame as well.
# Methods still bind through wrapt's descriptor and call the wrapper, unchanged.
#
# A Python `__call__` costs more on CPython 3.10 than on 3.11. We timed both calls of one
# guarded function on 3.10.13 (wrapt 2.5, 2-core AMD EPYC). The direct call saved about 160 ns
# a call for a regular function, but cost about 200 ns more for a coroutine function, so 3.10
# keeps wrapt's call for coroutine functions. Other kinds of callable always keep wrapt's call.
_DIRECT_COROUTINE_CALLS: Final = sys.version_info >= (3, 11)


class _DirectlyGuardedFunction(GuardedFunction):
    """A guarded plain regular function without a `blocked` check, called without wrapt.

    `__call__` does what `_function_wrapper` does for a call without an instance. The `except`
    expression is evaluated only when the call raises, so a call that returns reads one
    attribute, `__wrapped__`.
    """

    def __init__(self, wrapped: Any, wrapper: Wrapper, reporter: EventReporter[Any]) -> None:
        super().__init__(wrapped, wrapper)
        self._self_reporter = reporter
        self._self_caught = reporter.caught

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.__wrapped__(*args, **kwargs)
        except self._self_caught as error:
            reporter = self._self_reporter
            if isinstance(error, reporter.passed_through) or not reporter.report_failure(
                error, None, args, kwargs
            ):
                raise
            return reporter.fallback_for(error)


class _DirectlyGuardedCoroutineFunction(GuardedFunction):
    """A guarded plain coroutine function, called without wrapt.

    `__call__` does what the wrapper from `_coroutine_wrapper` does for a call without an
    instance: `guard` is the coroutine function that awaits the call, already named.
    """

    def __init__(self, wrapped: Any, wrapper: Wrapper, guard: Wrapper) -> None:
        super().__init__(wrapped, wrapper)
        self._self_guard = guard

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        awaitable = self.__wrapped__(*args, **kwargs)
        return self._self_guard(_PendingCall(awaitable), None, args, kwargs)


def wrap(reporter: EventReporter[Any], wrapped: Any) -> GuardedFunction:
    """Wrap `wrapped` so that `reporter` reports its failures and blocked results.

    Raises:
        TypeError: `reporter` has a timeout and `wrapped` is not a coroutine function.
    """
    kind = kind_of(wrapped)
    if reporter.timeout is not None and kind is not CallableKind.COROUTINE_FUNCTION:
        raise TypeError(
            f"invalid timeout={reporter.timeout:g} for {_describe(wrapped)}, which is"
            f" {kind.value}: a timeout applies only to coroutine functions and `async with`;"
            " remove timeout, or make the function `async def`"
        )
    # wrapt calls a function that has a `__self__` attribute of its own as a bound method, so
    # such a function keeps wrapt's call.
    plain_function = type(wrapped) is types.FunctionType and "__self__" not in wrapped.__dict__
    direct = plain_function and not reporter.has_enabled_callable

    if kind is CallableKind.COROUTINE_FUNCTION:
        guard = _coroutine_guard(reporter, wrapped)
        wrapper = _coroutine_wrapper(guard, named=type(wrapped) is types.FunctionType)
        if direct and _DIRECT_COROUTINE_CALLS:
            return _DirectlyGuardedCoroutineFunction(wrapped, wrapper, guard)
    elif kind is CallableKind.GENERATOR_FUNCTION:
        wrapper = _generator_wrapper(reporter)
    elif kind is CallableKind.ASYNC_GENERATOR_FUNCTION:
        wrapper = _async_generator_wrapper(reporter)
    else:
        wrapper = _function_wrapper(reporter)
        if direct and not reporter.checks_results:
            return _DirectlyGuardedFunction(wrapped, wrapper, reporter)

    enabled = reporter.is_enabled if reporter.has_enabled_callable else None
    return GuardedFunction(wrapped, wrapper, enabled)


def _describe(wrapped: object) -> str:
    name = getattr(wrapped, "__qualname__", None) or getattr(wrapped, "__name__", None)
    return repr(name) if isinstance(name, str) else repr(wrapped)


# The wrappers below re-raise the guarded code's exception with a bare `raise`, so it leaves as
# the same object with its traceback. The reporter's methods never raise, except
# `fallback_for`, which runs the user's fallback callable and lets its exception propagate, as
# a hand-written `except` clause would.


def _function_wrapper(reporter: EventReporter[Any]) -> Wrapper:
    caught = reporter.caught
    passed_through = reporter.passed_through
    report_failure = reporter.report_failure
    fallback_for = reporter.fallback_for
    check_result = reporter.check_result if reporter.checks_results else None

    if check_result is None:

        def call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                return wrapped(*args, **kwargs)
            except caught as error:
                if isinstance(error, passed_through) or not report_failure(
                    error, instance, args, kwargs
                ):
                    raise
                return fallback_for(error)

        return call

    def call_and_check(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            result = wrapped(*args, **kwargs)
        except caught as error:
            if isinstance(error, passed_through) or not report_failure(
                error, instance, args, kwargs
            ):
                raise
            return fallback_for(error)
        check_result(result, instance, args, kwargs)
        return result

    return call_and_check


def _coroutine_guard(reporter: EventReporter[Any], wrapped: Any) -> Wrapper:
    """Return the coroutine function that awaits a call of `wrapped` and reports its failure.

    It is named after `wrapped` when that is a plain function, so that a warning about a
    coroutine never awaited, and the repr of a task, name the decorated function.
    """
    caught = reporter.caught
    passed_through = reporter.passed_through
    report_failure = reporter.report_failure
    fallback_for = reporter.fallback_for
    check_result = reporter.check_result if reporter.checks_results else None
    timeout = reporter.timeout

    async def await_guarded(
        call: _PendingCall, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # Taken inline rather than through a method, which would cost about 30 ns a call.
        awaitable, call.awaitable = call.awaitable, None
        try:
            result = await awaitable
        except caught as error:
            if isinstance(error, passed_through) or not report_failure(
                error, instance, args, kwargs
            ):
                raise
            return fallback_for(error)
        if check_result is not None:
            check_result(result, instance, args, kwargs)
        return result

    guard: Wrapper = await_guarded
    if timeout is not None:
        guard = _deadline_guard(reporter, timeout, await_guarded)
    # A coroutine takes its name from its function, so naming the function here names every
    # coroutine it creates.
    if type(wrapped) is types.FunctionType:
        guard.__name__ = wrapped.__name__
        guard.__qualname__ = wrapped.__qualname__
    return guard


def _coroutine_wrapper(guard: Wrapper, *, named: bool) -> Wrapper:
    """Return the wrapt wrapper that calls the coroutine function and guards its coroutine.

    Args:
        guard: The coroutine function from `_coroutine_guard`.
        named: Whether `guard` already has the decorated function's name. A callable object's
            coroutine is named after its `__call__` method, known only once it is called, so
            the name is copied from each coroutine instead.
    """

    def call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # Calling the coroutine function here, not inside the coroutine below, keeps an
        # argument error where it was: raised by the call, not by the first await.
        awaitable = wrapped(*args, **kwargs)
        guarding = guard(_PendingCall(awaitable), instance, args, kwargs)
        if named:
            return guarding
        qualified_name = getattr(awaitable, "__qualname__", None)
        if isinstance(qualified_name, str):
            guarding.__qualname__ = qualified_name
            guarding.__name__ = getattr(awaitable, "__name__", qualified_name)
        return guarding

    return call


class _PendingCall:
    """The awaitable of a guarded call, closed when dropped so it never warns as unawaited.

    A guarding coroutine that is closed before it starts, as a task cancelled before its
    first step is, never awaits the decorated function's coroutine. Without this, Python
    would warn "coroutine ... was never awaited", which it does not for the undecorated
    function in the same situation. Once the guarding coroutine takes the awaitable to await
    it, closing the guarding coroutine closes the awaitable too, so nothing is left to close.
    """

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Any) -> None:
        self.awaitable = awaitable

    def __del__(self) -> None:
        awaitable = self.awaitable
        if awaitable is None:
            return
        # Closing a coroutine that never started runs no code.
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()


def _deadline_guard(
    reporter: EventReporter[Any], timeout: float, await_guarded: Wrapper
) -> Wrapper:
    caught = reporter.caught
    passed_through = reporter.passed_through
    report_failure = reporter.report_failure
    report_timeout = reporter.report_timeout
    fallback_for = reporter.fallback_for
    check_result = reporter.check_result if reporter.checks_results else None

    async def await_with_deadline(
        call: _PendingCall, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        deadline = Deadline.start(timeout)
        if deadline is None:
            reporter.note_failure(
                "timeout",
                "the timeout cannot be enforced because no asyncio task is running; the call"
                " runs without it",
                with_traceback=False,
            )
            return await await_guarded(call, instance, args, kwargs)
        awaitable, call.awaitable = call.awaitable, None
        try:
            result = await awaitable
        except BaseException as error:
            if deadline.stop(error):
                timeout_error = new_timeout_error(timeout)
                if not report_timeout(timeout_error, instance, args, kwargs):
                    raise timeout_error from error
                return fallback_for(timeout_error)
            if (
                not isinstance(error, caught)
                or isinstance(error, passed_through)
                or not report_failure(error, instance, args, kwargs)
            ):
                raise
            return fallback_for(error)
        deadline.stop(None)
        if check_result is not None:
            check_result(result, instance, args, kwargs)
        return result

    return await_with_deadline


def _generator_wrapper(reporter: EventReporter[Any]) -> Wrapper:
    caught = reporter.caught
    passed_through = reporter.passed_through
    report_failure = reporter.report_failure
    fallback_for = reporter.fallback_for
    check_result = reporter.check_result if reporter.checks_results else None

    def iterate_guarded(
        generator: Generator[Any, Any, Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Generator[Any, Any, Any]:
        # This loop does what `yield from generator` does. It also checks each item, and it
        # recognizes an exception thrown in by the consumer, which passes through unreported.
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                item = generator.send(sent) if thrown is None else generator.throw(thrown)
            except StopIteration as stop:
                return stop.value
            except caught as error:
                if (
                    error is thrown
                    or isinstance(error, passed_through)
                    or not report_failure(error, instance, args, kwargs)
                ):
                    raise
                return fallback_for(error)
            thrown = None
            if check_result is not None:
                check_result(item, instance, args, kwargs)
            try:
                sent = yield item
            except GeneratorExit:
                generator.close()
                raise
            except BaseException as error:  # forwarded to the generator, as `yield from` does
                sent = None
                thrown = error

    def call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return iterate_guarded(wrapped(*args, **kwargs), instance, args, kwargs)

    return call


def _async_generator_wrapper(reporter: EventReporter[Any]) -> Wrapper:
    caught = reporter.caught
    passed_through = reporter.passed_through
    report_failure = reporter.report_failure
    fallback_for = reporter.fallback_for
    check_result = reporter.check_result if reporter.checks_results else None

    async def iterate_guarded(
        generator: AsyncGenerator[Any, Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> AsyncGenerator[Any, Any]:
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                if thrown is None:
                    item = await generator.asend(sent)
                else:
                    item = await generator.athrow(thrown)
            except StopAsyncIteration:
                return
            except caught as error:
                if (
                    error is thrown
                    or isinstance(error, passed_through)
                    or not report_failure(error, instance, args, kwargs)
                ):
                    raise
                # An async generator cannot return a value, so the fallback only ends the
                # iteration; a fallback callable still runs.
                fallback_for(error)
                return
            thrown = None
            if check_result is not None:
                check_result(item, instance, args, kwargs)
            try:
                sent = yield item
            except GeneratorExit:
                await generator.aclose()
                raise
            except BaseException as error:  # forwarded to the generator, as athrow() requires
                sent = None
                thrown = error

    def call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return iterate_guarded(wrapped(*args, **kwargs), instance, args, kwargs)

    return call


# The timeout of coroutine functions and `async with` blocks.

if sys.version_info >= (3, 11):
    _TimeoutError: type[TimeoutError] = TimeoutError
else:

    class _TimeoutError(TimeoutError, asyncio.TimeoutError):
        """The built-in TimeoutError that `except asyncio.TimeoutError` also catches.

        On Python 3.10 the two are different classes. From 3.11 on they are the same.
        """


def new_timeout_error(seconds: float) -> TimeoutError:
    """Return the `TimeoutError` raised when a guarded call runs out of time."""
    return _TimeoutError(f"timed out after {seconds:g} s")


class Deadline:
    """A timer that cancels the running asyncio task once `seconds` have passed.

    `stop()` distinguishes the cancellation this timer caused from any other. On Python 3.11
    and newer it counts cancellation requests with `Task.uncancel()`, so a cancellation from
    outside is never taken for a timeout, even when both happen at once.

    Attributes:
        seconds: The time allowed, in seconds.
    """

    __slots__ = ("_cancel_requests", "_expired", "_handle", "_task", "seconds")

    def __init__(self, seconds: float, task: asyncio.Task[Any]) -> None:
        self.seconds = seconds
        self._task = task
        self._expired = False
        self._handle: asyncio.TimerHandle | None = None
        self._cancel_requests = 0
        if sys.version_info >= (3, 11):
            self._cancel_requests = task.cancelling()

    @classmethod
    def start(cls, seconds: float) -> Deadline | None:
        """Start a timer for the running task.

        Returns:
            The started timer, or None when no asyncio task is running (for example under
            another event loop library).
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        task = asyncio.current_task(loop)
        if task is None:
            return None
        deadline = cls(seconds, task)
        deadline._handle = loop.call_later(seconds, deadline._expire)
        return deadline

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def stop(self, error: BaseException | None) -> bool:
        """Stop the timer. Call it exactly once, when the timed code ends.

        Args:
            error: The exception the timed code ended with, or None.

        Returns:
            Whether `error` is the cancellation this timer caused, to be turned into a
            `TimeoutError`.
        """
        if self._handle is not None:
            self._handle.cancel()
        if not self._expired:
            return False
        cancelled = isinstance(error, asyncio.CancelledError)
        if sys.version_info >= (3, 11):
            # Withdraw our request whatever happened, so the task's count stays right.
            return self._task.uncancel() <= self._cancel_requests and cancelled
        # NOTE: Python 3.10 has no Task.uncancel(), so a cancellation requested from outside
        # after this timer fired, and before the task saw it, is reported as the timeout.
        return cancelled
