"""Files on disk: private modes, planted symbolic links, corrupt lines and unknown formats.

These tests go through the library as users run it: decorators, the worker, `replay_spool` and
the command line. The units have their own tests, which are not repeated here:

- tests/test_spool.py: modes under any umask, a loose spool directory tightened, a symlinked
  spool directory, and corrupt or newer-format segments;
- tests/test_transport.py and tests/test_cli.py: the event log's modes, planted links and
  corrupt lines;
- tests/test_report.py: the explicit call on a planted event log link.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_guard_events import (
    _stats,
    _worker,
    cli,
    configure,
    flush,
    guard_events,
    replay_spool,
    shutdown,
    stats,
)
from mlops_guard_events._receiver import Faults, RemoteEventsReceiver
from mlops_guard_events._spool import Spool

pytestmark = pytest.mark.usefixtures("fresh_worker")

DELIVERY_TIMEOUT = 30.0


@pytest.fixture(autouse=True)
def private_log_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the worker a fresh log limit, so this module's warnings do not silence others'."""
    monkeypatch.setattr(_worker, "_throttle", _stats.LogThrottle())


def event_body(number: int) -> dict[str, object]:
    return {
        "eventType": "moderationModelRuntimeError",
        "timestamp": "2026-01-31T12:00:00.000000+00:00",
        "title": f"Guard failed {number}",
        "moderationData": {"guardName": "toxicity", "metricName": ""},
    }


def report_failure(title: str = "model unavailable") -> None:
    @guard_events("Toxicity", fallback=None)
    def check() -> None:
        raise RuntimeError(title)

    check()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run the test with umask 0, so only the library's own modes keep files private."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


# Modes of the files the library creates by default.


@pytest.mark.usefixtures("open_umask")
def test_event_log_private_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = tmp_path / "state"
    monkeypatch.setenv("MLOPS_GUARD_EVENTS_STATE_DIR", str(state_dir))
    configure()

    report_failure()
    assert flush(DELIVERY_TIMEOUT) == 0

    assert mode(state_dir) == 0o700
    assert mode(state_dir / "events.jsonl") == 0o600


@pytest.mark.usefixtures("open_umask")
def test_spool_private_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = tmp_path / "state"
    monkeypatch.setenv("MLOPS_GUARD_EVENTS_STATE_DIR", str(state_dir))
    with RemoteEventsReceiver(faults=Faults(status=503)) as receiver:
        configure(endpoint=receiver.endpoint, max_retries=0)
        report_failure()
        receiver.wait_for_requests(1, timeout_seconds=DELIVERY_TIMEOUT)
        assert shutdown(DELIVERY_TIMEOUT) == 0

    segments = list((state_dir / "spool").iterdir())
    assert len(segments) == 1
    assert mode(state_dir) == 0o700
    assert mode(state_dir / "spool") == 0o700
    assert mode(segments[0]) == 0o600


# Planted symbolic links.


def test_planted_segment_link_ignored(tmp_path: Path, receiver: RemoteEventsReceiver) -> None:
    settings = configure(endpoint=receiver.endpoint, state_dir=tmp_path / "state")
    spool = Spool(settings.spool_dir, settings.spool_max_bytes)
    spool.append(event_body(1))
    spool.seal()
    # Another user's file, laid out as a segment, and a link to it among the segments.
    target = tmp_path / "victim.jsonl"
    target.write_bytes(b'{"format": 1}\n' + b'{"eventType": "moderationModelConfigError"}\n')
    original = target.read_bytes()
    link = settings.spool_dir / "00000000000000000001-1-000001.jsonl"
    link.symlink_to(target)

    delivered = replay_spool(timeout=DELIVERY_TIMEOUT)

    assert delivered == 1
    assert [event["title"] for event in receiver.events()] == ["Guard failed 1"]
    assert target.read_bytes() == original
    assert link.is_symlink()


def test_planted_event_log_link_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("unchanged\n")
    log_path = tmp_path / "events.jsonl"
    log_path.symlink_to(target)
    configure(event_log_path=log_path, state_dir=tmp_path / "state", max_retries=0)

    report_failure()
    assert shutdown(DELIVERY_TIMEOUT) == 0

    assert target.read_text() == "unchanged\n"
    assert log_path.is_symlink()
    assert stats()["spooled"] == 1
    assert stats()["logged"] == 0


# Corrupt lines and unknown formats on replay.


def test_corrupt_spool_line_skipped_on_replay(
    tmp_path: Path, receiver: RemoteEventsReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    settings = configure(endpoint=receiver.endpoint, state_dir=tmp_path / "state")
    spool = Spool(settings.spool_dir, settings.spool_max_bytes)
    spool.append(event_body(1))
    spool.seal()
    (segment,) = settings.spool_dir.iterdir()
    with segment.open("ab") as file:
        file.write(b"\x00\xff not json\n")
        file.write(b'{"eventType": "moderationModelRuntimeError", "timest')  # cut off by a crash
    later = Spool(settings.spool_dir, settings.spool_max_bytes)
    later.append(event_body(2))
    later.seal()
    caplog.set_level(logging.WARNING, logger="mlops_guard_events")

    delivered = replay_spool(timeout=DELIVERY_TIMEOUT)

    assert delivered == 2
    assert [event["title"] for event in receiver.events()] == ["Guard failed 1", "Guard failed 2"]
    assert stats()["dropped_spool_corrupt"] == 2
    assert "spool_corrupt" in caplog.text
    assert list(settings.spool_dir.iterdir()) == []


def test_newer_spool_format_left_alone(
    tmp_path: Path,
    receiver: RemoteEventsReceiver,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state_dir = tmp_path / "state"
    settings = configure(endpoint=receiver.endpoint, state_dir=state_dir)
    spool = Spool(settings.spool_dir, settings.spool_max_bytes)
    spool.append(event_body(1))
    spool.seal()
    future = settings.spool_dir / "00000000000000000001-1-000001.jsonl"
    future.write_bytes(b'{"format": 2}\n{"kind": "an event of the future"}\n')
    caplog.set_level(logging.WARNING, logger="mlops_guard_events")

    delivered = replay_spool(timeout=DELIVERY_TIMEOUT)

    assert delivered == 1
    assert future.read_bytes() == b'{"format": 2}\n{"kind": "an event of the future"}\n'
    assert "newer than this library's 1" in caplog.text
    assert "upgrade mlops_guard_events" in caplog.text

    monkeypatch.setenv("MLOPS_GUARD_EVENTS_STATE_DIR", str(state_dir))
    assert cli.main(["spool", "show"]) == cli.EXIT_OK
    assert "1 segment file with an unknown format" in capsys.readouterr().out
