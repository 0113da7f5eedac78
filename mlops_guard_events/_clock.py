"""The library's source of time, replaceable as a whole so tests never really wait.

Modules that stamp events or measure intervals read the time through `wall_time()` and
`monotonic()` here instead of calling `datetime.now` or `time.monotonic` themselves. A test
installs another `ClockSource` (such as `mlops_guard_events.testing.FakeClock`) and every one of
those readings follows it.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "ClockSource", "SystemClock", "install", "monotonic", "wall_time"]


class ClockSource(Protocol):
    """A source of the current wall-clock time and of a monotonic time."""

    def now(self) -> datetime:
        """Return the current wall-clock time as an aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Return seconds from an arbitrary origin. The value never decreases."""
        ...


class SystemClock:
    """The operating system's clocks: `datetime.now(timezone.utc)` and `time.monotonic()`."""

    def now(self) -> datetime:
        """Return the current wall-clock time as an aware UTC datetime."""
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        """Return `time.monotonic()`."""
        return time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()

_source: ClockSource = SYSTEM_CLOCK
_install_lock = threading.Lock()


def _reset_lock_after_fork() -> None:
    # A fork while another thread installed a clock would leave the lock held in the child.
    global _install_lock
    _install_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


def wall_time() -> datetime:
    """Return the current wall-clock time, as an aware UTC datetime, from the installed source."""
    return _source.now()


def monotonic() -> float:
    """Return the installed source's monotonic time in seconds."""
    return _source.monotonic()


def install(source: ClockSource) -> ClockSource:
    """Make `source` the clock of the whole process and return the source it replaces.

    Restore the previous source by installing the returned one again.

    Raises:
        TypeError: `source` lacks a callable `now` or `monotonic`.
    """
    for method in ("now", "monotonic"):
        if not callable(getattr(source, method, None)):
            raise TypeError(
                f"invalid clock source {source!r}: it has no callable {method}(); pass an object"
                " with now() -> datetime and monotonic() -> float, such as"
                " mlops_guard_events.testing.FakeClock()"
            )

    global _source
    with _install_lock:
        previous = _source
        _source = source
    return previous
