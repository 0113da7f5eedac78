"""Decorated regular functions: what is reported, and that the call behaves as without it."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_guard_events import ModerationEventType, _dispatch, _scope, _stats, guard_events, stats
from mlops_guard_events._event import MAX_MESSAGE_LENGTH, MAX_TITLE_LENGTH
from mlops_guard_events.testing import CapturedEvents, capture_events

RUNTIME = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR


class GuardFailedError(Exception):
    """A failure of a guard's model, as a guard in a user's code might raise it."""


class UnprintableError(Exception):
    """An exception whose `__str__` itself raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@pytest.fixture(autouse=True)
def fresh_failure_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let each test see the first log record of each kind of reporting failure."""
    monkeypatch.setattr(_scope, "_failure_log", _stats.LogThrottle(_scope.LOG_INTERVAL))


def reporting_errors() -> int:
    return stats()["reporting_errors"]


def test_failure_reports_one_event(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    def check(text: str) -> bool:
        raise ValueError("model unavailable")

    with pytest.raises(ValueError, match="model unavailable"):
        check("hello")

    assert len(captured_events) == 1
    event = captured_events[0]
    assert event.event_type is RUNTIME
    assert event.guard_name == "Toxicity"
    assert event.metric_name is None
    assert event.title == "Guard 'Toxicity' failed"
    assert event.message == "ValueError: model unavailable"


def test_success_reports_nothing(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    def check(text: str) -> bool:
        return False

    assert check("hello") is False
    assert len(captured_events) == 0


def test_return_value_is_same_object(captured_events: CapturedEvents) -> None:
    response: dict[str, object] = {"text": "hello", "scores": [0.1, 0.2]}

    @guard_events("Toxicity")
    def check() -> dict[str, object]:
        return response

    assert check() is response


def test_exception_is_same_object_with_traceback(captured_events: CapturedEvents) -> None:
    error = GuardFailedError("model unavailable")

    @guard_events("Toxicity")
    def check() -> None:
        raise error

    original_code = check.__code__
    with pytest.raises(GuardFailedError) as raised:
        check()

    assert raised.value is error
    innermost = raised.value.__traceback__
    assert innermost is not None
    while innermost.tb_next is not None:
        innermost = innermost.tb_next
    assert innermost.tb_frame.f_code is original_code
    assert error.__context__ is None
    assert error.__cause__ is None


def test_message_names_module_of_exception(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    def check() -> None:
        raise GuardFailedError("model unavailable")

    with pytest.raises(GuardFailedError):
        check()

    assert captured_events[0].message == f"{__name__}.GuardFailedError: model unavailable"


def test_exception_without_text_names_type(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    def check() -> None:
        raise ValueError

    with pytest.raises(ValueError, match=r"^$"):
        check()

    assert captured_events[0].message == "ValueError"


def test_broken_str_still_reports(captured_events: CapturedEvents) -> None:
    error = UnprintableError()

    @guard_events("Toxicity")
    def check() -> None:
        raise error

    with pytest.raises(UnprintableError) as raised:
        check()

    assert raised.value is error
    assert len(captured_events) == 1
    message = captured_events[0].message
    assert message is not None
    assert message.startswith(f"{__name__}.UnprintableError: ")
    assert "__str__ raised RuntimeError" in message


def test_long_exception_text_truncated(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    def check() -> None:
        raise ValueError("x" * 50_000)

    with pytest.raises(ValueError, match="xxx"):
        check()

    message = captured_events[0].message
    assert message is not None
    assert len(message) == MAX_MESSAGE_LENGTH
    assert message.endswith("characters]")


def test_arguments_left_out_by_default(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity")
    def check(prompt: str, *, response: str) -> None:
        raise ValueError("model unavailable")

    with pytest.raises(ValueError, match="model unavailable"):
        check("secret prompt", response="secret response")

    event = captured_events[0]
    wire = str(event.to_wire())
    assert "secret prompt" not in wire
    assert "secret response" not in wire


def test_include_arguments_adds_values(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", include_arguments=True)
    def check(prompt: str, *, response: str) -> None:
        raise ValueError("model unavailable")

    with pytest.raises(ValueError, match="model unavailable"):
        check("the prompt", response="the response")

    message = captured_events[0].message
    assert message == (
        "ValueError: model unavailable\nArguments: ('the prompt', response='the response')"
    )


def test_include_arguments_shortens_values(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", include_arguments=True)
    def check(prompt: str) -> None:
        raise ValueError("model unavailable")

    with pytest.raises(ValueError, match="model unavailable"):
        check("p" * 5000)

    message = captured_events[0].message
    assert message is not None
    assert "p" * 1000 not in message
    assert "..." in message


def test_fallback_value_returned(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", fallback="unavailable")
    def check() -> str:
        raise ValueError("model unavailable")

    assert check() == "unavailable"
    assert len(captured_events) == 1
    message = captured_events[0].message
    assert message == (
        "ValueError: model unavailable\nThe fallback value was used instead of raising."
    )


def test_fallback_none_returns_none(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", fallback=None)
    def check() -> str:
        raise ValueError("model unavailable")

    assert check() is None
    assert len(captured_events) == 1


def test_fallback_callable_receives_exception(captured_events: CapturedEvents) -> None:
    received: list[BaseException] = []
    error = ValueError("model unavailable")

    def fallback(exception: BaseException) -> str:
        received.append(exception)
        return "fallback"

    @guard_events("Toxicity", fallback=fallback)
    def check() -> str:
        raise error

    assert check() == "fallback"
    assert received == [error]


def test_fallback_error_propagates_chained(captured_events: CapturedEvents) -> None:
    error = ValueError("model unavailable")

    def fallback(exception: BaseException) -> str:
        raise LookupError("no fallback available")

    @guard_events("Toxicity", fallback=fallback)
    def check() -> str:
        raise error

    with pytest.raises(LookupError) as raised:
        check()

    assert raised.value.__context__ is error
    assert len(captured_events) == 1


@pytest.mark.parametrize("signal", [KeyboardInterrupt(), SystemExit(0), GeneratorExit()])
def test_signals_pass_through_unreported(
    captured_events: CapturedEvents, signal: BaseException
) -> None:
    @guard_events("Toxicity", fallback=None, exceptions=BaseException)
    def check() -> None:
        raise signal

    with pytest.raises(type(signal)) as raised:
        check()

    assert raised.value is signal
    assert len(captured_events) == 0


def test_blocked_true_reports_and_returns(captured_events: CapturedEvents) -> None:
    response = "some toxic text"

    @guard_events("Toxicity", blocked=lambda text: "toxic" in text)
    def respond() -> str:
        return response

    assert respond() is response
    assert len(captured_events) == 1
    event = captured_events[0]
    assert event.event_type is RUNTIME
    assert event.title == "Guard 'Toxicity' blocked the response"
    assert event.message == "The blocked check flagged the result."


def test_blocked_reason_becomes_message(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", blocked=lambda text: "toxicity score 0.97 over 0.8")
    def respond() -> str:
        return "some toxic text"

    respond()

    assert captured_events[0].message == "toxicity score 0.97 over 0.8"


@pytest.mark.parametrize("verdict", [False, None, "", 0])
def test_blocked_false_reports_nothing(captured_events: CapturedEvents, verdict: object) -> None:
    @guard_events("Toxicity", blocked=lambda text: verdict)
    def respond() -> str:
        return "fine"

    assert respond() == "fine"
    assert len(captured_events) == 0


def test_blocked_value_left_out_by_default(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", blocked=lambda text: "toxic")
    def respond() -> str:
        return "secret response"

    respond()

    assert "secret response" not in str(captured_events[0].to_wire())


def test_include_result_adds_blocked_value(captured_events: CapturedEvents) -> None:
    @guard_events("Toxicity", blocked=lambda text: "toxic", include_result=True)
    def respond() -> str:
        return "the response"

    respond()

    assert captured_events[0].message == "toxic\nBlocked value: 'the response'"


def test_blocked_uses_reporter_event_type(captured_events: CapturedEvents) -> None:
    scoring = ModerationEventType.MODERATION_MODEL_SCORING_ERROR

    @guard_events("Toxicity", event_type=scoring, blocked=lambda text: True)
    def respond() -> str:
        return "text"

    respond()

    assert captured_events[0].event_type is scoring


def test_broken_blocked_check_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    before = reporting_errors()

    @guard_events("Toxicity", blocked=lambda text: 1 / 0)
    def respond() -> str:
        return "text"

    with capture_events() as captured:
        assert respond() == "text"

    assert len(captured) == 0
    assert reporting_errors() == before + 1
    assert "the blocked callable raised" in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_broken_name_callable_still_reports(caplog: pytest.LogCaptureFixture) -> None:
    before = reporting_errors()

    @guard_events(lambda text: text.name)
    def check(text: str) -> None:
        raise ValueError("model unavailable")

    with capture_events() as captured, pytest.raises(ValueError, match="model unavailable"):
        check("hello")

    assert len(captured) == 1
    assert captured[0].guard_name is None
    assert captured[0].title == "Guard failed"
    assert reporting_errors() == before + 1
    assert "the guard_name callable raised" in caplog.text


def test_broken_event_building_is_caught(caplog: pytest.LogCaptureFixture) -> None:
    class UnusableName:
        def __bool__(self) -> bool:
            raise RuntimeError("no truth value")

    before = reporting_errors()
    error = ValueError("model unavailable")

    @guard_events(lambda: UnusableName())
    def check() -> None:
        raise error

    with (
        capture_events() as captured,
        pytest.raises(ValueError, match="model unavailable") as raised,
    ):
        check()

    assert raised.value is error
    assert len(captured) == 0
    assert reporting_errors() == before + 1
    records = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(records) == 1
    assert "building a moderation event failed" in records[0].getMessage()


def test_repeated_failures_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    before = reporting_errors()

    @guard_events("Toxicity", blocked=lambda text: 1 / 0)
    def respond() -> str:
        return "text"

    with capture_events():
        for _ in range(5):
            respond()

    assert reporting_errors() == before + 5
    assert caplog.text.count("the blocked callable raised") == 1


def test_failure_log_hides_guarded_exception(caplog: pytest.LogCaptureFixture) -> None:
    class UnusableName:
        def __bool__(self) -> bool:
            raise RuntimeError("no truth value")

    @guard_events(lambda: UnusableName())
    def check() -> None:
        raise ValueError("the user's prompt text")

    with capture_events(), pytest.raises(ValueError, match="prompt text"):
        check()

    assert "no truth value" in caplog.text
    assert "the user's prompt text" not in caplog.text


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=1).filter(str.strip), text=st.text())
def test_any_text_yields_valid_event(name: str, text: str) -> None:
    error = GuardFailedError(text)

    @guard_events(name)
    def check() -> None:
        raise error

    with capture_events() as captured, pytest.raises(GuardFailedError) as raised:
        check()

    assert raised.value is error
    assert len(captured) == 1
    event = captured[0]
    assert event.title is not None
    assert len(event.title) <= MAX_TITLE_LENGTH
    assert event.message is not None
    assert len(event.message) <= MAX_MESSAGE_LENGTH


def test_decorating_adds_no_log_handler() -> None:
    @guard_events("Toxicity")
    def check() -> None:
        pass

    check()

    assert logging.getLogger("mlops_guard_events").handlers == []
    assert logging.getLogger(_scope.__name__).handlers == []


def test_delivery_failure_log_hides_prompt(caplog: pytest.LogCaptureFixture) -> None:
    def broken_sink(event: object) -> None:
        raise RuntimeError("sink failed")

    @guard_events("Toxicity", fallback=None)
    def check(prompt: str) -> None:
        raise ValueError(f"could not score {prompt}")

    _dispatch.push_sink(broken_sink)
    try:
        check("the user's prompt text")
    finally:
        _dispatch.pop_sink(broken_sink)

    assert "sink failed" in caplog.text
    assert "the user's prompt text" not in caplog.text
