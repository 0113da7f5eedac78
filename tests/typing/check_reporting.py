"""Static checks of the decorators' types; `mypy --strict` checks this file, nothing runs it.

Each `assert_type` pins the type that a caller of a decorated callable gets: the parameters
and the return type of the undecorated one, widened by the fallback's type when a fallback is
set.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import Any

from typing_extensions import Never, assert_type

from mlops_guard_events import (
    config_events,
    guard_events,
    metric_creation_events,
    metric_reporting_events,
    moderation_events,
    scoring_events,
)
from mlops_guard_events._scope import EventReporter, EventScope


def score(text: str, *, threshold: float = 0.5) -> bool:
    return len(text) > threshold


async def score_async(text: str) -> float:
    return float(len(text))


def stream(count: int) -> Generator[str, int, bool]:
    yield str(count)
    return True


async def stream_async(count: int) -> AsyncGenerator[str, None]:
    yield str(count)


def fallback_score(error: BaseException) -> float:
    return 0.0


def check_factories_without_fallback() -> None:
    assert_type(guard_events("Toxicity"), EventReporter[Never])
    assert_type(config_events(), EventReporter[Never])
    assert_type(metric_creation_events("latency"), EventReporter[Never])
    assert_type(metric_reporting_events(), EventReporter[Never])
    assert_type(scoring_events(), EventReporter[Never])
    assert_type(moderation_events("moderationModelRuntimeError"), EventReporter[Never])


def check_factories_with_fallback() -> None:
    assert_type(guard_events("Toxicity", fallback=None), EventReporter[None])
    assert_type(guard_events("Toxicity", fallback=fallback_score), EventReporter[float])
    assert_type(scoring_events(fallback="unavailable"), EventReporter[str])


def check_sync_function_keeps_signature() -> None:
    decorated = guard_events("Toxicity")(score)
    assert_type(decorated("text"), bool)
    assert_type(decorated("text", threshold=0.1), bool)
    same: Callable[[str], bool] = decorated
    assert same is decorated


def check_sync_function_with_fallback() -> None:
    assert_type(guard_events("Toxicity", fallback=None)(score)("text"), bool | None)
    assert_type(guard_events("Toxicity", fallback=fallback_score)(score)("text"), bool | float)


def check_coroutine_function() -> None:
    coroutine = guard_events("Toxicity", timeout=2)(score_async)("text")
    assert_type(coroutine, Coroutine[Any, Any, float]).close()
    with_fallback = guard_events("Toxicity", fallback=None)(score_async)("text")
    assert_type(with_fallback, Coroutine[Any, Any, float | None]).close()


async def check_awaited_result() -> None:
    assert_type(await guard_events("Toxicity")(score_async)("text"), float)


def check_generator_function() -> None:
    decorated = guard_events("Toxicity")(stream)
    assert_type(decorated(1), Generator[str, int, bool])
    with_fallback = guard_events("Toxicity", fallback=None)(stream)
    assert_type(with_fallback(1), Generator[str, int, bool | None])


def check_async_generator_function() -> None:
    decorated = guard_events("Toxicity", fallback=None)(stream_async)
    assert_type(decorated(1), AsyncGenerator[str, None])


class Guard:
    def __init__(self, name: str) -> None:
        self.name = name

    @guard_events(lambda self, *args, **kwargs: self.name)
    def check(self, text: str) -> bool:
        return bool(text)

    @guard_events("Toxicity", fallback=None)
    async def check_async(self, text: str) -> bool:
        return bool(text)

    @classmethod
    @guard_events("Toxicity")
    def create(cls, name: str) -> Guard:
        return cls(name)

    @guard_events("Toxicity")
    @classmethod
    def create_above(cls, name: str) -> Guard:
        return cls(name)

    @staticmethod
    @guard_events("Toxicity")
    def normalize(text: str) -> str:
        return text.lower()

    @guard_events("Toxicity", fallback=None)
    @staticmethod
    def normalize_above(text: str) -> str:
        return text.lower()


async def check_methods() -> None:
    guard = Guard("Toxicity")
    assert_type(guard.check("text"), bool)
    assert_type(await guard.check_async("text"), bool | None)
    assert_type(Guard.create("name"), Guard)
    assert_type(Guard.create_above("name"), Guard)
    assert_type(Guard.normalize("TEXT"), str)
    assert_type(guard.normalize_above("TEXT"), str | None)


def check_context_manager() -> None:
    with guard_events("Toxicity") as scope:
        assert_type(scope, EventScope[Never])
        assert_type(scope.check("response"), str)
        scope.block("toxic")
    with guard_events("Toxicity", fallback=None) as scope_with_fallback:
        pass
    assert_type(scope_with_fallback.fallback, None)
    assert_type(scope_with_fallback.exception, BaseException | None)


async def check_async_context_manager() -> None:
    async with guard_events("Toxicity", timeout=2.0, fallback=fallback_score) as scope:
        pass
    assert_type(scope.fallback, float | None)
    assert_type(scope.suppressed, bool)
