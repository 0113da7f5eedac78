"""Helpers for testing code that reports moderation events.

`capture_events()` collects every event reported inside it, in memory, instead of delivering it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ._dispatch import pop_sink, push_sink
from ._event import ModerationEvent

__all__ = ["CapturedEvents", "capture_events"]


class CapturedEvents:
    """The events captured so far, in the order they were reported; safe to read from any thread."""

    def __init__(self) -> None:
        self._events: list[ModerationEvent] = []
        self._lock = threading.Lock()

    def append(self, event: ModerationEvent) -> None:
        """Add `event`; `capture_events` calls this for each reported event."""
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[ModerationEvent]:
        """A copy of the captured events."""
        with self._lock:
            return list(self._events)

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def __iter__(self) -> Iterator[ModerationEvent]:
        return iter(self.events)

    def __getitem__(self, index: int) -> ModerationEvent:
        with self._lock:
            return self._events[index]


@contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Capture every event reported in this process while the block runs; nothing is sent."""
    captured = CapturedEvents()
    push_sink(captured.append)
    try:
        yield captured
    finally:
        pop_sink(captured.append)
