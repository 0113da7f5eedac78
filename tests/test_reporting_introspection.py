"""What `inspect` and attribute access see on decorated callables: the undecorated ones."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import pytest

from mlops_guard_events import guard_events


def score(text: str, *, threshold: float = 0.5) -> float:
    """Score `text` for toxicity."""
    return 0.0


async def score_async(text: str) -> float:
    """Score `text` without blocking."""
    return 0.0


def stream(text: str) -> Generator[str, None, None]:
    """Stream `text` word by word."""
    yield from text.split()


async def stream_async(text: str) -> AsyncGenerator[str, None]:
    """Stream `text` word by word without blocking."""
    for word in text.split():
        yield word


FUNCTIONS = [score, score_async, stream, stream_async]
PREDICATES = [
    inspect.iscoroutinefunction,
    inspect.isgeneratorfunction,
    inspect.isasyncgenfunction,
    inspect.isfunction,
]


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda function: function.__name__)
def test_attributes_match_original(function: Callable[..., Any]) -> None:
    decorated: Any = guard_events("Toxicity")(function)

    assert decorated.__wrapped__ is function
    assert decorated.__name__ == function.__name__
    assert decorated.__qualname__ == function.__qualname__
    assert decorated.__doc__ == function.__doc__
    assert decorated.__module__ == function.__module__
    assert decorated.__annotations__ == function.__annotations__
    assert inspect.signature(decorated) == inspect.signature(function)
    assert inspect.unwrap(decorated) is function


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda function: function.__name__)
@pytest.mark.parametrize("predicate", PREDICATES, ids=lambda predicate: predicate.__name__)
def test_kind_predicates_match_original(
    function: Callable[..., Any], predicate: Callable[[object], bool]
) -> None:
    decorated = guard_events("Toxicity")(function)

    assert predicate(decorated) is predicate(function)


class Guard:
    @guard_events("Toxicity")
    async def check(self, text: str) -> bool:
        """Check `text`."""
        return True

    @staticmethod
    @guard_events("Toxicity")
    def stream(text: str) -> Generator[str, None, None]:
        yield text

    @guard_events("Toxicity")
    @classmethod
    async def create(cls) -> Guard:
        return cls()


def test_method_signature_drops_self() -> None:
    assert list(inspect.signature(Guard().check).parameters) == ["text"]
    assert list(inspect.signature(Guard.check).parameters) == ["self", "text"]


def test_method_kinds_match_original() -> None:
    assert inspect.iscoroutinefunction(Guard().check)
    assert inspect.iscoroutinefunction(Guard.check)
    assert inspect.isgeneratorfunction(Guard.stream)
    assert inspect.iscoroutinefunction(Guard.create)


def test_method_keeps_docstring() -> None:
    assert Guard().check.__doc__ == "Check `text`."


def test_results_have_original_kind() -> None:
    coroutine = guard_events("Toxicity")(score_async)("text")
    generator = guard_events("Toxicity")(stream)("two words")
    async_generator = guard_events("Toxicity")(stream_async)("two words")
    try:
        assert inspect.iscoroutine(coroutine)
        assert inspect.isgenerator(generator)
        assert inspect.isasyncgen(async_generator)
    finally:
        coroutine.close()
        generator.close()


def test_decorator_object_is_reusable() -> None:
    reporter = guard_events("Toxicity")

    first: Any = reporter(score)
    second: Any = reporter(stream)

    assert first.__wrapped__ is score
    assert second.__wrapped__ is stream
