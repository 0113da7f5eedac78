"""Counters of what happened to events, and rate-limited warnings about losses."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Final

__all__ = ["DROP_REASONS", "LogThrottle", "count", "count_drop", "reset_counters", "stats"]

logger = logging.getLogger("mlops_guard_events")

# Every reason an event can be lost. Counted as "dropped_<reason>".
DROP_REASONS: Final = (
    "queue_full",  # the queue was full and the spool could not take the event either
    "spool_full",  # the spool reached its size limit and evicted its oldest events
    "spool_error",  # the spool could not be written
    "spool_corrupt",  # a spooled line was corrupt or cut off by a crash, so it was skipped
    "rejected",  # the server rejected the event for good
    "before_send",  # the before_send hook returned None or raised
    "shutdown",  # the worker stopped before the event could be sent or spooled
    "internal_error",  # a bug in this library, logged with its traceback
)

WARNING_INTERVAL: Final = 60.0
"""Seconds between two warnings about dropped events."""

_lock = threading.Lock()
_counters: Counter[str] = Counter()
_last_warning = -WARNING_INTERVAL
_clock: Callable[[], float] = time.monotonic


def count(name: str, amount: int = 1) -> None:
    """Add `amount` to the counter `name`."""
    with _lock:
        _counters[name] += amount


def count_drop(reason: str, amount: int = 1, *, detail: str = "") -> None:
    """Count `amount` lost events and warn, at most once a minute, that events are being lost."""
    global _last_warning
    if reason not in DROP_REASONS:
        raise ValueError(
            f"invalid drop reason {reason!r}: expected one of {', '.join(DROP_REASONS)}"
        )
    with _lock:
        _counters[f"dropped_{reason}"] += amount
        now = _clock()
        due = now - _last_warning >= WARNING_INTERVAL
        if due:
            _last_warning = now
            totals = {key: value for key, value in _counters.items() if key.startswith("dropped_")}
    if due:
        logger.warning(
            "moderation events were dropped (%s): %d now for %s%s; totals so far %s",
            "see mlops_guard_events.stats()",
            amount,
            reason,
            f" ({detail})" if detail else "",
            totals,
        )


def stats() -> dict[str, int]:
    """Return a snapshot of the counters.

    Keys: `submitted`, `delivered`, `logged` (written to the local event log), `coalesced`,
    `summaries` (summary events sent in place of coalesced repeats), `retried`, `spooled`,
    `replayed`, `rejected`, `reporting_errors` (failures inside the library, caught at its
    boundary), and `dropped_<reason>` for each reason in `DROP_REASONS`.
    Every key is present, zero when nothing happened.
    """
    with _lock:
        snapshot = dict(_counters)
    names = (
        "submitted",
        "delivered",
        "logged",
        "coalesced",
        "summaries",
        "retried",
        "spooled",
        "replayed",
        "rejected",
        "reporting_errors",
        *(f"dropped_{reason}" for reason in DROP_REASONS),
    )
    return {name: snapshot.get(name, 0) for name in names} | snapshot


def reset_counters() -> None:
    """Set every counter to zero and re-create the lock (also used in a forked child)."""
    global _lock, _counters, _last_warning
    _lock = threading.Lock()
    _counters = Counter()
    _last_warning = -WARNING_INTERVAL


class LogThrottle:
    """A limit of one log record per key per interval, so a repeated failure cannot flood logs."""

    def __init__(self, interval: float = WARNING_INTERVAL) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        _throttles.add(self)

    def allow(self, key: str) -> bool:
        """Return whether a record for `key` may be logged now, and if so, start a new interval."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return False
            self._last[key] = now
            return True

    def reset(self) -> None:
        """Forget every key, so the next record of each is logged; also re-create the lock."""
        self._last = {}
        self._lock = threading.Lock()


_throttles: weakref.WeakSet[LogThrottle] = weakref.WeakSet()


def _reset_throttles_after_fork() -> None:
    # A parent thread may have held a throttle's lock at the fork; the child needs new ones.
    for throttle in list(_throttles):
        throttle.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_throttles_after_fork)
