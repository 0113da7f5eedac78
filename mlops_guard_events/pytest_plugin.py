"""The pytest plugin, registered through the `pytest11` entry point on install.

Fixtures:
    captured_events: Every moderation event reported during the test, captured in memory;
        nothing is sent or written.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import CapturedEvents, capture_events


@pytest.fixture
def captured_events() -> Iterator[CapturedEvents]:
    """Capture the moderation events reported during one test."""
    with capture_events() as captured:
        yield captured
