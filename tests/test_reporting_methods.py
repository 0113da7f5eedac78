"""Decorated methods, classmethods, staticmethods, callable objects and nested decorators."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from mlops_guard_events import guard_events
from mlops_guard_events.testing import CapturedEvents

CallableT = TypeVar("CallableT", bound=Callable[..., Any])


class Detector:
    """A guard with a method of each kind, each of which raises when `fail` is true."""

    @staticmethod
    @guard_events("static below")
    def static_below(fail: bool) -> str:
        if fail:
            raise ValueError("static below failed")
        return "static below"

    @guard_events("static above")
    @staticmethod
    def static_above(fail: bool) -> str:
        if fail:
            raise ValueError("static above failed")
        return "static above"

    @classmethod
    @guard_events(lambda cls, *args, **kwargs: f"class below of {cls.__name__}")
    def class_below(cls, fail: bool) -> str:
        if fail:
            raise ValueError("class below failed")
        return f"class below of {cls.__name__}"

    @guard_events(lambda cls, *args, **kwargs: f"class above of {cls.__name__}")
    @classmethod
    def class_above(cls, fail: bool) -> str:
        if fail:
            raise ValueError("class above failed")
        return f"class above of {cls.__name__}"


METHOD_NAMES = ["static_below", "static_above", "class_below", "class_above"]
EXPECTED_GUARDS = {
    "static_below": "static below",
    "static_above": "static above",
    "class_below": "class below of Detector",
    "class_above": "class above of Detector",
}


@pytest.mark.parametrize("through", ["class", "instance"])
@pytest.mark.parametrize("method_name", METHOD_NAMES)
def test_static_and_class_methods(
    captured_events: CapturedEvents, method_name: str, through: str
) -> None:
    owner: Any = Detector if through == "class" else Detector()
    method = getattr(owner, method_name)

    assert method(fail=False) == EXPECTED_GUARDS[method_name]
    with pytest.raises(ValueError, match="failed"):
        method(True)

    assert len(captured_events) == 1
    assert captured_events[0].guard_name == EXPECTED_GUARDS[method_name]


def test_classmethod_of_subclass_names_it(captured_events: CapturedEvents) -> None:
    class Strict(Detector):
        pass

    with pytest.raises(ValueError, match="class above failed"):
        Strict().class_above(True)
    with pytest.raises(ValueError, match="class below failed"):
        Strict.class_below(True)

    names = [event.guard_name for event in captured_events]
    assert names == ["class above of Strict", "class below of Strict"]


class NamedGuard:
    """A guard class whose instances each carry their own name."""

    def __init__(self, name: str) -> None:
        self.name = name

    @guard_events(lambda self, *args, **kwargs: self.name)
    def check(self, text: str) -> bool:
        raise ValueError(f"{self.name} could not score")

    @guard_events(lambda self, *args, **kwargs: self.name, fallback=False)
    async def check_async(self, text: str) -> bool:
        raise ValueError(f"{self.name} could not score")


def test_each_instance_reports_its_name(captured_events: CapturedEvents) -> None:
    guards = [NamedGuard("Toxicity"), NamedGuard("PII"), NamedGuard("Jailbreak")]

    for guard in guards:
        with pytest.raises(ValueError, match="could not score"):
            guard.check("hello")

    assert [event.guard_name for event in captured_events] == ["Toxicity", "PII", "Jailbreak"]


def test_method_through_class_names_instance(captured_events: CapturedEvents) -> None:
    guard = NamedGuard("PII")

    with pytest.raises(ValueError, match="PII could not score"):
        NamedGuard.check(guard, "hello")

    assert captured_events[0].guard_name == "PII"


def test_async_method_reports_instance_name(captured_events: CapturedEvents) -> None:
    async def main() -> list[bool]:
        return [await NamedGuard(name).check_async("hello") for name in ("a", "b")]

    assert asyncio.run(main()) == [False, False]
    assert [event.guard_name for event in captured_events] == ["a", "b"]


def test_name_callable_receives_arguments(captured_events: CapturedEvents) -> None:
    received: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def name_of(*args: Any, **kwargs: Any) -> str:
        received.append((args, kwargs))
        return "Toxicity"

    class Guard:
        @guard_events(name_of)
        def check(self, text: str, *, threshold: float) -> None:
            raise ValueError("model unavailable")

    guard = Guard()
    with pytest.raises(ValueError, match="model unavailable"):
        guard.check("hello", threshold=0.5)

    assert received == [((guard, "hello"), {"threshold": 0.5})]


def test_name_callable_runs_only_on_failure(captured_events: CapturedEvents) -> None:
    calls: list[str] = []

    def name_of(text: str) -> str:
        calls.append(text)
        return "Toxicity"

    @guard_events(name_of)
    def check(text: str) -> str:
        return text

    check("hello")

    assert calls == []


def test_callable_object_reports(captured_events: CapturedEvents) -> None:
    class Scorer:
        def __call__(self, text: str) -> float:
            raise ValueError("model unavailable")

    scorer = guard_events("Scorer")(Scorer())

    with pytest.raises(ValueError, match="model unavailable"):
        scorer("hello")

    assert captured_events[0].guard_name == "Scorer"


def test_async_callable_object_awaited(captured_events: CapturedEvents) -> None:
    class Scorer:
        async def __call__(self, text: str) -> float:
            raise ValueError("model unavailable")

    scorer = guard_events("Scorer", fallback=0.0)(Scorer())
    coroutine = scorer("hello")
    assert len(captured_events) == 0

    assert asyncio.run(coroutine) == 0.0
    assert len(captured_events) == 1


def test_nested_guards_each_report(captured_events: CapturedEvents) -> None:
    @guard_events("outer")
    @guard_events("inner")
    def check() -> None:
        raise ValueError("model unavailable")

    with pytest.raises(ValueError, match="model unavailable"):
        check()

    assert [event.guard_name for event in captured_events] == ["inner", "outer"]


def test_inner_fallback_hides_from_outer(captured_events: CapturedEvents) -> None:
    @guard_events("outer")
    @guard_events("inner", fallback="fallback")
    def check() -> str:
        raise ValueError("model unavailable")

    assert check() == "fallback"
    assert [event.guard_name for event in captured_events] == ["inner"]


def traced(function: CallableT) -> CallableT:
    """Pass the call through: a plain functools.wraps decorator, as users stack with ours."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return call  # type: ignore[return-value]


def test_nested_with_plain_decorator(captured_events: CapturedEvents) -> None:
    class Guard:
        @traced
        @guard_events(lambda self, *args, **kwargs: type(self).__name__)
        @traced
        def check(self, text: str) -> None:
            raise ValueError("model unavailable")

    with pytest.raises(ValueError, match="model unavailable"):
        Guard().check("hello")

    assert captured_events[0].guard_name == "Guard"


def test_decorated_class_reports_constructor(captured_events: CapturedEvents) -> None:
    @guard_events("Loader")
    class Model:
        def __init__(self, path: str) -> None:
            raise FileNotFoundError(path)

    with pytest.raises(FileNotFoundError):
        Model("missing.bin")

    assert captured_events[0].guard_name == "Loader"
