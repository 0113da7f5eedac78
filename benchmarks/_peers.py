"""The peers the library is measured against, built the way their users build them.

prometheus_client and the OpenTelemetry SDK come only with the `bench` extra, so their builders
return None when the package is missing, and the benchmark reports the peer as not installed.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import wrapt

__all__ = [
    "INSTALL_HINT",
    "OfficialClient",
    "official_client",
    "opentelemetry_span",
    "prometheus_count_exceptions",
    "stack_depth",
    "wraps_try_except",
    "wrapt_pass_through",
]

INSTALL_HINT = "not installed; install the peers with pip install -e '.[bench]'"

AnyFunction = Callable[..., Any]

_failures = 0


def _count_failure() -> None:
    global _failures
    _failures += 1


def wraps_try_except(function: AnyFunction) -> AnyFunction:
    """Wrap `function` in a hand-written `functools.wraps` decorator with a try/except.

    The except clause only counts, as a hand-written reporting clause would do before it
    re-raises. A coroutine function gets an `async def` wrapper, so the clause catches its
    exceptions.
    """
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def guarded_coroutine(*args: Any, **kwargs: Any) -> Any:
            try:
                return await function(*args, **kwargs)
            except Exception:
                _count_failure()
                raise

        return guarded_coroutine

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception:
            _count_failure()
            raise

    return guarded


@wrapt.decorator
def _pass_through(wrapped: AnyFunction, instance: object, args: Any, kwargs: Any) -> Any:
    return wrapped(*args, **kwargs)


def wrapt_pass_through(function: AnyFunction) -> AnyFunction:
    """Wrap `function` in a `wrapt.decorator` that only calls it.

    For a coroutine function it returns the coroutine, so it never catches the coroutine's
    exceptions. It is the floor for any wrapt-based decorator.
    """
    wrapped: AnyFunction = _pass_through(function)
    return wrapped


def prometheus_count_exceptions(function: AnyFunction) -> AnyFunction | None:
    """Decorate `function` with prometheus_client's `Counter.count_exceptions()`.

    The counter lives in a registry of its own, so nothing global changes. Applied to a
    coroutine function it wraps the call that creates the coroutine, so it counts none of the
    coroutine's exceptions (prometheus_client 0.26 has no async support in this decorator).

    Returns:
        The decorated function, or None when prometheus_client is not installed.
    """
    try:
        from prometheus_client import CollectorRegistry, Counter
    except ImportError:
        return None
    counter = Counter(
        "guard_failures",
        "Failures of the benchmarked guard.",
        registry=CollectorRegistry(),
    )
    decorated: AnyFunction = counter.count_exceptions()(function)
    return decorated


def opentelemetry_span(function: AnyFunction) -> AnyFunction | None:
    """Decorate `function` with an OpenTelemetry SDK span, `tracer.start_as_current_span`.

    The tracer comes from a `TracerProvider` of its own with the default sampler (every span
    is recorded) and no span processor, so no span is exported: this is the cheapest SDK
    setup, and a real exporter only adds to it.

    Returns:
        The decorated function, or None when the OpenTelemetry SDK is not installed.
    """
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        return None
    tracer = TracerProvider().get_tracer("benchmarks")
    decorated: AnyFunction = tracer.start_as_current_span("guard")(function)
    return decorated


class OfficialClient:
    """The official `datarobot` client's moderation event call, and its tracking switch.

    By default (datarobot 3.20), the client tracks API consumers: every request runs
    `inspect.stack()` to name the calling code in a header, which costs more the deeper the
    caller's stack is. `datarobot.Client()` leaves it on unless the configuration turns it off,
    so the default is what its users run, and "tracking off" is the client at its cheapest.
    """

    def __init__(self, report: Callable[..., None]) -> None:
        self.report = report
        """`datarobot.mlops.events.MLOpsEvent.report_moderation_event`."""

    def set_tracking(self, enabled: bool) -> None:
        """Turn the client's API consumer tracking on (its default) or off."""
        from datarobot.context import Context

        Context.enable_api_consumer_tracking = enabled


@contextlib.contextmanager
def official_client(endpoint: str, token: str) -> Iterator[OfficialClient]:
    """Install a `datarobot` REST client for `endpoint`, with its default options.

    The client is built directly, because `datarobot.Client()` first requests the server's
    API version, which the loopback receiver does not serve. It keeps the client's default
    options, retries and API consumer tracking included. The previous client and tracking
    setting are restored on exit.
    """
    from datarobot.client import set_client
    from datarobot.context import Context
    from datarobot.mlops.events import MLOpsEvent
    from datarobot.rest import RESTClientObject

    with warnings.catch_warnings():
        # datarobot 3.20 builds its default urllib3 Retry with an option urllib3 deprecates.
        warnings.simplefilter("ignore", FutureWarning)
        client = RESTClientObject(auth=token, endpoint=endpoint)
    previous = set_client(client)
    tracking = Context.enable_api_consumer_tracking
    try:
        yield OfficialClient(MLOpsEvent.report_moderation_event)
    finally:
        Context.enable_api_consumer_tracking = tracking
        if previous is not None:
            set_client(previous)
        client.close()


def stack_depth() -> int:
    """Return how many frames the caller's stack has, the caller's own frame included."""
    depth = 0
    frame = inspect.currentframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth - 1
