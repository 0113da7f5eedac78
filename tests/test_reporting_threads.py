"""Decorated functions shared by threads, pickled, copied and run in other processes."""

from __future__ import annotations

import asyncio
import copy
import multiprocessing
import pickle
import threading
from typing import Any

import pytest

from mlops_guard_events import guard_events
from mlops_guard_events.testing import CapturedEvents, capture_events

# Seconds a child process may take; it normally needs well under one.
CHILD_TIMEOUT = 60


@guard_events(lambda text, *, fail: f"guard for {text}", fallback=lambda error: "fallback")
def classify(text: str, *, fail: bool) -> str:
    """Classify `text`; module level, so it pickles by name."""
    if fail:
        raise ValueError(f"could not classify {text}")
    return text.upper()


@guard_events("async classifier")
async def classify_async(text: str) -> str:
    return text.upper()


def run_in_child(results: Any, function: Any) -> None:
    """Call the decorated `function` in a child process and send back what happened."""
    with capture_events() as captured:
        values = [function("ok", fail=False), function("bad", fail=True)]
    results.put((values, [event.guard_name for event in captured]))


def test_threads_report_own_call(captured_events: CapturedEvents) -> None:
    thread_count = 16
    barrier = threading.Barrier(thread_count, timeout=30)
    results: dict[int, str] = {}

    def run(index: int) -> None:
        barrier.wait()
        results[index] = classify(f"text-{index}", fail=index % 2 == 1)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    for index in range(thread_count):
        assert results[index] == ("fallback" if index % 2 else f"TEXT-{index}")
    assert len(captured_events) == thread_count // 2
    for event in captured_events:
        text = (event.guard_name or "").removeprefix("guard for ")
        assert event.message is not None
        assert event.message.startswith(f"ValueError: could not classify {text}\n")


def test_pickle_by_qualified_name() -> None:
    assert pickle.loads(pickle.dumps(classify)) is classify


def test_pickle_coroutine_function() -> None:
    restored = pickle.loads(pickle.dumps(classify_async))

    assert restored is classify_async
    assert asyncio.run(restored("text")) == "TEXT"


def test_local_function_fails_as_undecorated() -> None:
    def plain() -> None:
        pass

    decorated = guard_events("Toxicity")(plain)

    with pytest.raises((pickle.PicklingError, AttributeError)) as plain_error:
        pickle.dumps(plain)
    with pytest.raises((pickle.PicklingError, AttributeError)) as decorated_error:
        pickle.dumps(decorated)

    assert type(decorated_error.value) is type(plain_error.value)


def test_callable_object_refuses_pickle() -> None:
    class Scorer:
        def __call__(self, text: str) -> float:
            return 0.0

    decorated = guard_events("Scorer")(Scorer())

    with pytest.raises(TypeError, match="only functions defined at module level"):
        pickle.dumps(decorated)


def test_copy_returns_same_function() -> None:
    assert copy.copy(classify) is classify
    assert copy.deepcopy(classify) is classify
    assert copy.deepcopy({"guard": classify})["guard"] is classify


@pytest.mark.parametrize(
    "start_method",
    [
        "spawn",
        pytest.param(
            "fork",
            # Python 3.12 and newer warn when a process forks while other threads run, and
            # the library's worker thread may be running. The child starts no thread itself.
            marks=pytest.mark.filterwarnings(
                "ignore:This process .* is multi-threaded:DeprecationWarning"
            ),
        ),
    ],
)
def test_runs_in_child_process(start_method: str) -> None:
    if start_method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"the {start_method} start method is not available on this platform")
    context: Any = multiprocessing.get_context(start_method)
    results = context.Queue()
    process = context.Process(target=run_in_child, args=(results, classify))

    process.start()
    try:
        values, guard_names = results.get(timeout=CHILD_TIMEOUT)
    finally:
        process.join(timeout=CHILD_TIMEOUT)
        if process.is_alive():
            process.kill()
            process.join()

    assert process.exitcode == 0
    assert values == ["OK", "fallback"]
    assert guard_names == ["guard for bad"]
