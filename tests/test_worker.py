"""The background worker against a real loopback receiver: queue, retries, spool, lifecycle."""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import mlops_guard_events
from mlops_guard_events import _config, _dispatch, _stats, _worker
from mlops_guard_events._event import ModerationEvent, ModerationEventType
from mlops_guard_events._receiver import Faults, RemoteEventsReceiver
from mlops_guard_events._spool import Spool
from mlops_guard_events._storm import summary_count

pytestmark = pytest.mark.usefixtures("fresh_worker")

RUNTIME = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR


def report(title: str = "Guard failed", message: str = "boom") -> bool:
    return _dispatch.report_automatic(RUNTIME, title=title, message=message, guard_name="toxicity")


def spool_of(settings: _config.Settings) -> Spool:
    return Spool(settings.spool_dir, settings.spool_max_bytes)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` until it is true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def replays_counted() -> bool:
    """Whether every spooled event is counted as replayed; the count trails the server a bit."""
    counters = _stats.stats()
    return counters["replayed"] == counters["spooled"]


def run_python(
    code: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        check=False,
    )


def test_event_arrives_after_flush(receiver: RemoteEventsReceiver) -> None:
    _config.configure(endpoint=receiver.endpoint)
    assert report()
    assert mlops_guard_events.flush(timeout=10) == 0
    (event,) = receiver.events()
    assert event["title"] == "Guard failed"
    assert _stats.stats()["delivered"] == 1


def test_event_arrives_without_flush(receiver: RemoteEventsReceiver) -> None:
    _config.configure(endpoint=receiver.endpoint)
    report()
    assert len(receiver.wait_for_events(1, timeout_seconds=10)) == 1


def test_flush_without_worker_returns_zero() -> None:
    assert mlops_guard_events.flush(timeout=1) == 0


def test_shutdown_without_worker_returns_zero() -> None:
    assert mlops_guard_events.shutdown(timeout=1) == 0


def test_worker_thread_is_named_daemon(receiver: RemoteEventsReceiver) -> None:
    _config.configure(endpoint=receiver.endpoint)
    report()
    workers = [thread for thread in threading.enumerate() if thread.name == _worker.THREAD_NAME]
    assert len(workers) == 1
    assert workers[0].daemon


def test_flush_reports_pending_on_hang(receiver: RemoteEventsReceiver) -> None:
    receiver.set_faults(Faults(hang=True))
    _config.configure(endpoint=receiver.endpoint)
    for number in range(3):
        report(title=f"event {number}")
    assert mlops_guard_events.flush(timeout=0.5) == 3


def test_new_worker_after_shutdown(receiver: RemoteEventsReceiver) -> None:
    _config.configure(endpoint=receiver.endpoint)
    report(title="first")
    assert mlops_guard_events.shutdown(timeout=10) == 0
    report(title="second")
    assert mlops_guard_events.flush(timeout=10) == 0
    assert [event["title"] for event in receiver.events()] == ["first", "second"]


def test_configure_switches_endpoint(receiver: RemoteEventsReceiver) -> None:
    _config.configure(endpoint=receiver.endpoint)
    report(title="to the first")
    mlops_guard_events.flush(timeout=10)
    with RemoteEventsReceiver() as second:
        _config.configure(endpoint=second.endpoint)
        report(title="to the second")
        mlops_guard_events.flush(timeout=10)
        assert [event["title"] for event in second.events()] == ["to the second"]
    assert [event["title"] for event in receiver.events()] == ["to the first"]


def test_retryable_failure_is_retried(receiver: RemoteEventsReceiver) -> None:
    receiver.set_faults(Faults(fail_first=2, fail_first_status=503))
    _config.configure(endpoint=receiver.endpoint)
    report()
    assert mlops_guard_events.flush(timeout=30) == 0
    assert len(receiver.events()) == 1
    assert _stats.stats()["retried"] == 2
    assert _stats.stats()["spooled"] == 0


@pytest.mark.parametrize("status", [400, 422, 500])
def test_rejected_event_is_not_spooled(
    receiver: RemoteEventsReceiver, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    receiver.set_faults(Faults(status=status))
    caplog.set_level(logging.WARNING, logger="mlops_guard_events")
    _config.configure(endpoint=receiver.endpoint)
    report()
    assert mlops_guard_events.flush(timeout=10) == 0

    counters = _stats.stats()
    assert counters["rejected"] == 1
    assert counters["dropped_rejected"] == 1
    assert counters["spooled"] == 0
    assert len(receiver.requests()) == 1
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"injected fault: {status}" in message for message in messages)


def test_full_queue_spools_on_caller(receiver: RemoteEventsReceiver) -> None:
    receiver.set_faults(Faults(hang=True))
    _config.configure(endpoint=receiver.endpoint, queue_size=5)
    taken = [report(title=f"event {number}") for number in range(20)]

    assert all(taken)
    assert _worker.queue_high_water() <= 5
    counters = _stats.stats()
    assert counters["spooled"] >= 14
    assert counters["spooled"] + _worker.flush(timeout=0) == 20


def test_spooled_overflow_is_replayed(receiver: RemoteEventsReceiver) -> None:
    receiver.set_faults(Faults(latency_seconds=0.5))
    _config.configure(endpoint=receiver.endpoint, queue_size=2)
    for number in range(10):
        report(title=f"event {number}")
    receiver.set_faults(Faults())

    events = receiver.wait_for_events(10, timeout_seconds=30)
    assert sorted(event["title"] for event in events) == sorted(f"event {n}" for n in range(10))
    assert wait_until(replays_counted)


def test_over_cap_is_spooled_then_replayed(receiver: RemoteEventsReceiver) -> None:
    _config.configure(endpoint=receiver.endpoint, max_events_per_minute=60)
    for number in range(62):
        report(title=f"event {number}")

    events = receiver.wait_for_events(62, timeout_seconds=30)
    assert len({event["title"] for event in events}) == 62
    assert _stats.stats()["spooled"] >= 2
    assert wait_until(replays_counted)


def test_repeats_become_summary_without_flush(receiver: RemoteEventsReceiver) -> None:
    _config.configure(endpoint=receiver.endpoint, coalesce_window=0.5)
    for _ in range(5):
        report()
    events = receiver.wait_for_events(2, timeout_seconds=10)
    assert [summary_count(event.get("message")) for event in events] == [None, 4]
    assert _stats.stats()["summaries"] == 1


def test_event_log_without_endpoint(tmp_path: Path) -> None:
    log_path = tmp_path / "events.jsonl"
    _config.configure(event_log_path=log_path)
    report(title="logged")
    assert mlops_guard_events.flush(timeout=10) == 0
    lines = log_path.read_text().splitlines()
    assert [json.loads(line)["title"] for line in lines] == ["logged"]
    assert _stats.stats()["logged"] == 1


def test_submit_never_raises_when_spool_fails(
    receiver: RemoteEventsReceiver, tmp_path: Path
) -> None:
    receiver.set_faults(Faults(hang=True))
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    _config.configure(endpoint=receiver.endpoint, queue_size=1, state_dir=not_a_directory)
    results = [report(title=f"event {number}") for number in range(5)]

    assert results.count(False) >= 3
    assert _stats.stats()["dropped_queue_full"] == results.count(False)
    assert _stats.stats()["reporting_errors"] == 0


def test_submit_costs_microseconds(receiver: RemoteEventsReceiver) -> None:
    _config.configure(endpoint=receiver.endpoint)
    events = [
        ModerationEvent.create(RUNTIME, title=f"event {number}", message="boom")
        for number in range(1000)
    ]
    durations = []
    for event in events:
        started = time.perf_counter()
        _worker.submit(event)
        durations.append(time.perf_counter() - started)
    # A generous bound for a shared machine; a network wait would take milliseconds.
    assert statistics.median(durations) < 200e-6


def test_replay_spool_delivers(receiver: RemoteEventsReceiver) -> None:
    settings = _config.configure(endpoint=receiver.endpoint)
    spool = spool_of(settings)
    for number in range(5):
        spool.append(ModerationEvent.create(RUNTIME, title=f"spooled {number}").to_wire())
    spool.seal()

    assert mlops_guard_events.replay_spool(timeout=30) == 5
    assert [event["title"] for event in receiver.events()] == [f"spooled {n}" for n in range(5)]
    assert spool.summary().events == 0
    assert _stats.stats()["replayed"] == 5


def test_replay_spool_reports_progress(receiver: RemoteEventsReceiver) -> None:
    settings = _config.configure(endpoint=receiver.endpoint)
    spool = spool_of(settings)
    for number in range(3):
        spool.append(ModerationEvent.create(RUNTIME, title=f"first {number}").to_wire())
    spool.seal()
    for number in range(2):
        spool.append(ModerationEvent.create(RUNTIME, title=f"second {number}").to_wire())
    spool.seal()
    seen: list[int] = []

    assert mlops_guard_events.replay_spool(timeout=30, progress=seen.append) == 5
    assert seen == [1, 2, 3, 4, 5]


def test_replay_spool_keeps_undelivered(receiver: RemoteEventsReceiver) -> None:
    settings = _config.configure(endpoint=receiver.endpoint, max_retries=0)
    spool = spool_of(settings)
    for number in range(3):
        spool.append(ModerationEvent.create(RUNTIME, title=f"spooled {number}").to_wire())
    spool.seal()
    receiver.set_faults(Faults(status=503))

    assert mlops_guard_events.replay_spool(timeout=10) == 0
    assert spool.summary().events == 3


def test_replay_spool_drops_rejected(receiver: RemoteEventsReceiver) -> None:
    settings = _config.configure(endpoint=receiver.endpoint)
    spool = spool_of(settings)
    spool.append(ModerationEvent.create(RUNTIME, title="spooled").to_wire())
    spool.seal()
    receiver.set_faults(Faults(status=422))

    assert mlops_guard_events.replay_spool(timeout=10) == 0
    assert spool.summary().events == 0
    assert _stats.stats()["rejected"] == 1


def test_worker_replays_spool_at_start(receiver: RemoteEventsReceiver) -> None:
    settings = _config.configure(endpoint=receiver.endpoint)
    spool = spool_of(settings)
    spool.append(ModerationEvent.create(RUNTIME, title="left by another process").to_wire())
    spool.seal()
    report(title="fresh")
    events = receiver.wait_for_events(2, timeout_seconds=10)
    assert sorted(event["title"] for event in events) == ["fresh", "left by another process"]


_EXIT_SCRIPT = """
    import mlops_guard_events
    from mlops_guard_events import _dispatch
    from mlops_guard_events._event import ModerationEventType

    mlops_guard_events.configure(exit_flush_timeout={timeout})
    RUNTIME = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR
    for number in range(3):
        _dispatch.report_automatic(RUNTIME, title=f"exit {{number}}", message=None)
"""


def test_exit_flush_delivers(receiver: RemoteEventsReceiver, tmp_path: Path) -> None:
    env = {"DATAROBOT_ENDPOINT": receiver.endpoint, "MLOPS_GUARD_EVENTS_STATE_DIR": str(tmp_path)}
    result = run_python(_EXIT_SCRIPT.format(timeout=10), env)
    assert result.returncode == 0, result.stderr
    assert sorted(event["title"] for event in receiver.events()) == ["exit 0", "exit 1", "exit 2"]


def test_exit_spools_what_hangs(receiver: RemoteEventsReceiver, tmp_path: Path) -> None:
    receiver.set_faults(Faults(hang=True))
    env = {"DATAROBOT_ENDPOINT": receiver.endpoint, "MLOPS_GUARD_EVENTS_STATE_DIR": str(tmp_path)}
    started = time.monotonic()
    result = run_python(_EXIT_SCRIPT.format(timeout=1), env)
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert elapsed < 20  # the hanging request would hold the exit for the 5 s read timeout
    settings = _config.configure(state_dir=tmp_path)
    assert spool_of(settings).summary().events == 3
