"""Benchmark 1: what each decorator adds to a call that returns normally.

Each candidate decorates the same one-line function, for a regular function and for a
coroutine function. A block of calls is timed per candidate and round, the bare function's
time in the same round is subtracted, and the medians over rounds are compared.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

from ._measure import (
    calls_for_duration,
    median,
    percentile,
    rotated,
    time_async_calls,
    time_sync_calls,
)
from ._peers import (
    INSTALL_HINT,
    opentelemetry_span,
    prometheus_count_exceptions,
    wraps_try_except,
    wrapt_pass_through,
)
from ._results import Section, Table, Verdict, format_ns, format_ratio

__all__ = ["run"]

ARGUMENT = "Is this prompt toxic?"

BARE = "bare call"
OURS = "`@guard_events`"
WRAPS = "`functools.wraps` try/except"
WRAPT = "`wrapt` pass-through"
PROMETHEUS = "prometheus_client `count_exceptions()`"
OPENTELEMETRY = "OpenTelemetry SDK span decorator"

Timer = Callable[[Any, int], float]


def score(text: str) -> int:
    """Stand in for a guard that returns normally."""
    return len(text)


async def score_async(text: str) -> int:
    """Stand in for a coroutine guard that returns normally."""
    return len(text)


@dataclasses.dataclass
class _Candidate:
    name: str
    function: Any
    """The decorated callable, or None when its package is not installed."""


def _candidates(bare: Any) -> list[_Candidate]:
    from mlops_guard_events import guard_events

    return [
        _Candidate(BARE, bare),
        _Candidate(OURS, guard_events("Toxicity")(bare)),
        _Candidate(WRAPS, wraps_try_except(bare)),
        _Candidate(WRAPT, wrapt_pass_through(bare)),
        _Candidate(PROMETHEUS, prometheus_count_exceptions(bare)),
        _Candidate(OPENTELEMETRY, opentelemetry_span(bare)),
    ]


def _time_block(timer: Timer, function: Any, calls: int) -> float:
    return timer(function, calls)


def _measure(
    candidates: list[_Candidate], timer: Timer, *, rounds: int, block_seconds: float
) -> dict[str, list[float]]:
    """Return each installed candidate's nanoseconds per call, one value per round."""
    installed = [candidate for candidate in candidates if candidate.function is not None]
    calls = {
        candidate.name: calls_for_duration(
            functools.partial(_time_block, timer, candidate.function), block_seconds
        )
        for candidate in installed
    }
    per_round: dict[str, list[float]] = {candidate.name: [] for candidate in installed}
    for round_index in range(rounds):
        for candidate in rotated(installed, round_index):
            per_round[candidate.name].append(timer(candidate.function, calls[candidate.name]))
    return per_round


def _overheads(per_round: dict[str, list[float]]) -> dict[str, list[float]]:
    """Subtract the bare call's time of the same round from each candidate's time."""
    bare = per_round[BARE]
    return {
        name: [value - base for value, base in zip(times, bare, strict=True)]
        for name, times in per_round.items()
        if name != BARE
    }


def _table(
    kind: str, candidates: list[_Candidate], per_round: dict[str, list[float]]
) -> tuple[Table, dict[str, float]]:
    overheads = _overheads(per_round)
    medians = {name: median(values) for name, values in overheads.items()}
    wrapt_overhead = medians.get(WRAPT, 0.0)
    rows = [[BARE, format_ns(median(per_round[BARE])), "", "", ""]]
    for candidate in candidates[1:]:
        if candidate.function is None:
            rows.append([candidate.name, INSTALL_HINT, "", "", ""])
            continue
        values = overheads[candidate.name]
        spread = f"{format_ns(percentile(values, 0.25))} to {format_ns(percentile(values, 0.75))}"
        rows.append(
            [
                candidate.name,
                format_ns(median(per_round[candidate.name])),
                format_ns(medians[candidate.name]),
                spread,
                format_ratio(medians[candidate.name], wrapt_overhead),
            ]
        )
    table = Table(
        caption=f"{kind}: median over rounds.",
        columns=[
            "decorator",
            "time per call",
            "overhead over the bare call",
            "overhead, 25th to 75th percentile of rounds",
            "overhead / `wrapt` pass-through overhead",
        ],
        rows=rows,
    )
    return table, medians


def _verdicts(kind: str, medians: dict[str, float]) -> list[Verdict]:
    ours = medians[OURS]
    wrapt_overhead = medians[WRAPT]
    verdicts = [
        Verdict(
            goal=f"{kind}: overhead at most 1.1 times a bare `wrapt` pass-through",
            measured=f"{format_ratio(ours, wrapt_overhead)} ({format_ns(ours)} against"
            f" {format_ns(wrapt_overhead)})",
            met=ours <= 1.1 * wrapt_overhead,
        )
    ]
    prometheus = medians.get(PROMETHEUS)
    if prometheus is None:
        verdicts.append(
            Verdict(
                goal=f"{kind}, better still: overhead below prometheus_client",
                measured=f"prometheus_client {INSTALL_HINT}",
                met=None,
            )
        )
    else:
        verdicts.append(
            Verdict(
                goal=f"{kind}, better still: overhead below prometheus_client",
                measured=f"{format_ratio(ours, prometheus)} of its overhead ({format_ns(ours)}"
                f" against {format_ns(prometheus)})",
                met=ours < prometheus,
            )
        )
    return verdicts


def run(*, quick: bool) -> Section:
    """Measure the success path of every decorator, for functions and coroutine functions."""
    started = time.perf_counter()
    rounds = 3 if quick else 21
    block_seconds = 0.002 if quick else 0.1

    sync_candidates = _candidates(score)
    sync_times = _measure(
        sync_candidates,
        lambda function, calls: time_sync_calls(function, ARGUMENT, calls),
        rounds=rounds,
        block_seconds=block_seconds,
    )

    loop = asyncio.new_event_loop()
    try:
        async_candidates = _candidates(score_async)
        async_times = _measure(
            async_candidates,
            lambda function, calls: time_async_calls(loop, function, ARGUMENT, calls),
            rounds=rounds,
            block_seconds=block_seconds,
        )
    finally:
        loop.close()

    sync_table, sync_medians = _table("Regular function", sync_candidates, sync_times)
    async_table, async_medians = _table(
        "Coroutine function, awaited in a running event loop", async_candidates, async_times
    )
    return Section(
        key="success",
        title="1. Success path: cost per call when the guard returns normally",
        description=(
            "Each decorator wraps the same one-line function `score(text)`, called with one"
            " positional argument. A round times one block of calls per candidate, sized to"
            f" about {block_seconds * 1000:g} ms, in an order that rotates each round; the"
            " garbage collector is off inside a block, as in `timeit`. The overhead is the"
            " candidate's time per call minus the bare function's time in the same round,"
            f" and the table shows medians over {rounds} rounds."
        ),
        tables=[sync_table, async_table],
        verdicts=_verdicts("Regular function", sync_medians)
        + _verdicts("Coroutine function", async_medians),
        notes=[
            "The `wrapt` pass-through and prometheus_client return the coroutine unawaited, so"
            " neither catches a coroutine's exceptions; `@guard_events`, the `functools.wraps`"
            " wrapper and the OpenTelemetry decorator await it inside their own coroutine.",
            "The OpenTelemetry tracer has no span processor, so spans are recorded but never"
            " exported; any exporter adds to its figure.",
        ],
        raw={
            "rounds": rounds,
            "sync_ns_per_call": sync_times,
            "async_ns_per_call": async_times,
            "sync_overhead_medians_ns": sync_medians,
            "async_overhead_medians_ns": async_medians,
        },
        elapsed_seconds=time.perf_counter() - started,
    )
