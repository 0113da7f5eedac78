"""Benchmark 5: a storm of identical failures from one guard.

One decorated guard fails a million times in a loop, with the library's default settings (the
endpoint, token and deployment ID aside), while the process samples its resident set size. A
second, shorter pass repeats the storm under `tracemalloc`, which slows every allocation, to
measure the Python heap. After each pass, `flush()` sends the summary of the coalesced repeats,
and the loopback receiver reports how many HTTP requests it saw. The peers: the same loop over
the undecorated function, and a hand-written except clause that calls the official `datarobot`
client, which makes one request per failure and is run for fewer calls.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from ._measure import call_failing
from ._peers import official_client
from ._receiver import ReceiverProcess
from ._results import Section, Table, Verdict, format_bytes, format_duration, format_ns

__all__ = ["run"]

DEPLOYMENT_ID = "65a1b2c3d4e5f6a7b8c9d0e1"
ERROR_TEXT = "toxicity model timed out after 2.0 s"
FLAT_MEMORY_BYTES = 1024 * 1024
"""Memory counts as flat while it grows less than this from the first sample to the last."""
HANDFUL_OF_REQUESTS = 10
_FLUSH_TIMEOUT_SECONDS = 60.0
_WARM_UP_CALLS = 1_000


def fail() -> None:
    """Stand in for a guard that fails the same way on every call."""
    raise RuntimeError(ERROR_TEXT)


@dataclasses.dataclass(frozen=True)
class _Sizes:
    calls: int
    """Failing calls of the storm measured by resident set size."""
    traced_calls: int
    """Failing calls of the storm measured under tracemalloc."""
    official_calls: int
    """Failing calls that report through the official client."""
    samples: int
    """Resident set size samples taken during the storm."""


_FULL = _Sizes(calls=1_000_000, traced_calls=200_000, official_calls=2_000, samples=100)
_QUICK = _Sizes(calls=2_000, traced_calls=1_000, official_calls=20, samples=10)


def _resident_bytes() -> int:
    """Return this process's resident set size, or 0 where /proc is missing."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


@dataclasses.dataclass
class _StormOutcome:
    calls: int
    seconds: float
    resident_before_warm_up: int
    resident_start: int
    resident_samples: list[int]

    @property
    def warm_up_growth(self) -> int:
        return self.resident_start - self.resident_before_warm_up

    @property
    def peak_growth(self) -> int:
        return max(self.resident_samples) - self.resident_start

    @property
    def growth_after_first_sample(self) -> int:
        return self.resident_samples[-1] - self.resident_samples[0]


def _storm(
    function: Callable[[], None],
    calls: int,
    samples: int,
    *,
    settle: Callable[[], object] = lambda: None,
) -> _StormOutcome:
    """Call the failing `function` `calls` times, sampling the resident set size.

    Args:
        function: The failing call.
        calls: How many calls to time and sample.
        samples: How many times to read the resident set size during the calls.
        settle: Runs after the warm-up calls, before the first sample.
    """
    resident_before_warm_up = _resident_bytes()
    call_failing(function, _WARM_UP_CALLS)
    settle()
    gc.collect()
    resident_start = _resident_bytes()
    chunk = max(1, calls // samples)
    resident_samples: list[int] = []
    started = time.perf_counter()
    done = 0
    while done < calls:
        call_failing(function, min(chunk, calls - done))
        done += chunk
        resident_samples.append(_resident_bytes())
    seconds = time.perf_counter() - started
    return _StormOutcome(calls, seconds, resident_before_warm_up, resident_start, resident_samples)


def _traced_storm(function: Callable[[], None], calls: int) -> tuple[int, int]:
    """Return the growth of traced memory at the end and at its peak, over the start."""
    tracemalloc.start()
    try:
        call_failing(function, _WARM_UP_CALLS)
        gc.collect()
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        call_failing(function, calls)
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return end - start, peak - start


def _official_storm(official: Callable[..., None], calls: int) -> float:
    """Fail `calls` times, reporting each failure through the official client; return seconds."""

    def fail_and_report() -> None:
        try:
            fail()
        except RuntimeError as error:
            official(
                "moderationModelRuntimeError",
                timestamp=datetime.now(timezone.utc).isoformat(),
                title="Guard 'Toxicity' failed",
                message=f"RuntimeError: {error}",
                deployment_id=DEPLOYMENT_ID,
                guard_name="Toxicity",
            )
            raise

    started = time.perf_counter()
    call_failing(fail_and_report, calls)
    return time.perf_counter() - started


def run(*, quick: bool) -> Section:
    """Run the storm with this library and its peers, and count memory and requests."""
    from mlops_guard_events import configure, flush, guard_events, shutdown, stats

    started = time.perf_counter()
    sizes = _QUICK if quick else _FULL
    bare = _storm(fail, sizes.calls, sizes.samples)

    with (
        tempfile.TemporaryDirectory(prefix="mlops-guard-events-bench-") as state_root,
        ReceiverProcess() as receiver,
    ):
        configure(
            endpoint=receiver.endpoint,
            api_token=receiver.token,
            deployment_id=DEPLOYMENT_ID,
            state_dir=Path(state_root),
        )
        decorated = guard_events("Toxicity")(fail)

        # The first event makes the worker import `requests` and open a connection, which
        # takes a few MiB once. Flushing it before the first sample keeps that out of the storm.
        ours = _storm(
            decorated,
            sizes.calls,
            sizes.samples,
            settle=lambda: flush(timeout=_FLUSH_TIMEOUT_SECONDS),
        )
        pending = flush(timeout=_FLUSH_TIMEOUT_SECONDS)
        ours_counts = receiver.counts()
        ours_stats = stats()

        receiver.clear()
        traced_end, traced_peak = _traced_storm(decorated, sizes.traced_calls)
        flush(timeout=_FLUSH_TIMEOUT_SECONDS)
        traced_counts = receiver.counts()
        shutdown(timeout=0)

        receiver.clear()
        with official_client(receiver.endpoint, receiver.token) as official:
            official_seconds = _official_storm(official.report, sizes.official_calls)
        official_counts = receiver.counts()

    official_per_call = official_seconds / sizes.official_calls
    rows = [
        [
            "undecorated failing function, no reporting",
            f"{bare.calls:,}",
            format_ns(bare.seconds * 1e9 / bare.calls),
            format_bytes(bare.peak_growth),
            format_bytes(bare.growth_after_first_sample),
            "",
            "none",
        ],
        [
            "`@guard_events`, default settings",
            f"{ours.calls:,}",
            format_ns(ours.seconds * 1e9 / ours.calls),
            format_bytes(ours.peak_growth),
            format_bytes(ours.growth_after_first_sample),
            f"{format_bytes(traced_peak)} peak, {format_bytes(traced_end)} at the end"
            f" ({sizes.traced_calls:,} calls)",
            f"{ours_counts['requests']:,} ({traced_counts['requests']:,} in the traced pass)",
        ],
        [
            "except clause calling the official `datarobot` client",
            f"{sizes.official_calls:,}",
            format_ns(official_per_call * 1e9),
            "",
            "",
            "",
            f"{official_counts['requests']:,}",
        ],
    ]
    memory_flat = (
        ours.growth_after_first_sample < FLAT_MEMORY_BYTES and traced_end < FLAT_MEMORY_BYTES
    )
    return Section(
        key="storm",
        title="5. Storm: one guard failing a million times",
        description=(
            f'One guard decorated with `@guard_events("Toxicity")` fails {sizes.calls:,}'
            " times in a loop on one thread. The library runs with its default settings (a"
            " 60 s coalescing window, 1,000 events a minute) apart from the endpoint, token"
            " and deployment ID, and the undecorated function runs the same loop first. Each loop"
            f" starts after {_WARM_UP_CALLS:,} warm-up calls (for this library followed by"
            " `flush()`, so the first event has been sent) and a garbage collection, and"
            f" the resident set size is sampled {sizes.samples} times, once per"
            f" {max(1, sizes.calls // sizes.samples):,} calls. A second pass of"
            f" {sizes.traced_calls:,} calls runs under `tracemalloc`. After each pass"
            " `flush()` sends the summary of the coalesced repeats, and the receiver on"
            " 127.0.0.1 in a separate process counts the requests it saw."
        ),
        tables=[
            Table(
                caption="Memory and requests during the storm.",
                columns=[
                    "caller",
                    "failing calls",
                    "time per call",
                    "resident set growth, peak of the samples over the start",
                    "resident set growth, first sample to last",
                    "traced memory growth",
                    "HTTP requests the receiver saw",
                ],
                rows=rows,
            )
        ],
        verdicts=[
            Verdict(
                goal="Storm: flat memory",
                measured=f"the resident set grew {format_bytes(ours.growth_after_first_sample)}"
                f" from the first sample to the last (undecorated loop:"
                f" {format_bytes(bare.growth_after_first_sample)}), and traced memory"
                f" {format_bytes(traced_end)} over {sizes.traced_calls:,} calls",
                met=memory_flat,
            ),
            Verdict(
                goal="Storm: a handful of HTTP requests",
                measured=f"{ours_counts['requests']:,} requests for {sizes.calls:,} failures,"
                f" against one request per failure ({official_counts['requests']:,} for"
                f" {sizes.official_calls:,}) with the official client",
                met=ours_counts["requests"] <= HANDFUL_OF_REQUESTS and pending == 0,
            ),
        ],
        notes=[
            f"At the official client's {format_ns(official_per_call * 1e9)} per failure, the"
            f" storm's {sizes.calls:,} failures would send {sizes.calls:,} requests and block"
            f" the failing thread for about {format_duration(official_per_call * sizes.calls)}"
            " in all (an estimate from the shorter run).",
            f"Sending the first event, before the storm, grew the resident set by"
            f" {format_bytes(ours.warm_up_growth)}, once: the worker thread starts and imports"
            " `requests`, and the connection opens.",
            f"This library's counters after the first pass: {ours_stats['submitted']:,}"
            f" submitted, {ours_stats['coalesced']:,} coalesced,"
            f" {ours_stats['summaries']:,} summaries, {ours_stats['delivered']:,} delivered.",
            "A request carries the first failure; each summary is one more request and states"
            " how many repeats it stands for. A storm longer than the 60 s window sends one"
            " summary per window.",
        ],
        raw={
            "sizes": dataclasses.asdict(sizes),
            "bare": dataclasses.asdict(bare),
            "ours": dataclasses.asdict(ours),
            "traced_growth_end": traced_end,
            "traced_growth_peak": traced_peak,
            "ours_counts": ours_counts,
            "traced_counts": traced_counts,
            "official_counts": official_counts,
            "official_seconds": official_seconds,
            "ours_stats": ours_stats,
        },
        elapsed_seconds=time.perf_counter() - started,
    )
