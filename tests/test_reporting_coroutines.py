"""Decorated coroutine functions: reporting when awaited, timeouts and cancellation."""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
import time
from datetime import timedelta

import pytest

from mlops_guard_events import guard_events, stats
from mlops_guard_events.testing import CapturedEvents, capture_events


async def wait_forever() -> None:
    await asyncio.Event().wait()


def test_failure_reported_after_await(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    async def check(text: str) -> bool:
        await asyncio.sleep(0)
        raise ValueError("model unavailable")

    assert inspect.iscoroutinefunction(check)
    coroutine = check("hello")
    assert len(captured_events) == 0

    with pytest.raises(ValueError, match="model unavailable"):
        asyncio.run(coroutine)

    assert len(captured_events) == 1
    assert captured_events[0].title == "Guard 'Toxicity' failed"
    assert captured_events[0].message == "ValueError: model unavailable"


def test_result_is_same_object(captured_events: CapturedEvents) -> None:
    response = ["some", "tokens"]

    @guard_events("Toxicity")
    async def check() -> list[str]:
        await asyncio.sleep(0)
        return response

    assert asyncio.run(check()) is response
    assert len(captured_events) == 0


def test_exception_is_same_object(captured_events: CapturedEvents) -> None:
    error = ValueError("model unavailable")

    async def check() -> None:
        raise error

    original_code = check.__code__
    decorated = guard_events("Toxicity")(check)
    with pytest.raises(ValueError, match="model unavailable") as raised:
        asyncio.run(decorated())

    assert raised.value is error
    innermost = raised.value.__traceback__
    assert innermost is not None
    while innermost.tb_next is not None:
        innermost = innermost.tb_next
    assert innermost.tb_frame.f_code is original_code


def test_argument_error_raised_at_call(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    async def check(text: str) -> None:
        pass

    with pytest.raises(TypeError, match="positional argument"):
        check("one", "two")  # type: ignore[call-arg, unused-coroutine]

    assert len(captured_events) == 0


def test_fallback_returned_when_awaited(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", fallback=lambda error: f"fallback for {type(error).__name__}")
    async def check() -> str:
        raise KeyError("score")

    assert asyncio.run(check()) == "fallback for KeyError"
    assert len(captured_events) == 1


def test_blocked_result_reported(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", blocked=lambda text: "contains a slur")
    async def respond() -> str:
        return "text"

    assert asyncio.run(respond()) == "text"
    assert len(captured_events) == 1
    assert captured_events[0].message == "contains a slur"


def test_cancelled_task_reports_nothing(captured_events: CapturedEvents) -> None:
    started = asyncio.Event()

    @guard_events("Toxicity", fallback=None)
    async def check() -> None:
        started.set()
        await wait_forever()

    async def main() -> asyncio.Task[None]:
        task = asyncio.create_task(check())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task

    task = asyncio.run(main())

    assert task.cancelled()
    assert len(captured_events) == 0


def test_cancellation_passes_even_when_catching_all(captured_events: CapturedEvents) -> None:
    started = asyncio.Event()

    @guard_events("Toxicity", fallback=None, exceptions=BaseException)
    async def check() -> None:
        started.set()
        await wait_forever()

    async def main() -> asyncio.Task[None]:
        task = asyncio.create_task(check())
        await started.wait()
        task.cancel()
        await asyncio.wait([task])
        return task

    assert asyncio.run(main()).cancelled()
    assert len(captured_events) == 0


def test_timeout_raises_and_reports(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", timeout=0.05)
    async def check() -> None:
        await wait_forever()

    with pytest.raises(TimeoutError) as raised:
        asyncio.run(check())

    assert str(raised.value) == "timed out after 0.05 s"
    assert isinstance(raised.value.__cause__, asyncio.CancelledError)
    assert len(captured_events) == 1
    event = captured_events[0]
    assert event.title == "Guard 'Toxicity' timed out after 0.05 s"
    assert event.message == "TimeoutError: no result within 0.05 s, so the call was cancelled."


def test_timeout_error_is_asyncio_timeout(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", timeout=0.01)
    async def check() -> None:
        await wait_forever()

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(check())


def test_timeout_returns_fallback(captured_events: CapturedEvents) -> None:
    received: list[BaseException] = []

    def fallback(error: BaseException) -> str:
        received.append(error)
        return "blocked, fail closed"

    @guard_events("Toxicity", timeout=timedelta(milliseconds=20), fallback=fallback)
    async def check() -> str:
        await wait_forever()
        return "never"

    assert asyncio.run(check()) == "blocked, fail closed"
    assert len(received) == 1
    assert isinstance(received[0], TimeoutError)
    assert len(captured_events) == 1
    assert captured_events[0].title == "Guard 'Toxicity' timed out after 0.02 s"


def test_timeout_not_reached_reports_nothing(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", timeout=60)
    async def check() -> str:
        await asyncio.sleep(0)
        return "fine"

    assert asyncio.run(check()) == "fine"
    assert len(captured_events) == 0


def test_timer_stopped_after_success(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", timeout=0.02)
    async def check() -> str:
        return "fine"

    async def main() -> str:
        result = await check()
        # Wait past the timeout: a timer left running would cancel this task.
        await asyncio.sleep(0.05)
        return result

    assert asyncio.run(main()) == "fine"


def test_failure_before_timeout_reported(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", timeout=60)
    async def check() -> None:
        raise ValueError("model unavailable")

    with pytest.raises(ValueError, match="model unavailable"):
        asyncio.run(check())

    assert captured_events[0].title == "Guard 'Toxicity' failed"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is new in 3.11")
def test_timeout_leaves_no_cancel_request(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", timeout=0.01)
    async def check() -> None:
        await wait_forever()

    async def main() -> int:
        with pytest.raises(TimeoutError):
            await check()
        task = asyncio.current_task()
        assert task is not None
        cancel_requests: int = task.cancelling()  # type: ignore[attr-defined, unused-ignore]
        return cancel_requests

    assert asyncio.run(main()) == 0


def test_outside_cancel_beats_timeout(captured_events: CapturedEvents) -> None:
    started = asyncio.Event()

    @guard_events("Toxicity", timeout=60, fallback=None)
    async def check() -> None:
        started.set()
        await wait_forever()

    async def main() -> asyncio.Task[None]:
        task = asyncio.create_task(check())
        await started.wait()
        task.cancel()
        await asyncio.wait([task])
        return task

    assert asyncio.run(main()).cancelled()
    assert len(captured_events) == 0


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="without Task.uncancel() (Python 3.10) a simultaneous cancel is taken for the timeout",
)
def test_outside_cancel_at_expiry_propagates(captured_events: CapturedEvents) -> None:
    started = asyncio.Event()

    @guard_events("Toxicity", timeout=0.01, fallback=None)
    async def check() -> None:
        started.set()
        await wait_forever()

    async def main() -> asyncio.Task[None]:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(check())
        await started.wait()
        loop.call_later(0.02, task.cancel)
        # Block the loop until both timers are due, so the timeout fires first and the
        # outside cancel right after it, before the task runs again.
        time.sleep(0.05)
        await asyncio.wait([task])
        return task

    assert asyncio.run(main()).cancelled()
    assert len(captured_events) == 0


def test_timeout_without_task_runs_unlimited(caplog: pytest.LogCaptureFixture) -> None:
    before = stats()["reporting_errors"]

    @guard_events("Toxicity", timeout=1)
    async def check() -> str:
        return "fine"

    coroutine = check()
    with capture_events() as captured, pytest.raises(StopIteration) as stopped:
        coroutine.send(None)

    assert stopped.value.value == "fine"
    assert len(captured) == 0
    assert stats()["reporting_errors"] == before + 1
    assert "no asyncio task is running" in caplog.text


def test_concurrent_tasks_report_own_names(captured_events: CapturedEvents) -> None:
    @guard_events(lambda name: name, fallback=None)
    async def check(name: str) -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        raise ValueError(name)

    async def main() -> None:
        await asyncio.gather(*(check(f"guard-{index}") for index in range(100)))

    asyncio.run(main())

    assert len(captured_events) == 100
    for event in captured_events:
        assert event.message is not None
        assert event.message.startswith(f"ValueError: {event.guard_name}\n")


def test_cancel_before_start_warns_nothing(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    async def check() -> str:
        return "never run"

    async def main() -> asyncio.Task[str]:
        task = asyncio.create_task(check())
        task.cancel()
        await asyncio.wait([task])
        return task

    task = asyncio.run(main())
    # An unawaited coroutine warns when it is collected; filterwarnings=error fails the test.
    gc.collect()

    assert task.cancelled()
    assert len(captured_events) == 0


def test_closing_unstarted_warns_nothing() -> None:
    @guard_events("Toxicity")
    async def check() -> str:
        return "never run"

    check().close()
    gc.collect()


def test_unawaited_warning_names_function() -> None:
    @guard_events("Toxicity")
    async def check() -> str:
        return "never run"

    unawaited = check()
    # Dropping the last reference finalizes the coroutine at once, which warns.
    with pytest.warns(RuntimeWarning, match=r"coroutine '.*<locals>\.check' was never awaited"):
        del unawaited
