"""The durable spool: segments on disk, claims for replay, the size bound and damaged files."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_guard_events import _stats
from mlops_guard_events._spool import Spool, encode_body
from mlops_guard_events.exceptions import SpoolError


@pytest.fixture(autouse=True)
def fresh_counters() -> Iterator[None]:
    _stats.reset_counters()
    yield
    _stats.reset_counters()


def body(number: int, message: str = "boom") -> dict[str, Any]:
    return {
        "eventType": "moderationModelRuntimeError",
        "timestamp": f"2026-01-01T00:00:{number % 60:02d}.000000+00:00",
        "title": f"event {number}",
        "message": message,
        "moderationData": {"guardName": "toxicity", "metricName": ""},
    }


def replay_all(spool: Spool) -> list[dict[str, Any]]:
    """Claim every segment in turn, finish it, and return the bodies in replay order."""
    bodies: list[dict[str, Any]] = []
    while (segment := spool.claim()) is not None:
        bodies.extend(segment.bodies)
        spool.release(segment, len(segment.bodies))
    return bodies


def segment_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.iterdir() if path.suffix != ".tmp")


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_append_then_replay(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1024 * 1024)
    for number in range(3):
        spool.append(body(number))
    assert replay_all(spool) == [body(0), body(1), body(2)]
    assert _stats.stats()["spooled"] == 3
    assert segment_files(tmp_path / "spool") == []


def test_replay_of_empty_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1024 * 1024)
    assert spool.claim() is None
    assert not (tmp_path / "spool").exists()


def test_files_are_private(tmp_path: Path) -> None:
    previous_umask = os.umask(0)
    try:
        spool = Spool(tmp_path / "state" / "spool", 1024 * 1024)
        spool.append(body(1))
    finally:
        os.umask(previous_umask)
    directory = tmp_path / "state" / "spool"
    (segment,) = segment_files(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600


def test_loose_directory_is_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    Spool(directory, 1024 * 1024).append(body(1))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_symlinked_directory_is_rejected(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "spool").symlink_to(elsewhere)
    spool = Spool(tmp_path / "spool", 1024 * 1024)
    with pytest.raises(SpoolError, match="not a directory"):
        spool.append(body(1))
    assert list(elsewhere.iterdir()) == []


def test_segment_starts_with_header(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1024 * 1024)
    spool.append(body(1))
    spool.seal()
    (segment,) = segment_files(tmp_path / "spool")
    lines = segment.read_bytes().splitlines()
    assert json.loads(lines[0]) == {"format": 1}
    assert json.loads(lines[1]) == body(1)
    assert segment.suffix == ".jsonl"


def test_corrupt_lines_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    segment = directory / "00000000000000000001-1-000001.jsonl"
    segment.write_bytes(
        b'{"format": 1}\n'
        + encode_body(body(1))
        + b"not json at all\n"
        + b'["a list"]\n'
        + encode_body(body(2))
        + b'{"eventType": "moderationModel'  # cut off by a crash
    )
    caplog.set_level(logging.WARNING, logger="mlops_guard_events")

    assert replay_all(Spool(directory, 1024 * 1024)) == [body(1), body(2)]
    assert _stats.stats()["dropped_spool_corrupt"] == 3
    assert any("spool_corrupt" in record.getMessage() for record in caplog.records)


def test_newer_format_is_left_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    segment = directory / "00000000000000000001-1-000001.jsonl"
    segment.write_bytes(b'{"format": 2}\n{"whatever": "the future holds"}\n')
    caplog.set_level(logging.WARNING, logger="mlops_guard_events")

    spool = Spool(directory, 1024 * 1024)
    assert spool.claim() is None
    assert segment.exists()
    assert any("format 2" in record.getMessage() for record in caplog.records)
    assert spool.summary().unreadable_segments == 1


def test_oldest_events_are_evicted(tmp_path: Path) -> None:
    line_size = len(encode_body(body(0)))
    max_bytes = 40 * line_size
    spool = Spool(tmp_path / "spool", max_bytes)
    for number in range(200):
        spool.append(body(number))

    size = sum(path.stat().st_size for path in segment_files(tmp_path / "spool"))
    assert size <= max_bytes
    kept = replay_all(spool)
    dropped = _stats.stats()["dropped_spool_full"]
    assert dropped + len(kept) == 200
    assert kept == [body(number) for number in range(200 - len(kept), 200)]


def test_event_larger_than_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 100)
    with pytest.raises(SpoolError, match="raise spool_max_bytes"):
        spool.append(body(1, message="x" * 200))
    assert _stats.stats()["spooled"] == 0


def test_partial_release_keeps_rest_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1024 * 1024)
    for number in range(5):
        spool.append(body(number))
    segment = spool.claim()
    assert segment is not None
    spool.append(body(5))  # newer than the claimed segment
    spool.release(segment, 2)
    assert replay_all(spool) == [body(2), body(3), body(4), body(5)]


def test_untouched_release_reseals(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1024 * 1024)
    spool.append(body(1))
    segment = spool.claim()
    assert segment is not None
    spool.release(segment, 0)
    (sealed,) = segment_files(tmp_path / "spool")
    assert sealed.name == segment.path.with_suffix(".jsonl").name


def test_claimed_segment_is_exclusive(tmp_path: Path) -> None:
    first = Spool(tmp_path / "spool", 1024 * 1024)
    second = Spool(tmp_path / "spool", 1024 * 1024)
    first.append(body(1))
    first.seal()
    segment = first.claim()
    assert segment is not None
    assert second.claim() is None
    first.release(segment, 1)


def test_active_segment_of_live_writer_is_skipped(tmp_path: Path) -> None:
    writer = Spool(tmp_path / "spool", 1024 * 1024)
    reader = Spool(tmp_path / "spool", 1024 * 1024)
    writer.append(body(1))
    assert reader.claim() is None
    writer.seal()
    assert replay_all(reader) == [body(1)]


def test_concurrent_appends_stay_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 64 * 1024 * 1024)

    def append_many(offset: int) -> None:
        for number in range(offset, offset + 500):
            spool.append(body(number, message="m" * (number % 300)))

    threads = [threading.Thread(target=append_many, args=(offset,)) for offset in (0, 500, 1000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    replayed = replay_all(spool)
    assert sorted(item["title"] for item in replayed) == sorted(
        f"event {number}" for number in range(1500)
    )
    assert _stats.stats()["dropped_spool_corrupt"] == 0


def test_summary_and_purge(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1024 * 1024)
    for number in range(4):
        spool.append(body(number))
    summary = spool.summary()
    assert summary.events == 4
    assert summary.segments == 1
    assert summary.oldest_timestamp == body(0)["timestamp"]
    assert summary.size_bytes > 0
    assert spool.purge() == 4
    assert spool.summary().events == 0


_CLAIM_ALL = """
    import json, sys
    from pathlib import Path
    from mlops_guard_events._spool import Spool

    spool = Spool(Path(sys.argv[1]), 64 * 1024 * 1024)
    titles = []
    while (segment := spool.claim()) is not None:
        titles.extend(item["title"] for item in segment.bodies)
        spool.release(segment, len(segment.bodies))
    print(json.dumps(titles))
"""


def test_two_processes_never_share_segments(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = Spool(directory, 64 * 1024 * 1024)
    for number in range(2000):
        spool.append(body(number))
        if number % 50 == 49:  # many small segments, so both processes find work at once
            spool.seal()

    command = [sys.executable, "-c", textwrap.dedent(_CLAIM_ALL), str(directory)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    first, second = (json.loads(output) for output in outputs)

    assert set(first).isdisjoint(second)
    assert sorted(first + second) == sorted(f"event {number}" for number in range(2000))


def test_dead_writers_segment_is_taken_over(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    result = run_python(
        """
        import os, sys
        from pathlib import Path
        from mlops_guard_events._spool import Spool

        spool = Spool(Path(sys.argv[1]), 1024 * 1024)
        for number in range(3):
            spool.append({"eventType": "moderationModelRuntimeError", "title": str(number)})
        os._exit(0)  # no seal: the segment stays ".active"
        """,
        str(directory),
    )
    assert result.returncode == 0, result.stderr
    assert [path.suffix for path in segment_files(directory)] == [".active"]
    titles = [item["title"] for item in replay_all(Spool(directory, 1024 * 1024))]
    assert titles == ["0", "1", "2"]


def test_dead_replayers_claim_is_taken_over(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = Spool(directory, 1024 * 1024)
    spool.append(body(1))
    spool.seal()
    result = run_python(
        """
        import os, sys
        from pathlib import Path
        from mlops_guard_events._spool import Spool

        assert Spool(Path(sys.argv[1]), 1024 * 1024).claim() is not None
        os._exit(0)  # dies while replaying
        """,
        str(directory),
    )
    assert result.returncode == 0, result.stderr
    assert [path.suffix for path in segment_files(directory)] == [".claimed"]
    assert replay_all(spool) == [body(1)]


# Python 3.12 and later warn when a process with threads forks; threads of other tests may run.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_keeps_parents_lock(tmp_path: Path) -> None:
    writer = Spool(tmp_path / "spool", 1024 * 1024)
    writer.append(body(1))
    pid = os.fork()
    if pid == 0:  # the child closes its copies and leaves
        writer.forget_after_fork()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert Spool(tmp_path / "spool", 1024 * 1024).claim() is None
    writer.append(body(2))
    assert replay_all(writer) == [body(1), body(2)]


@settings(max_examples=25, deadline=None)
@given(
    operations=st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(min_value=1, max_value=5)),
            st.tuples(st.just("replay"), st.integers(min_value=0, max_value=6)),
        ),
        max_size=30,
    )
)
def test_replay_never_loses_or_repeats(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, int]]
) -> None:
    spool = Spool(tmp_path_factory.mktemp("spool") / "spool", 64 * 1024 * 1024)
    appended: list[str] = []
    delivered: list[str] = []
    for operation, amount in operations:
        if operation == "append":
            for _ in range(amount):
                appended.append(f"event {len(appended)}")
                spool.append({"eventType": "moderationModelRuntimeError", "title": appended[-1]})
            continue
        segment = spool.claim()
        if segment is None:
            continue
        finished = min(amount, len(segment.bodies))
        delivered.extend(item["title"] for item in segment.bodies[:finished])
        spool.release(segment, finished)
    delivered.extend(item["title"] for item in replay_all(spool))
    assert delivered == appended
