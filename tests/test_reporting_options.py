"""The six factories and their options: defaults, effects, and errors for invalid values."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from datetime import timedelta
from typing import Any

import pytest

from mlops_guard_events import (
    ModerationEventType,
    config_events,
    guard_events,
    metric_creation_events,
    metric_reporting_events,
    moderation_events,
    scoring_events,
    stats,
)
from mlops_guard_events._scope import EventReporter
from mlops_guard_events.testing import CapturedEvents, capture_events, override_settings

Type = ModerationEventType


def fail() -> None:
    raise ValueError("model unavailable")


FACTORY_CASES = [
    (guard_events("Toxicity"), Type.MODERATION_MODEL_RUNTIME_ERROR, "Toxicity", None,
     "Guard 'Toxicity' failed"),
    (config_events("Toxicity"), Type.MODERATION_MODEL_CONFIG_ERROR, "Toxicity", None,
     "Configuration of guard 'Toxicity' failed"),
    (config_events(), Type.MODERATION_MODEL_CONFIG_ERROR, None, None,
     "Guard configuration failed"),
    (metric_creation_events("latency"), Type.MODERATION_METRIC_CREATION_ERROR, None, "latency",
     "Creation of custom metric 'latency' failed"),
    (metric_reporting_events("latency"), Type.MODERATION_METRIC_REPORTING_ERROR, None,
     "latency", "Reporting of custom metric 'latency' failed"),
    (metric_reporting_events(), Type.MODERATION_METRIC_REPORTING_ERROR, None, None,
     "Custom metric reporting failed"),
    (scoring_events(), Type.MODERATION_MODEL_SCORING_ERROR, None, None, "Scoring failed"),
    (moderation_events(Type.MODERATION_MODEL_RUNTIME_ERROR, guard_name="g", metric_name="m"),
     Type.MODERATION_MODEL_RUNTIME_ERROR, "g", "m", "Guard 'g' failed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reporter", "event_type", "guard_name", "metric_name", "title"), FACTORY_CASES
)
def test_factory_defaults(
    captured_events: CapturedEvents,
    reporter: EventReporter[Any],
    event_type: ModerationEventType,
    guard_name: str | None,
    metric_name: str | None,
    title: str,
) -> None:
    with pytest.raises(ValueError, match="model unavailable"):
        reporter(fail)()

    event = captured_events[0]
    assert event.event_type is event_type
    assert event.guard_name == guard_name
    assert event.metric_name == metric_name
    assert event.title == title


def test_event_type_override(captured_events: CapturedEvents) -> None:
    with pytest.raises(ValueError, match="model unavailable"):
        guard_events("Toxicity", event_type="moderationModelScoringError")(fail)()

    assert captured_events[0].event_type is Type.MODERATION_MODEL_SCORING_ERROR


def test_exception_event_types_map(captured_events: CapturedEvents) -> None:
    reporter = guard_events(
        "Toxicity", exception_event_types={KeyError: "moderationModelConfigError"}
    )

    @reporter
    def set_up(columns: dict[str, str]) -> str:
        return columns["prompt"]

    with pytest.raises(KeyError, match="prompt"):
        set_up({})
    with pytest.raises(ValueError, match="model unavailable"):
        reporter(fail)()

    types = [event.event_type for event in captured_events]
    assert types == [Type.MODERATION_MODEL_CONFIG_ERROR, Type.MODERATION_MODEL_RUNTIME_ERROR]
    assert captured_events[0].title == "Configuration of guard 'Toxicity' failed"


def test_most_specific_mapping_wins(captured_events: CapturedEvents) -> None:
    reporter = guard_events(
        "Toxicity",
        exception_event_types={
            LookupError: Type.MODERATION_MODEL_SCORING_ERROR,
            KeyError: Type.MODERATION_MODEL_CONFIG_ERROR,
        },
    )

    def missing_key() -> None:
        raise KeyError("prompt")

    def missing_index() -> None:
        raise IndexError(0)

    with pytest.raises(KeyError, match="prompt"):
        reporter(missing_key)()
    with pytest.raises(IndexError, match="0"):
        reporter(missing_index)()

    types = [event.event_type for event in captured_events]
    assert types == [Type.MODERATION_MODEL_CONFIG_ERROR, Type.MODERATION_MODEL_SCORING_ERROR]


def test_exceptions_narrow_what_is_reported(captured_events: CapturedEvents) -> None:
    reporter = guard_events("Toxicity", exceptions=(ConnectionError, TimeoutError))

    def refused() -> None:
        raise ConnectionRefusedError("model server down")

    with pytest.raises(ConnectionRefusedError, match="model server down"):
        reporter(refused)()
    with pytest.raises(ValueError, match="model unavailable"):
        reporter(fail)()

    assert len(captured_events) == 1
    assert captured_events[0].message == "ConnectionRefusedError: model server down"


def test_ignored_exceptions_pass_unreported(captured_events: CapturedEvents) -> None:
    reporter = guard_events("Toxicity", ignored_exceptions=ValueError, fallback=None)

    with pytest.raises(ValueError, match="model unavailable"):
        reporter(fail)()

    assert len(captured_events) == 0


def test_base_exception_subclass_reportable(captured_events: CapturedEvents) -> None:
    class Abort(BaseException):
        pass

    @guard_events("Toxicity", exceptions=BaseException, fallback="fallback")
    def check() -> str:
        raise Abort

    assert check() == "fallback"
    assert len(captured_events) == 1


def test_deployment_and_org_override(captured_events: CapturedEvents) -> None:
    with override_settings(deployment_id="configured-deployment", org_id="configured-org"):
        with pytest.raises(ValueError, match="model unavailable"):
            guard_events("Toxicity", deployment_id="dep-2", org_id="org-2")(fail)()
        with pytest.raises(ValueError, match="model unavailable"):
            guard_events("Toxicity")(fail)()

    assert captured_events[0].deployment_id == "dep-2"
    assert captured_events[0].org_id == "org-2"
    assert captured_events[1].deployment_id == "configured-deployment"
    assert captured_events[1].org_id == "configured-org"


def test_title_and_message_override(captured_events: CapturedEvents) -> None:
    reporter = guard_events("Toxicity", title="Toxicity is down", message="See the runbook.")

    with pytest.raises(ValueError, match="model unavailable"):
        reporter(fail)()
    with reporter as scope:
        scope.block("ignored reason")

    for event in captured_events:
        assert event.title == "Toxicity is down"
        assert event.message == "See the runbook."


def test_enabled_false_returns_function(captured_events: CapturedEvents) -> None:
    decorated = guard_events("Toxicity", enabled=False, fallback=None)(fail)

    assert decorated is fail


def test_enabled_callable_asked_per_call(captured_events: CapturedEvents) -> None:
    switch = {"on": False}
    decorated = guard_events("Toxicity", enabled=lambda: switch["on"], fallback="fallback")(fail)

    with pytest.raises(ValueError, match="model unavailable"):
        decorated()
    switch["on"] = True
    assert decorated() == "fallback"

    assert len(captured_events) == 1


def test_broken_enabled_callable_reports() -> None:
    before = stats()["reporting_errors"]
    decorated = guard_events("Toxicity", enabled=lambda: 1 / 0, fallback="fallback")(fail)

    with capture_events() as captured:
        assert decorated() == "fallback"

    assert len(captured) == 1
    assert stats()["reporting_errors"] == before + 1


def test_repr_names_factory_and_options() -> None:
    reporter = guard_events("Toxicity", timeout=2.5, fallback=None)

    assert repr(reporter) == (
        "<guard_events event_type=moderationModelRuntimeError guard_name='Toxicity'"
        " timeout=2.5 fallback=None>"
    )


def test_properties_expose_options() -> None:
    reporter = metric_creation_events("latency", timeout=timedelta(seconds=3))

    assert reporter.event_type is Type.MODERATION_METRIC_CREATION_ERROR
    assert reporter.guard_name is None
    assert reporter.metric_name == "latency"
    assert reporter.timeout == 3.0


def stream() -> Generator[int, None, None]:
    yield 1


async def stream_async() -> Any:
    yield 1


@pytest.mark.parametrize(
    ("function", "kind"),
    [
        (fail, "a regular function"),
        (stream, "a generator function"),
        (stream_async, "an async generator function"),
    ],
)
def test_timeout_rejected_outside_coroutines(function: Callable[..., Any], kind: str) -> None:
    with pytest.raises(TypeError) as raised:
        guard_events("Toxicity", timeout=2)(function)

    message = str(raised.value)
    assert f"'{function.__qualname__}', which is {kind}" in message
    assert "applies only to coroutine functions and `async with`" in message


# The table below passes invalid values on purpose, so it calls the factories without types.
any_guard_events: Any = guard_events
any_metric_creation_events: Any = metric_creation_events
any_moderation_events: Any = moderation_events

INVALID_OPTIONS: list[tuple[Callable[[], object], type[Exception], str]] = [
    (lambda: any_guard_events("x", event_type="moderationRuntimeError"), ValueError,
     "did you mean 'moderationModelRuntimeError'?"),
    (lambda: any_moderation_events("runtime"), ValueError, "expected one of"),
    (lambda: any_guard_events(42), TypeError, "invalid guard_name 42 for guard_events()"),
    (lambda: any_guard_events("  "), ValueError, "expected a non-empty string, or a callable"),
    (lambda: any_guard_events(None), TypeError, "missing guard_name for guard_events()"),
    (lambda: any_metric_creation_events(None), TypeError, "missing metric_name"),
    (lambda: any_guard_events("x", timeout=-1), ValueError, "more than zero"),
    (lambda: any_guard_events("x", timeout=0), ValueError, "more than zero"),
    (lambda: any_guard_events("x", timeout=float("inf")), ValueError, "finite"),
    (lambda: any_guard_events("x", timeout=True), TypeError, "number of seconds or a timedelta"),
    (lambda: any_guard_events("x", timeout="2"), TypeError, "number of seconds"),
    (lambda: any_guard_events("x", exceptions=KeyboardInterrupt), ValueError,
     "KeyboardInterrupt is never reported"),
    (lambda: any_guard_events("x", exceptions=(ValueError, asyncio.CancelledError)), ValueError,
     "CancelledError is never reported"),
    (lambda: any_guard_events("x", exceptions=()), ValueError, "pass enabled=False"),
    (lambda: any_guard_events("x", exceptions="ValueError"), TypeError, "exception class"),
    (lambda: any_guard_events("x", ignored_exceptions=[1]), TypeError, "exception class"),
    (lambda: any_guard_events("x", exception_event_types=[KeyError]), TypeError, "mapping"),
    (lambda: any_guard_events("x", exception_event_types={"KeyError": "x"}), TypeError,
     "exception classes as keys"),
    (lambda: any_guard_events("x", exception_event_types={KeyError: "config"}), ValueError,
     "exception_event_types[KeyError]"),
    (lambda: any_guard_events("x", blocked="toxic"), TypeError, "invalid blocked"),
    (lambda: any_guard_events("x", deployment_id="None"), ValueError, "expected a DataRobot ID"),
    (lambda: any_guard_events("x", org_id=7), TypeError, "invalid org_id 7"),
    (lambda: any_guard_events("x", title=""), ValueError, "invalid title ''"),
    (lambda: any_guard_events("x", message=b"m"), TypeError, "invalid message"),
    (lambda: any_guard_events("x", include_arguments=1), TypeError, "expected True or False"),
    (lambda: any_guard_events("x", include_result=None), TypeError, "include_result"),
    (lambda: any_guard_events("x", enabled="yes"), TypeError, "invalid enabled 'yes'"),
]  # fmt: skip


@pytest.mark.parametrize(("create", "error", "text"), INVALID_OPTIONS)
def test_invalid_option_explained(
    create: Callable[[], object], error: type[Exception], text: str
) -> None:
    with pytest.raises(error) as raised:
        create()

    assert text in str(raised.value)


def test_bare_decorator_use_explained() -> None:
    @guard_events
    def check(text: str) -> bool:
        return True

    with pytest.raises(TypeError) as raised:
        check("hello")  # type: ignore[call-overload]

    message = str(raised.value)
    assert "guard_events() returns a decorator" in message
    assert "got ('hello')" in message
    assert "not @guard_events" in message


def test_non_callable_rejected() -> None:
    with pytest.raises(TypeError, match="got \\(42\\)"):
        guard_events("Toxicity")(42)  # type: ignore[call-overload]
