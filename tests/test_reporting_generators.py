"""Decorated generator and async generator functions: reporting item by item."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, Generator
from contextlib import contextmanager

import pytest

from mlops_guard_events import guard_events
from mlops_guard_events.testing import CapturedEvents


class RecoverableError(Exception):
    """An exception that a consumer throws into a generator, which recovers from it."""


def test_blocked_third_item_reported_there(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", blocked=lambda chunk: "toxic chunk" if chunk == "c" else None)
    def stream() -> Generator[str, None, None]:
        yield from ["a", "b", "c", "d"]

    iterator = stream()
    counts = []
    for chunk in iterator:
        counts.append((chunk, len(captured_events)))

    assert counts == [("a", 0), ("b", 0), ("c", 1), ("d", 1)]
    event = captured_events[0]
    assert event.title == "Guard 'Toxicity' blocked the response"
    assert event.message == "toxic chunk"


def test_early_close_reports_nothing(captured_events: CapturedEvents) -> None:
    finalized = []

    @guard_events("Toxicity")
    def stream() -> Generator[int, None, None]:
        try:
            yield 1
            yield 2
        finally:
            finalized.append(True)

    iterator = stream()
    assert next(iterator) == 1
    iterator.close()

    assert finalized == [True]
    assert len(captured_events) == 0
    assert inspect.getgeneratorstate(iterator) == inspect.GEN_CLOSED


def test_failure_reported_at_its_item(captured_events: CapturedEvents) -> None:
    error = ValueError("stream broke")

    @guard_events("Toxicity")
    def stream() -> Generator[int, None, None]:
        yield 1
        yield 2
        raise error

    iterator = stream()
    assert next(iterator) == 1
    assert next(iterator) == 2
    assert len(captured_events) == 0
    with pytest.raises(ValueError, match="stream broke") as raised:
        next(iterator)

    assert raised.value is error
    assert len(captured_events) == 1
    assert captured_events[0].message == "ValueError: stream broke"


def test_argument_error_raised_at_call(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    def stream(count: int) -> Generator[int, None, None]:
        yield count

    with pytest.raises(TypeError):
        stream(1, 2)  # type: ignore[call-arg]

    assert len(captured_events) == 0


def test_send_is_forwarded(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    def echo() -> Generator[str, str, str]:
        received = yield "ready"
        while received != "stop":
            received = yield received.upper()
        return "stopped"

    iterator = echo()
    assert next(iterator) == "ready"
    assert iterator.send("hello") == "HELLO"
    assert iterator.send("again") == "AGAIN"
    with pytest.raises(StopIteration) as stopped:
        iterator.send("stop")

    assert stopped.value.value == "stopped"
    assert len(captured_events) == 0


def test_return_value_reaches_yield_from(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    def inner() -> Generator[int, None, str]:
        yield 1
        return "done"

    def outer() -> Generator[int, None, None]:
        result = yield from inner()
        assert result == "done"

    assert list(outer()) == [1]


def test_throw_is_forwarded(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    def stream() -> Generator[str, None, None]:
        try:
            yield "first"
        except RecoverableError:
            yield "recovered"

    iterator = stream()
    assert next(iterator) == "first"
    assert iterator.throw(RecoverableError("retry")) == "recovered"
    assert len(captured_events) == 0


def test_thrown_exception_not_reported(captured_events: CapturedEvents) -> None:
    thrown = RecoverableError("from the consumer")

    @guard_events("Toxicity")
    def stream() -> Generator[str, None, None]:
        yield "first"

    iterator = stream()
    next(iterator)
    with pytest.raises(RecoverableError) as raised:
        iterator.throw(thrown)

    assert raised.value is thrown
    assert len(captured_events) == 0


def test_failure_after_throw_reported(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    def stream() -> Generator[str, None, None]:
        try:
            yield "first"
        except RecoverableError as error:
            raise ValueError("could not recover") from error

    iterator = stream()
    next(iterator)
    with pytest.raises(ValueError, match="could not recover"):
        iterator.throw(RecoverableError("retry"))

    assert len(captured_events) == 1


def test_fallback_ends_iteration(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", fallback="partial")
    def stream() -> Generator[int, None, str]:
        yield 1
        raise ValueError("stream broke")

    iterator = stream()
    assert next(iterator) == 1
    with pytest.raises(StopIteration) as stopped:
        next(iterator)

    assert stopped.value.value == "partial"
    assert len(captured_events) == 1


def test_generator_used_as_context_manager(captured_events: CapturedEvents) -> None:
    @contextmanager
    @guard_events("Toxicity")
    def session() -> Generator[str, None, None]:
        yield "session"

    def use_session() -> None:
        with session() as value:
            assert value == "session"
            raise KeyError("raised in the with block, not by the guard")

    with pytest.raises(KeyError, match="not by the guard"):
        use_session()

    assert len(captured_events) == 0


async def collect(
    iterator: AsyncGenerator[str, None], counts: list[tuple[str, int]], captured: CapturedEvents
) -> None:
    async for item in iterator:
        counts.append((item, len(captured)))


def test_async_blocked_item_reported_there(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", blocked=lambda chunk: chunk == "c")
    async def stream() -> AsyncGenerator[str, None]:
        for chunk in ["a", "b", "c", "d"]:
            await asyncio.sleep(0)
            yield chunk

    counts: list[tuple[str, int]] = []
    asyncio.run(collect(stream(), counts, captured_events))

    assert counts == [("a", 0), ("b", 0), ("c", 1), ("d", 1)]


def test_async_failure_reported_at_item(captured_events: CapturedEvents) -> None:
    error = ValueError("stream broke")

    @guard_events("Toxicity")
    async def stream() -> AsyncGenerator[str, None]:
        yield "a"
        await asyncio.sleep(0)
        raise error

    counts: list[tuple[str, int]] = []
    with pytest.raises(ValueError, match="stream broke") as raised:
        asyncio.run(collect(stream(), counts, captured_events))

    assert raised.value is error
    assert counts == [("a", 0)]
    assert len(captured_events) == 1


def test_async_early_close_reports_nothing(captured_events: CapturedEvents) -> None:
    finalized = []

    @guard_events("Toxicity")
    async def stream() -> AsyncGenerator[int, None]:
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            finalized.append(True)

    async def main() -> None:
        iterator = stream()
        assert await iterator.__anext__() == 1
        await iterator.aclose()

    asyncio.run(main())

    assert finalized == [True]
    assert len(captured_events) == 0


def test_asend_and_athrow_forwarded(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    async def echo() -> AsyncGenerator[str, str]:
        received = yield "ready"
        while True:
            try:
                received = yield received.upper()
            except RecoverableError:
                received = yield "recovered"

    async def main() -> list[str]:
        iterator = echo()
        answers = [await iterator.asend(None)]  # type: ignore[arg-type]
        answers.append(await iterator.asend("hello"))
        answers.append(await iterator.athrow(RecoverableError("retry")))
        await iterator.aclose()
        return answers

    assert asyncio.run(main()) == ["ready", "HELLO", "recovered"]
    assert len(captured_events) == 0


def test_async_fallback_ends_iteration(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", fallback=None)
    async def stream() -> AsyncGenerator[str, None]:
        yield "a"
        raise ValueError("stream broke")

    counts: list[tuple[str, int]] = []
    asyncio.run(collect(stream(), counts, captured_events))

    assert counts == [("a", 0)]
    assert len(captured_events) == 1


def test_async_cancel_reports_nothing(captured_events: CapturedEvents) -> None:
    started = asyncio.Event()

    @guard_events("Toxicity", fallback=None)
    async def stream() -> AsyncGenerator[str, None]:
        yield "a"
        started.set()
        await asyncio.Event().wait()
        yield "never"

    async def consume() -> None:
        async for _ in stream():
            pass

    async def main() -> asyncio.Task[None]:
        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        await asyncio.wait([task])
        return task

    assert asyncio.run(main()).cancelled()
    assert len(captured_events) == 0
