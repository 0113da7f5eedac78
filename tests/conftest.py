"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlops_guard_events._receiver import RemoteEventsReceiver


@pytest.fixture
def receiver() -> Iterator[RemoteEventsReceiver]:
    """Yield a running receiver on a free 127.0.0.1 port, with no token and no faults."""
    with RemoteEventsReceiver() as running:
        yield running
