"""Counters and the rate-limited warning about dropped events."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from mlops_guard_events import _stats


@pytest.fixture(autouse=True)
def fresh_counters() -> Iterator[None]:
    _stats.reset_counters()
    yield
    _stats.reset_counters()


def test_stats_lists_every_counter_at_zero() -> None:
    snapshot = _stats.stats()
    for name in ("delivered", "coalesced", "retried", "spooled", "replayed", "rejected"):
        assert snapshot[name] == 0
    for reason in _stats.DROP_REASONS:
        assert snapshot[f"dropped_{reason}"] == 0


def test_count_adds_up() -> None:
    _stats.count("delivered")
    _stats.count("delivered", 4)
    assert _stats.stats()["delivered"] == 5


def test_count_drop_rejects_unknown_reason() -> None:
    with pytest.raises(ValueError, match="invalid drop reason 'lost'"):
        _stats.count_drop("lost")


def test_drop_warning_once_per_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(_stats, "_clock", lambda: now[0])
    caplog.set_level(logging.WARNING, logger="mlops_guard_events")

    for _ in range(50):
        _stats.count_drop("queue_full")
    assert len(caplog.records) == 1
    assert "queue_full" in caplog.records[0].getMessage()

    now[0] += _stats.WARNING_INTERVAL
    _stats.count_drop("spool_full", 3)
    assert len(caplog.records) == 2
    assert _stats.stats()["dropped_queue_full"] == 50
    assert _stats.stats()["dropped_spool_full"] == 3


def test_log_throttle_once_per_key() -> None:
    throttle = _stats.LogThrottle(interval=60.0)

    assert throttle.allow("retry")
    assert not throttle.allow("retry")
    assert throttle.allow("offline")


def test_log_throttle_reset_forgets_keys() -> None:
    throttle = _stats.LogThrottle(interval=60.0)
    throttle.allow("retry")

    throttle.reset()

    assert throttle.allow("retry")
