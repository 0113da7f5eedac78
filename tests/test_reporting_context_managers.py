"""The reporting objects as `with` and `async with` blocks, and their `as` target."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Generator

import pytest

from mlops_guard_events import guard_events, metric_reporting_events, moderation_events
from mlops_guard_events._scope import EventScope
from mlops_guard_events.testing import CapturedEvents


def test_with_reports_failure(captured_events: CapturedEvents) -> None:
    error = ValueError("model unavailable")

    with pytest.raises(ValueError, match="model unavailable") as raised, guard_events("Toxicity"):
        raise error

    assert raised.value is error
    assert len(captured_events) == 1
    assert captured_events[0].title == "Guard 'Toxicity' failed"


def test_with_success_reports_nothing(captured_events: CapturedEvents) -> None:
    with guard_events("Toxicity") as scope:
        pass

    assert isinstance(scope, EventScope)
    assert scope.exception is None
    assert scope.suppressed is False
    assert len(captured_events) == 0


@pytest.mark.parametrize("signal", [SystemExit(0), KeyboardInterrupt()])
def test_with_passes_signals_unreported(
    captured_events: CapturedEvents, signal: BaseException
) -> None:
    with pytest.raises(type(signal)) as raised, guard_events("Toxicity", fallback=None):
        raise signal

    assert raised.value is signal
    assert len(captured_events) == 0


def test_fallback_suppresses_and_is_kept(captured_events: CapturedEvents) -> None:
    error = KeyError("column")

    with metric_reporting_events(fallback=lambda exception: "skipped") as scope:
        raise error

    assert scope.exception is error
    assert scope.suppressed is True
    assert scope.fallback == "skipped"
    assert len(captured_events) == 1
    assert captured_events[0].title == "Custom metric reporting failed"


def test_block_reports_at_once(captured_events: CapturedEvents) -> None:
    with guard_events("Toxicity") as scope:
        scope.block("toxicity score 0.97")
        assert len(captured_events) == 1

    event = captured_events[0]
    assert event.title == "Guard 'Toxicity' blocked the response"
    assert event.message == "toxicity score 0.97"


def test_block_without_reason(captured_events: CapturedEvents) -> None:
    with guard_events("Toxicity") as scope:
        scope.block()

    assert captured_events[0].message == "No reason was given."


def test_check_applies_blocked_option(captured_events: CapturedEvents) -> None:
    response = "some toxic text"

    with guard_events("Toxicity", blocked=lambda text: "toxic" in text) as scope:
        assert scope.check(response) is response
        scope.check("fine")

    assert len(captured_events) == 1


def test_name_callable_gets_no_arguments(captured_events: CapturedEvents) -> None:
    with (
        pytest.raises(ValueError, match="model unavailable"),
        guard_events(lambda: "computed name"),
    ):
        raise ValueError("model unavailable")

    assert captured_events[0].guard_name == "computed name"


def test_nested_same_object_separate_scopes(captured_events: CapturedEvents) -> None:
    reporter = guard_events("Toxicity", fallback=None)

    with reporter as outer:
        with reporter as inner:
            raise ValueError("inner failure")
        assert inner is not outer
        outer.block("after the inner block")

    assert inner.suppressed is True
    assert outer.suppressed is False
    assert outer.exception is None
    assert len(captured_events) == 2


def test_reused_object_starts_fresh(captured_events: CapturedEvents) -> None:
    reporter = guard_events("Toxicity", fallback="fallback")

    with reporter as first:
        raise ValueError("first")
    with reporter as second:
        pass

    assert first.suppressed is True
    assert second.suppressed is False
    assert second.fallback is None


def test_enabled_false_block_does_nothing(captured_events: CapturedEvents) -> None:
    reporter = guard_events("Toxicity", enabled=False, fallback=None)

    def guarded() -> None:
        with reporter as scope:
            scope.block("ignored")
            raise ValueError("propagates, as without the library")

    with pytest.raises(ValueError, match="propagates"):
        guarded()

    assert len(captured_events) == 0


def test_exit_in_other_thread_finds_scope(captured_events: CapturedEvents) -> None:
    reporter = guard_events("Toxicity", fallback="fallback")
    scope = reporter.__enter__()
    error = ValueError("raised where the block was resumed")
    suppressed: list[bool] = []

    def finish() -> None:
        suppressed.append(reporter.__exit__(ValueError, error, None))

    thread = threading.Thread(target=finish)
    thread.start()
    thread.join(timeout=30)

    assert suppressed == [True]
    assert scope.exception is error
    assert scope.fallback == "fallback"
    assert len(captured_events) == 1


def test_generator_resumed_in_copied_contexts(captured_events: CapturedEvents) -> None:
    reporter = guard_events("Toxicity", fallback=None)
    scopes: list[EventScope[None]] = []

    def stream() -> Generator[str, None, None]:
        with reporter as scope:
            scopes.append(scope)
            yield "first"
            raise ValueError("stream broke")

    iterator = stream()
    # Each step runs in a fresh copy of the context, as a thread pool running next() does.
    assert contextvars.copy_context().run(next, iterator) == "first"
    with pytest.raises(StopIteration):
        contextvars.copy_context().run(next, iterator)

    assert str(scopes[0].exception) == "stream broke"
    assert scopes[0].suppressed is True
    assert len(captured_events) == 1


def test_threads_share_one_object(captured_events: CapturedEvents) -> None:
    reporter = moderation_events("moderationModelRuntimeError", guard_name="shared", fallback=None)
    thread_count = 16
    barrier = threading.Barrier(thread_count, timeout=30)
    scopes: dict[int, EventScope[None]] = {}
    errors: dict[int, ValueError] = {}

    def run(index: int) -> None:
        errors[index] = ValueError(f"thread {index}")
        with reporter as scope:
            scopes[index] = scope
            barrier.wait()
            raise errors[index]

    threads = [threading.Thread(target=run, args=(index,)) for index in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    for index in range(thread_count):
        assert scopes[index].exception is errors[index]
    messages = sorted(event.message or "" for event in captured_events)
    expected = sorted(f"ValueError: thread {index}" for index in range(thread_count))
    assert [message.split("\n")[0] for message in messages] == expected


def test_async_with_reports_failure(captured_events: CapturedEvents) -> None:
    async def main() -> None:
        async with guard_events("Toxicity"):
            await asyncio.sleep(0)
            raise ValueError("model unavailable")

    with pytest.raises(ValueError, match="model unavailable"):
        asyncio.run(main())

    assert len(captured_events) == 1


def test_tasks_share_one_object(captured_events: CapturedEvents) -> None:
    reporter = guard_events("Toxicity", fallback=None)

    async def run(index: int) -> tuple[int, EventScope[None]]:
        async with reporter as scope:
            for _ in range(index % 5):
                await asyncio.sleep(0)
            if index % 2:
                raise ValueError(f"task {index}")
        return index, scope

    async def main() -> list[tuple[int, EventScope[None]]]:
        return await asyncio.gather(*(run(index) for index in range(200)))

    results = asyncio.run(main())

    for index, scope in results:
        if index % 2:
            assert str(scope.exception) == f"task {index}"
        else:
            assert scope.exception is None
    assert len(captured_events) == 100


def test_async_with_timeout_raises(captured_events: CapturedEvents) -> None:
    async def main() -> None:
        async with guard_events("Toxicity", timeout=0.02):
            await asyncio.Event().wait()

    with pytest.raises(TimeoutError, match=r"timed out after 0\.02 s"):
        asyncio.run(main())

    assert captured_events[0].title == "Guard 'Toxicity' timed out after 0.02 s"


def test_async_with_timeout_fallback(captured_events: CapturedEvents) -> None:
    async def main() -> EventScope[str]:
        async with guard_events("Toxicity", timeout=0.02, fallback="fail closed") as scope:
            await asyncio.Event().wait()
        return scope

    scope = asyncio.run(main())

    assert isinstance(scope.exception, TimeoutError)
    assert scope.suppressed is True
    assert scope.fallback == "fail closed"
    assert len(captured_events) == 1


def test_async_with_timeout_not_reached(captured_events: CapturedEvents) -> None:
    async def main() -> str:
        async with guard_events("Toxicity", timeout=60):
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        return "done"

    assert asyncio.run(main()) == "done"
    assert len(captured_events) == 0


def test_async_with_cancel_propagates(captured_events: CapturedEvents) -> None:
    started = asyncio.Event()

    async def guarded() -> None:
        async with guard_events("Toxicity", timeout=60, fallback=None):
            started.set()
            await asyncio.Event().wait()

    async def main() -> asyncio.Task[None]:
        task = asyncio.create_task(guarded())
        await started.wait()
        task.cancel()
        await asyncio.wait([task])
        return task

    assert asyncio.run(main()).cancelled()
    assert len(captured_events) == 0


def test_plain_with_rejects_timeout() -> None:
    reporter = guard_events("Toxicity", timeout=2)

    with pytest.raises(TypeError, match="applies only to coroutine functions and `async with`"):
        reporter.__enter__()
