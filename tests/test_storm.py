"""Storm control: coalescing of repeats into summaries, and the per-minute token bucket."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_guard_events._event import MAX_MESSAGE_LENGTH, ModerationEvent, ModerationEventType
from mlops_guard_events._storm import (
    Admission,
    RateLimiter,
    StormControl,
    fingerprint,
    summary_count,
)

RUNTIME = ModerationEventType.MODERATION_MODEL_RUNTIME_ERROR
CONFIG = ModerationEventType.MODERATION_MODEL_CONFIG_ERROR
WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)


class ManualClock:
    """A monotonic clock that moves only when the test sets `now`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_event(
    title: str = "Guard failed",
    message: str | None = "boom",
    guard_name: str | None = "toxicity",
    event_type: ModerationEventType = RUNTIME,
) -> ModerationEvent:
    return ModerationEvent(
        event_type=event_type,
        timestamp=WHEN,
        title=title,
        message=message,
        deployment_id="dep-1",
        guard_name=guard_name,
    )


def total_count(sent: list[ModerationEvent]) -> int:
    """Add up what the sent events stand for: 1 for an event, its count for a summary."""
    total = 0
    for event in sent:
        count = summary_count(event.message)
        total += 1 if count is None else count
    return total


def test_first_event_is_sent() -> None:
    storm = StormControl(60.0, clock=ManualClock())
    assert storm.admit(make_event()) is Admission.SEND


def test_repeat_in_window_is_coalesced() -> None:
    storm = StormControl(60.0, clock=ManualClock())
    storm.admit(make_event())
    assert storm.admit(make_event(message="another text")) is Admission.COALESCED


def test_fingerprint_ignores_message() -> None:
    assert fingerprint(make_event(message="a")) == fingerprint(make_event(message="b"))


def test_fingerprint_fields_separate_events() -> None:
    storm = StormControl(60.0, clock=ManualClock())
    storm.admit(make_event())
    assert storm.admit(make_event(title="Other")) is Admission.SEND
    assert storm.admit(make_event(guard_name="pii")) is Admission.SEND
    assert storm.admit(make_event(event_type=CONFIG)) is Admission.SEND


def test_summary_at_window_end() -> None:
    clock = ManualClock()
    storm = StormControl(60.0, clock=clock)
    storm.admit(make_event())
    for index in range(4):
        storm.admit(make_event(message=f"repeat {index}"))
    assert storm.due_summaries() == []

    clock.now += 60.0
    summaries = storm.due_summaries()
    assert len(summaries) == 1
    assert summary_count(summaries[0].message) == 4
    assert summaries[0].message is not None
    assert summaries[0].message.endswith("the last message was: repeat 3")


def test_summary_keeps_fingerprint_fields() -> None:
    clock = ManualClock()
    storm = StormControl(10.0, clock=clock)
    storm.admit(make_event())
    storm.admit(make_event())
    clock.now += 10.0
    (summary,) = storm.due_summaries()
    assert fingerprint(summary) == fingerprint(make_event())


def test_quiet_window_closes_without_summary() -> None:
    clock = ManualClock()
    storm = StormControl(10.0, clock=clock)
    storm.admit(make_event())
    clock.now += 10.0
    assert storm.due_summaries() == []
    assert storm.next_deadline() is None
    assert storm.admit(make_event()) is Admission.SEND


def test_lasting_storm_sends_one_summary_per_window() -> None:
    clock = ManualClock()
    storm = StormControl(10.0, clock=clock)
    sent: list[ModerationEvent] = []
    for _ in range(50):  # 50 windows of 10 s, 10 events in each
        for _ in range(10):
            if storm.admit(make_event()) is Admission.SEND:
                sent.append(make_event())
            clock.now += 1.0
        sent.extend(storm.due_summaries())
    clock.now += 10.0
    sent.extend(storm.due_summaries())

    assert total_count(sent) == 500
    assert sum(1 for event in sent if summary_count(event.message) is None) == 1


def test_late_repeat_rolls_window() -> None:
    clock = ManualClock()
    storm = StormControl(10.0, clock=clock)
    storm.admit(make_event())
    storm.admit(make_event())
    clock.now += 15.0  # the worker has not collected the summary yet
    assert storm.admit(make_event()) is Admission.COALESCED
    summaries = storm.due_summaries()
    assert [summary_count(event.message) for event in summaries] == [1]


def test_pending_summaries_flush_now() -> None:
    clock = ManualClock()
    storm = StormControl(60.0, clock=clock)
    storm.admit(make_event())
    storm.admit(make_event())
    storm.admit(make_event())
    flushed = storm.pending_summaries()
    assert [summary_count(event.message) for event in flushed] == [2]
    assert storm.admit(make_event()) is Admission.COALESCED
    clock.now += 60.0
    assert [summary_count(event.message) for event in storm.due_summaries()] == [1]


def test_zero_window_sends_everything() -> None:
    storm = StormControl(0.0, clock=ManualClock())
    assert all(storm.admit(make_event()) is Admission.SEND for _ in range(5))
    assert storm.next_deadline() is None


def test_fingerprint_limit_sends_uncoalesced() -> None:
    storm = StormControl(60.0, clock=ManualClock(), max_fingerprints=2)
    storm.admit(make_event(title="a"))
    storm.admit(make_event(title="b"))
    assert storm.admit(make_event(title="c")) is Admission.SEND
    assert storm.admit(make_event(title="c")) is Admission.SEND
    assert storm.admit(make_event(title="a")) is Admission.COALESCED


def test_summary_message_fits_limit() -> None:
    clock = ManualClock()
    storm = StormControl(1.0, clock=clock)
    long_message = "x" * MAX_MESSAGE_LENGTH
    storm.admit(make_event(message=long_message))
    storm.admit(make_event(message=long_message))
    clock.now += 1.0
    (summary,) = storm.due_summaries()
    assert summary.message is not None
    assert len(summary.message) <= MAX_MESSAGE_LENGTH
    assert summary_count(summary.message) == 1


def test_summary_without_message() -> None:
    clock = ManualClock()
    storm = StormControl(1.0, clock=clock)
    storm.admit(make_event(message=None))
    storm.admit(make_event(message=None))
    clock.now += 1.0
    (summary,) = storm.due_summaries()
    assert summary.message == "Repeated 1 more times in the last 1 s."


def test_summary_count_reads_thousands() -> None:
    assert summary_count("Repeated 9,999 more times in the last 60 s.") == 9999


def test_summary_count_ignores_other_text() -> None:
    assert summary_count("boom") is None
    assert summary_count(None) is None


def test_set_window_applies_to_new_windows() -> None:
    clock = ManualClock()
    storm = StormControl(60.0, clock=clock)
    storm.set_window(5.0)
    storm.admit(make_event())
    assert storm.next_deadline() == clock.now + 5.0


def test_admit_is_thread_safe() -> None:
    storm = StormControl(60.0, clock=ManualClock())
    results: list[Admission] = []
    lock = threading.Lock()

    def report() -> None:
        local = [storm.admit(make_event()) for _ in range(2000)]
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=report) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    summaries = storm.pending_summaries()
    assert results.count(Admission.SEND) == 1
    assert [summary_count(event.message) for event in summaries] == [7999]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(min_value=0.0, max_value=7.0)),
        max_size=200,
    ),
    window=st.sampled_from([0.0, 1.0, 5.0, 30.0]),
)
def test_counts_always_add_up(steps: list[tuple[str, float]], window: float) -> None:
    clock = ManualClock()
    storm = StormControl(window, clock=clock)
    sent: dict[str, list[ModerationEvent]] = {"a": [], "b": [], "c": []}
    expected = {"a": 0, "b": 0, "c": 0}

    def collect(events: list[ModerationEvent]) -> None:
        for event in events:
            assert event.title is not None
            sent[event.title].append(event)

    for title, pause in steps:
        expected[title] += 1
        event = make_event(title=title)
        if storm.admit(event) is Admission.SEND:
            sent[title].append(event)
        clock.now += pause
        collect(storm.due_summaries())
    collect(storm.pending_summaries())

    for title, count in expected.items():
        assert total_count(sent[title]) == count


def test_rate_limiter_allows_burst() -> None:
    limiter = RateLimiter(300, clock=ManualClock())
    assert sum(limiter.try_acquire() for _ in range(400)) == 300


def test_rate_limiter_refills_over_time() -> None:
    clock = ManualClock()
    limiter = RateLimiter(60, clock=clock)
    for _ in range(60):
        limiter.try_acquire()
    assert not limiter.try_acquire()
    assert limiter.seconds_until_available() == 1.0
    clock.now += 1.0
    assert limiter.try_acquire()


def test_rate_limiter_never_exceeds_size() -> None:
    clock = ManualClock()
    limiter = RateLimiter(10, clock=clock)
    clock.now += 3600.0
    assert sum(limiter.try_acquire() for _ in range(20)) == 10


def test_rate_limiter_set_rate_shrinks() -> None:
    limiter = RateLimiter(100, clock=ManualClock())
    limiter.set_rate(5)
    assert sum(limiter.try_acquire() for _ in range(20)) == 5
