"""Statistics and timing loops shared by the benchmarks.

Every figure is a median over interleaved rounds. Each round measures every candidate once, in
an order that rotates from round to round, so that a burst of load from another process on the
machine hits all candidates alike instead of one of them.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

__all__ = [
    "call_failing",
    "calls_for_duration",
    "median",
    "percentile",
    "rotated",
    "time_async_calls",
    "time_each_call",
    "time_sync_calls",
]

T = TypeVar("T")


def median(values: Sequence[float]) -> float:
    """Return the median of `values`.

    Raises:
        ValueError: `values` is empty.
    """
    if not values:
        raise ValueError("median of no values: measure at least one sample")
    return float(statistics.median(values))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the `fraction` quantile of `values`, interpolated between the closest ranks.

    Args:
        values: The samples, in any order.
        fraction: The quantile as a fraction from 0 to 1, such as 0.99 for the 99th percentile.

    Raises:
        ValueError: `values` is empty or `fraction` is outside 0 to 1.
    """
    if not values:
        raise ValueError("percentile of no values: measure at least one sample")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"invalid fraction {fraction!r}: expected a number from 0 to 1")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    weight = position - lower
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def rotated(items: Sequence[T], round_index: int) -> list[T]:
    """Return `items` rotated left by `round_index`, so each round starts with another item."""
    if not items:
        return []
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


class _GarbageCollectionPaused:
    """Switch the cyclic garbage collector off for a timed loop, as `timeit` does."""

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc_info: object) -> None:
        if self._was_enabled:
            gc.enable()


def time_sync_calls(function: Callable[[Any], object], argument: object, calls: int) -> float:
    """Call `function(argument)` `calls` times and return the mean nanoseconds per call.

    The garbage collector is off during the loop, so a collection does not land on one
    candidate only.
    """
    repeat: Iterator[None] = itertools.repeat(None, calls)
    with _GarbageCollectionPaused():
        start = time.perf_counter_ns()
        for _ in repeat:
            function(argument)
        elapsed = time.perf_counter_ns() - start
    return elapsed / calls


def time_async_calls(
    loop: asyncio.AbstractEventLoop,
    function: Callable[[Any], Awaitable[object]],
    argument: object,
    calls: int,
) -> float:
    """Await `function(argument)` `calls` times inside `loop`; return the mean ns per call.

    The clock starts and stops inside the coroutine, so starting the loop is not counted.
    """

    async def drive() -> float:
        repeat: Iterator[None] = itertools.repeat(None, calls)
        start = time.perf_counter_ns()
        for _ in repeat:
            await function(argument)
        return (time.perf_counter_ns() - start) / calls

    with _GarbageCollectionPaused():
        return loop.run_until_complete(drive())


def time_each_call(
    function: Callable[[], object],
    calls: int,
    *,
    expected: type[BaseException] | None = None,
) -> list[float]:
    """Call `function()` `calls` times and return the nanoseconds of each call.

    The garbage collector stays on, because the cost of the collections a call causes is
    part of what the caller pays.

    Args:
        function: The call to time.
        calls: How many calls to make.
        expected: The exception class each call raises, caught inside the timed span; None
            when the call returns normally.
    """
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        if expected is None:
            start = clock()
            function()
            samples.append(clock() - start)
            continue
        start = clock()
        try:
            function()
        except expected:
            elapsed = clock() - start
        else:
            elapsed = clock() - start
        samples.append(elapsed)
    return samples


def calls_for_duration(measure: Callable[[int], float], target_seconds: float) -> int:
    """Return how many calls take about `target_seconds`, timing a doubling number of them.

    Args:
        measure: Times the given number of calls and returns the mean nanoseconds per call.
        target_seconds: The duration one block of calls should take.
    """
    calls = 1
    while True:
        per_call_ns = measure(calls)
        if per_call_ns * calls >= target_seconds * 1e9 / 4 or calls >= 10_000_000:
            break
        calls *= 2
    return max(1, int(target_seconds * 1e9 / max(per_call_ns, 1.0)))


def call_failing(function: Callable[[], object], calls: int) -> int:
    """Call `function()` `calls` times, catching `RuntimeError`; return how many calls raised it."""
    failures = 0
    for _ in itertools.repeat(None, calls):
        try:
            function()
        except RuntimeError:
            failures += 1
    return failures
