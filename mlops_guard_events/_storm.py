"""Storm control: coalescing of repeated events, and the cap on events sent per minute.

Coalescing runs on the calling thread at submit time, before the queue, so that a storm of
identical failures costs one dictionary lookup per repeat and never fills the queue. Events with
the same fingerprint (type, deployment, guard, metric and title) inside one window are counted
instead of sent: the first goes out at once, and the repeats become one summary event when the
window closes. A window that closes with repeats is followed at once by another, so a storm that
lasts sends one summary per window and no further "first" events.

The per-minute cap is a token bucket that the worker draws from before each send, so one budget
covers fresh, summary and replayed events.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import re
import threading
import time
from collections.abc import Callable
from typing import Final

from ._event import MAX_MESSAGE_LENGTH, ModerationEvent, truncate

__all__ = [
    "MAX_FINGERPRINTS",
    "Admission",
    "Fingerprint",
    "RateLimiter",
    "StormControl",
    "fingerprint",
    "summary_count",
]

Fingerprint = tuple[str, str | None, str | None, str | None, str | None]
"""The fields that make two events "the same": type, deployment, guard, metric and title."""

MAX_FINGERPRINTS: Final = 10_000
"""The maximum number of fingerprints tracked at once; events of others are not coalesced."""

# The summary's message starts with this sentence, so that a reader and a program can both
# recover how many repeats it stands for.
_SUMMARY_PREFIX: Final = "Repeated {count:,} more times in the last {seconds:,} s"
_SUMMARY_PATTERN: Final = re.compile(r"^Repeated ([0-9,]+) more times in the last [0-9,]+ s")


class Admission(enum.Enum):
    """The decision `StormControl.admit` makes for one event."""

    SEND = "send"
    """The event is the first of its window, or is not coalesced: send it."""
    COALESCED = "coalesced"
    """The event repeats one sent earlier in this window: it is counted, not sent."""


def fingerprint(event: ModerationEvent) -> Fingerprint:
    """Return the fields that decide whether two events are repeats of each other."""
    return (
        event.event_type.value,
        event.deployment_id,
        event.guard_name,
        event.metric_name,
        event.title,
    )


def summary_count(message: str | None) -> int | None:
    """Return how many repeats a summary event stands for, or None if `message` is no summary."""
    if message is None:
        return None
    match = _SUMMARY_PATTERN.match(message)
    if match is None:
        return None
    return int(match.group(1).replace(",", ""))


@dataclasses.dataclass
class _Window:
    started_at: float
    ends_at: float
    repeats: int = 0
    last: ModerationEvent | None = None


class StormControl:
    """Coalesce repeats of an event within a window; safe to call from any thread.

    Args:
        window: Seconds during which repeats are counted instead of sent; 0 sends every event.
        clock: Returns monotonic seconds; tests pass a fake one.
        max_fingerprints: The maximum number of fingerprints tracked at once.
    """

    def __init__(
        self,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_fingerprints: int = MAX_FINGERPRINTS,
    ) -> None:
        self._window = window
        self._clock = clock
        self._max_fingerprints = max_fingerprints
        self._lock = threading.Lock()
        self._windows: dict[Fingerprint, _Window] = {}
        # Window ends in time order. An entry whose window has since moved is stale and skipped.
        self._deadlines: list[tuple[float, int, Fingerprint]] = []
        self._sequence = 0
        self._ready: list[ModerationEvent] = []

    @property
    def window(self) -> float:
        """Seconds during which repeats of an event are counted instead of sent."""
        return self._window

    def set_window(self, window: float) -> None:
        """Use `window` for windows opened from now on; open windows keep their end."""
        with self._lock:
            self._window = window

    def admit(self, event: ModerationEvent) -> Admission:
        """Decide whether to send `event` now or count it as a repeat."""
        if self._window <= 0:
            return Admission.SEND
        key = fingerprint(event)
        with self._lock:
            now = self._clock()
            window = self._windows.get(key)
            if window is not None and now >= window.ends_at:
                window = self._close(key, window, now)
            if window is not None:
                window.repeats += 1
                window.last = event
                return Admission.COALESCED
            if len(self._windows) < self._max_fingerprints:
                self._open(key, now)
            return Admission.SEND

    def due_summaries(self) -> list[ModerationEvent]:
        """Close the windows that have ended and return the summaries of their repeats."""
        with self._lock:
            now = self._clock()
            while self._deadlines and self._deadlines[0][0] <= now:
                ends_at, _, key = heapq.heappop(self._deadlines)
                window = self._windows.get(key)
                if window is not None and window.ends_at == ends_at:
                    self._close(key, window, now)
            return self._take_ready()

    def pending_summaries(self) -> list[ModerationEvent]:
        """Return summaries of every open window's repeats now, as `flush()` needs.

        The windows stay open with their repeats reset to zero, so further repeats are still
        counted rather than sent.
        """
        with self._lock:
            now = self._clock()
            for window in self._windows.values():
                if window.repeats:
                    self._ready.append(_summarize(window, now))
                    window.started_at = now
                    window.repeats = 0
                    window.last = None
            return self._take_ready()

    def next_deadline(self) -> float | None:
        """Return the clock time when the next window closes, or None when none is open."""
        with self._lock:
            return self._deadlines[0][0] if self._deadlines else None

    def _open(self, key: Fingerprint, now: float) -> _Window:
        window = _Window(started_at=now, ends_at=now + self._window)
        self._windows[key] = window
        self._sequence += 1
        heapq.heappush(self._deadlines, (window.ends_at, self._sequence, key))
        return window

    def _close(self, key: Fingerprint, window: _Window, now: float) -> _Window | None:
        """End `window`; when it had repeats, queue their summary and open the next window."""
        del self._windows[key]
        if not window.repeats:
            return None
        self._ready.append(_summarize(window, now))
        return self._open(key, now)

    def _take_ready(self) -> list[ModerationEvent]:
        ready, self._ready = self._ready, []
        return ready


def _summarize(window: _Window, now: float) -> ModerationEvent:
    last = window.last
    assert last is not None  # a window with repeats always contains the latest one
    seconds = max(1, round(now - window.started_at))
    prefix = _SUMMARY_PREFIX.format(count=window.repeats, seconds=seconds)
    if last.message:
        message = truncate(f"{prefix}; the last message was: {last.message}", MAX_MESSAGE_LENGTH)
    else:
        message = f"{prefix}."
    return dataclasses.replace(last, message=message)


class RateLimiter:
    """A token bucket that allows `per_minute` events a minute, in bursts of up to as many.

    Args:
        per_minute: Tokens added per minute, which is also the bucket's size.
        clock: Returns monotonic seconds; tests pass a fake one.
    """

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._capacity = float(per_minute)
        self._tokens = float(per_minute)
        self._updated_at = clock()

    def set_rate(self, per_minute: int) -> None:
        """Change the rate; tokens already saved above the new size are dropped."""
        with self._lock:
            self._refill()
            self._capacity = float(per_minute)
            self._tokens = min(self._tokens, self._capacity)

    def try_acquire(self) -> bool:
        """Take one token if there is one, and return whether there was."""
        with self._lock:
            self._refill()
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    def seconds_until_available(self) -> float:
        """Return how long until a token is available; 0 when one is available now."""
        with self._lock:
            self._refill()
            missing = 1 - self._tokens
            return max(0.0, missing * 60.0 / self._capacity)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated_at)
        self._updated_at = now
        self._tokens = min(self._capacity, self._tokens + elapsed * self._capacity / 60.0)
