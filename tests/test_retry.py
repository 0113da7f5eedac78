"""The retry policy's delays and the parsing of `Retry-After`."""

from __future__ import annotations

import dataclasses
import email.utils
import math
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_guard_events._retry import RetryPolicy, parse_retry_after

NOW = 1_800_000_000.0  # a fixed POSIX time, in 2027


def constant(value: float) -> Any:
    return lambda: value


def test_policy_is_immutable() -> None:
    policy = RetryPolicy()

    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_retries = 5  # type: ignore[misc]


def test_policy_equality_ignores_callables() -> None:
    assert RetryPolicy(sleep=lambda _: None) == RetryPolicy()


def test_full_jitter_grows_exponentially() -> None:
    policy = RetryPolicy(
        backoff_base=0.5, backoff_factor=2.0, max_backoff=100.0, random=constant(0.5)
    )

    delays = [policy.backoff(retry) for retry in (1, 2, 3, 4)]

    assert delays == [0.25, 0.5, 1.0, 2.0]


def test_full_jitter_is_capped() -> None:
    policy = RetryPolicy(backoff_base=1.0, max_backoff=5.0, random=constant(0.999))

    assert policy.backoff(20) == pytest.approx(5.0 * 0.999)


def test_full_jitter_can_be_zero() -> None:
    policy = RetryPolicy(random=constant(0.0))

    assert policy.backoff(3) == 0.0


def test_huge_retry_number_does_not_overflow() -> None:
    policy = RetryPolicy(backoff_factor=10.0, max_backoff=7.0, random=constant(0.5))

    assert policy.backoff(100_000) == 3.5


def test_decorrelated_grows_from_previous() -> None:
    policy = RetryPolicy(
        jitter="decorrelated",
        backoff_base=0.5,
        backoff_factor=3.0,
        max_backoff=100.0,
        random=constant(1.0),
    )

    first = policy.backoff(1)
    second = policy.backoff(2, previous=first)

    assert first == 1.5
    assert second == 4.5


def test_decorrelated_low_end_is_base() -> None:
    policy = RetryPolicy(jitter="decorrelated", backoff_base=0.5, random=constant(0.0))

    assert policy.backoff(5, previous=20.0) == 0.5


def test_decorrelated_is_capped() -> None:
    policy = RetryPolicy(jitter="decorrelated", max_backoff=4.0, random=constant(1.0))

    assert policy.backoff(9, previous=100.0) == 4.0


def test_delay_uses_retry_after() -> None:
    policy = RetryPolicy(random=constant(0.5))

    assert policy.delay(1, retry_after=7.0) == 7.0


def test_delay_caps_retry_after() -> None:
    policy = RetryPolicy(max_retry_after=30.0)

    assert policy.delay(1, retry_after=3600.0) == 30.0


def test_delay_without_retry_after_backs_off() -> None:
    policy = RetryPolicy(backoff_base=2.0, random=constant(0.5))

    assert policy.delay(1) == 1.0


def test_delay_ignores_infinite_retry_after() -> None:
    policy = RetryPolicy(backoff_base=2.0, random=constant(0.5))

    assert policy.delay(1, retry_after=math.inf) == 1.0


def test_should_retry_counts_retries() -> None:
    policy = RetryPolicy(max_retries=2)

    assert policy.should_retry(1)
    assert policy.should_retry(2)
    assert not policy.should_retry(3)


def test_zero_retries_never_retries() -> None:
    assert not RetryPolicy(max_retries=0).should_retry(1)


def test_retry_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="numbered from 1"):
        RetryPolicy().backoff(0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("max_retries", True),
        ("backoff_base", 0),
        ("backoff_base", math.nan),
        ("backoff_factor", 0.5),
        ("backoff_factor", math.inf),
        ("max_backoff", -1.0),
        ("max_retry_after", "60"),
        ("jitter", "equal"),
    ],
)
def test_invalid_field_is_named(field: str, value: Any) -> None:
    arguments: dict[str, Any] = {field: value}

    with pytest.raises(ValueError, match=f"invalid {field} "):
        RetryPolicy(**arguments)


@given(
    retry=st.integers(min_value=1, max_value=10_000),
    unit=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    jitter=st.sampled_from(["full", "decorrelated"]),
    previous=st.none() | st.floats(min_value=0.0, max_value=1e6),
)
def test_backoff_stays_within_bounds(
    retry: int, unit: float, jitter: Any, previous: float | None
) -> None:
    policy = RetryPolicy(jitter=jitter, max_backoff=12.0, random=constant(unit))

    delay = policy.backoff(retry, previous)

    assert 0.0 <= delay <= 12.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
    ],
)
def test_retry_after_seconds_form(header: str, seconds: float) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_retry_after_http_date_form() -> None:
    header = email.utils.formatdate(NOW + 42, usegmt=True)

    assert parse_retry_after(header, NOW) == 42.0


def test_retry_after_date_in_past_is_zero() -> None:
    header = email.utils.formatdate(NOW - 600, usegmt=True)

    assert parse_retry_after(header, NOW) == 0.0


@pytest.mark.parametrize(
    "header",
    [
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Sun, 06 Nov 1994 08:49:37 -0000",
    ],
)
def test_retry_after_obsolete_date_forms(header: str) -> None:
    now = email.utils.parsedate_to_datetime("Sun, 06 Nov 1994 08:49:00 GMT").timestamp()

    assert parse_retry_after(header, now) == 37.0


def test_retry_after_reads_system_clock() -> None:
    header = email.utils.formatdate(time.time() + 3600, usegmt=True)

    seconds = parse_retry_after(header)

    assert seconds is not None
    assert 3000.0 < seconds <= 3600.0


@pytest.mark.parametrize(
    "header", [None, "", "   ", "soon", "nan", "inf", "12 13", "Sun, 06 Nov 99999 08:49:37 GMT"]
)
def test_retry_after_garbage_is_none(header: str | None) -> None:
    assert parse_retry_after(header, NOW) is None


@given(st.text(max_size=60))
def test_retry_after_never_raises(header: str) -> None:
    seconds = parse_retry_after(header, NOW)

    assert seconds is None or seconds >= 0.0
