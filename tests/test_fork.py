"""Forked children get their own worker, locks and counters, and never deadlock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import mlops_guard_events
from mlops_guard_events import _config, _dispatch, _stats
from mlops_guard_events._event import ModerationEventType
from mlops_guard_events._receiver import RemoteEventsReceiver
from mlops_guard_events.testing import capture_events

pytestmark = [
    pytest.mark.usefixtures("fresh_worker"),
    # Python 3.12 and later warn when a process with threads forks, which is the point here.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

RUNTIME = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR


def report(title: str) -> bool:
    return _dispatch.report_automatic(RUNTIME, title=title, message="boom", guard_name="toxicity")


def wait_for_exit(pid: int, timeout: float) -> int | None:
    """Return the exit code of child `pid`, or None after killing it when `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def report_in_child(title: str) -> None:
    """Run in a forked child: report, flush, and exit with 0 only if the event was delivered."""
    code = 1
    try:
        report(title)
        pending = mlops_guard_events.flush(timeout=20)
        code = 0 if pending == 0 and _stats.stats()["delivered"] >= 1 else 2
    finally:
        os._exit(code)


def test_fork_while_reporting_never_deadlocks(receiver: RemoteEventsReceiver) -> None:
    # A small queue makes the reporting thread spool often, so forks land while it holds the
    # queue's, the storm control's and the spool's locks.
    _config.configure(endpoint=receiver.endpoint, queue_size=10, coalesce_window=0)
    stop = threading.Event()

    def hammer() -> None:
        for number in range(200_000):
            if stop.is_set():
                return
            report(f"parent {number % 1000}")

    reporter = threading.Thread(target=hammer, daemon=True)
    reporter.start()
    children = []
    try:
        for attempt in range(5):
            time.sleep(0.02)
            pid = os.fork()
            if pid == 0:
                report_in_child(f"child {attempt}")
            children.append(pid)
    finally:
        stop.set()
        reporter.join(timeout=30)

    exit_codes = [wait_for_exit(pid, timeout=30) for pid in children]
    assert exit_codes == [0, 0, 0, 0, 0]
    titles = {event["title"] for event in receiver.events()}
    assert {f"child {attempt}" for attempt in range(5)} <= titles


def test_fork_while_locks_are_held(receiver: RemoteEventsReceiver) -> None:
    holding = threading.Event()
    release = threading.Event()

    def hold_locks() -> None:
        # As if another thread were inside configure() and capture_events() when the fork
        # happens: the child inherits both locks held by a thread it does not have.
        with _config._lock, _dispatch._sinks_lock:
            holding.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold_locks, daemon=True)
    holder.start()
    assert holding.wait(timeout=10)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _config.configure(endpoint=receiver.endpoint)
            with capture_events() as captured:
                report("captured in the child")
            code = 0 if len(captured) == 1 else 2
        finally:
            os._exit(code)
    release.set()
    holder.join(timeout=30)
    assert wait_for_exit(pid, timeout=30) == 0


def test_child_starts_with_fresh_counters(receiver: RemoteEventsReceiver) -> None:
    _config.configure(endpoint=receiver.endpoint)
    for number in range(3):
        report(f"parent {number}")
    mlops_guard_events.flush(timeout=10)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if _stats.stats()["submitted"] == 0 else 2
        finally:
            os._exit(code)
    assert wait_for_exit(pid, timeout=30) == 0
    assert _stats.stats()["submitted"] == 3


_IMPORT_RACE = """
    import json, os, sys, time
    import mlops_guard_events
    from mlops_guard_events import _dispatch, _stats
    from mlops_guard_events._event import ModerationEventType

    RUNTIME = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR
    assert "requests" not in sys.modules
    mlops_guard_events.configure(endpoint=sys.argv[1])
    # The first event starts the worker thread, which imports requests to send it; the forks
    # below land before, during and after that import.
    _dispatch.report_automatic(RUNTIME, title="parent", message=None)
    children = []
    for attempt in range(8):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                import requests

                requests.Session  # a half-initialized module would lack it
                _dispatch.report_automatic(RUNTIME, title=f"child {attempt}", message=None)
                delivered = mlops_guard_events.flush(timeout=20) == 0
                code = 0 if delivered and _stats.stats()["delivered"] >= 1 else 2
            finally:
                os._exit(code)
        children.append(pid)
        time.sleep(0.015)

    codes = []
    deadline = time.monotonic() + 60
    for pid in children:
        while True:
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                codes.append(os.waitstatus_to_exitcode(status))
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                codes.append(None)
                break
            time.sleep(0.01)
    mlops_guard_events.flush(timeout=20)
    print(json.dumps(codes))
"""


def test_fork_during_requests_import(receiver: RemoteEventsReceiver) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_IMPORT_RACE), receiver.endpoint],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [0] * 8
    titles = sorted(event["title"] for event in receiver.events())
    assert titles == sorted(["parent", *(f"child {attempt}" for attempt in range(8))])


_FORK_WITHOUT_HOOKS = """
    import ctypes, os, sys, time
    import mlops_guard_events
    from mlops_guard_events import _dispatch, _stats
    from mlops_guard_events._event import ModerationEventType

    RUNTIME = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR
    # A fork from C also skips CPython's own repair of the interpreter's locks, so a thread
    # that is running at that moment can hang the child for reasons outside this library.
    # Without coalescing windows, the idle worker blocks with no timeout and takes no such lock.
    mlops_guard_events.configure(endpoint=sys.argv[1], coalesce_window=0)
    _dispatch.report_automatic(RUNTIME, title="parent", message=None)
    mlops_guard_events.flush(timeout=20)
    time.sleep(0.2)
    # fork() called from C, as some servers do, skips the hooks of os.register_at_fork. PyDLL
    # keeps the GIL across the call, so the child holds it.
    pid = ctypes.PyDLL(None).fork()
    if pid == 0:
        code = 1
        try:
            _dispatch.report_automatic(RUNTIME, title="child", message=None)
            delivered = mlops_guard_events.flush(timeout=20) == 0
            code = 0 if delivered and _stats.stats()["delivered"] == 1 else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    while not (finished := os.waitpid(pid, os.WNOHANG))[0]:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            sys.exit("the child did not finish within 30 s")
        time.sleep(0.01)
    print(os.waitstatus_to_exitcode(finished[1]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="calls the C library's fork")
def test_fork_without_hooks_gets_fresh_worker(receiver: RemoteEventsReceiver) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_FORK_WITHOUT_HOOKS), receiver.endpoint],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
    assert sorted(event["title"] for event in receiver.events()) == ["child", "parent"]
