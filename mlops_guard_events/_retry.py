"""The retry policy for sending events, and parsing of the `Retry-After` header."""

from __future__ import annotations

import dataclasses
import email.utils
import math
import random
import time
from collections.abc import Callable
from datetime import timezone
from typing import Final, Literal, TypeGuard

__all__ = ["Jitter", "RetryPolicy", "parse_retry_after"]

Jitter = Literal["full", "decorrelated"]
_JITTERS: Final = ("full", "decorrelated")
_system_random: Final = random.random


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before sending a failed event again.

    The delay before retry `n` (1 for the first retry) is, in seconds::

        full:          uniform(0, min(max_backoff, backoff_base * backoff_factor ** (n - 1)))
        decorrelated:  min(max_backoff, uniform(backoff_base, previous * backoff_factor))

    where `previous` is the delay before retry `n - 1`, or `backoff_base` for the first retry,
    and `uniform(a, b)` is `a + random() * (b - a)`. When the server sent `Retry-After`, the
    delay is that value capped at `max_retry_after` instead, because waiting less than the
    server asked would only earn another 429 or 503.

    Attributes:
        max_retries: Further attempts after the first failed one; 0 sends once.
        backoff_base: Seconds; the scale of the first delay.
        backoff_factor: How much the delay ceiling grows with each retry, 1 or more.
        max_backoff: Seconds; the largest delay that backoff alone produces.
        max_retry_after: Seconds; the largest delay that a `Retry-After` header produces.
        jitter: `"full"` or `"decorrelated"`, the formulas above.
        sleep: Waits the given number of seconds; tests pass a recorder so nothing really waits.
        clock: Returns the current POSIX time in seconds, to turn a `Retry-After` date into a
            delay.
        random: Returns a float in [0, 1); tests pass a constant to make delays exact.
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_factor: float = 2.0
    max_backoff: float = 30.0
    max_retry_after: float = 60.0
    jitter: Jitter = "full"
    sleep: Callable[[float], None] = dataclasses.field(default=time.sleep, compare=False)
    clock: Callable[[], float] = dataclasses.field(default=time.time, compare=False)
    random: Callable[[], float] = dataclasses.field(default=_system_random, compare=False)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.max_retries, int)
            or isinstance(self.max_retries, bool)
            or self.max_retries < 0
        ):
            raise ValueError(
                f"invalid max_retries {self.max_retries!r}: expected an integer, 0 or more"
            )
        _check_seconds("backoff_base", self.backoff_base, allow_zero=False)
        _check_seconds("max_backoff", self.max_backoff, allow_zero=True)
        _check_seconds("max_retry_after", self.max_retry_after, allow_zero=True)
        if not _is_finite_number(self.backoff_factor) or self.backoff_factor < 1:
            raise ValueError(
                f"invalid backoff_factor {self.backoff_factor!r}: expected a number, 1 or more"
            )
        if self.jitter not in _JITTERS:
            raise ValueError(
                f"invalid jitter {self.jitter!r}: expected one of {', '.join(map(repr, _JITTERS))}"
            )

    def should_retry(self, retry: int) -> bool:
        """Return whether retry number `retry` (1 for the first retry) is allowed."""
        return retry <= self.max_retries

    def backoff(self, retry: int, previous: float | None = None) -> float:
        """Compute the backoff delay in seconds before retry number `retry`.

        Args:
            retry: 1 for the first retry, 2 for the second, and so on.
            previous: The delay before the previous retry, which decorrelated jitter grows
                from; None for the first retry.

        Returns:
            The delay in seconds, from 0 to `max_backoff`.

        Raises:
            ValueError: `retry` is less than 1.
        """
        if retry < 1:
            raise ValueError(f"invalid retry {retry!r}: retries are numbered from 1")
        if self.jitter == "decorrelated":
            low = min(self.backoff_base, self.max_backoff)
            high = max(low, (previous if previous is not None else low) * self.backoff_factor)
            return min(self.max_backoff, low + self.random() * (high - low))
        return self.random() * self._ceiling(retry)

    def _ceiling(self, retry: int) -> float:
        try:
            grown = self.backoff_base * self.backoff_factor ** (retry - 1)
        except OverflowError:
            return self.max_backoff
        return min(self.max_backoff, grown)

    def delay(
        self, retry: int, *, retry_after: float | None = None, previous: float | None = None
    ) -> float:
        """Compute the delay in seconds before retry number `retry`.

        Args:
            retry: 1 for the first retry, 2 for the second, and so on.
            retry_after: Seconds from the server's `Retry-After` header, or None.
            previous: The delay before the previous retry, or None for the first retry.

        Returns:
            `retry_after` capped at `max_retry_after` when the server sent it, else the backoff.

        Raises:
            ValueError: `retry` is less than 1.
        """
        if retry_after is not None and math.isfinite(retry_after):
            return min(max(retry_after, 0.0), self.max_retry_after)
        return self.backoff(retry, previous)


def parse_retry_after(header_value: str | None, now: float | None = None) -> float | None:
    """Convert a `Retry-After` header value to seconds to wait.

    Both forms of RFC 9110 are accepted: delay-seconds (`"120"`) and an HTTP-date
    (`"Wed, 21 Oct 2026 07:28:00 GMT"`). A decimal or negative number is accepted too.

    Args:
        header_value: The header's value, or None when the response had no such header.
        now: The current POSIX time in seconds, to measure a date against; None reads the
            system clock.

    Returns:
        Seconds to wait, 0 for a negative delay or a date in the past, or None when the
        value is missing or cannot be parsed.
    """
    if header_value is None:
        return None
    text = header_value.strip()
    if not text:
        return None

    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_date(text, time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _seconds_until_date(text: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # A date with the "-0000" zone parses as naive; HTTP-dates are always in GMT.
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        return max(when.timestamp() - now, 0.0)
    except (OverflowError, ValueError, OSError):
        return None


def _is_finite_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_seconds(name: str, value: object, *, allow_zero: bool) -> None:
    if not _is_finite_number(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "more than 0"
        raise ValueError(f"invalid {name} {value!r}: expected a number of seconds, {bound}")
