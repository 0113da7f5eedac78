"""The background worker: queue, delivery, retries, spool, exit and fork handling.

`submit` runs on the guard's thread (or event loop) and starts with a storm-control lookup. An
event that is not a repeat is then scrubbed and passed to the `before_send` hook, and put on a
bounded queue, or appended to the spool when the queue is full. Everything that waits on the
network happens on one daemon thread per process, `mlops-guard-events-worker`, which sends one
request at a time and keeps its own retry state:

- A retryable failure (connection error, timeout, 429, 502, 503, 504) pauses the whole worker
  for the backoff delay, or for the server's `Retry-After`, while new events wait in the queue.
- An event that still fails after `max_retries` goes to the spool, and the worker goes offline.
  Offline, it moves queued events to the spool and sends one probe at growing intervals. They
  are at most `MAX_PROBE_INTERVAL` seconds apart, unless the server's `Retry-After` requests
  longer. The first success brings the worker back and starts a replay.
- A final rejection (4xx other than 429, or 500) is counted and logged, never spooled.
- Events over the per-minute cap are spooled and replayed as the budget allows.

`shutdown` and the exit hooks flush with a deadline and spool whatever is still pending, even
an event whose request hangs. A forked child drops the parent's worker and builds its own on
first use.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import enum
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol

from . import _clock, _stats
from ._config import Settings, current_settings
from ._event import ModerationEvent
from ._retry import RetryPolicy
from ._scrub import prepare_event
from ._spool import ClaimedSegment, Spool
from ._storm import Admission, RateLimiter, StormControl
from ._transport import EventLog, HttpTransport
from .exceptions import (
    ConfigurationError,
    EventDeliveryError,
    EventRejectedError,
    EventRetryableError,
    SpoolError,
)

__all__ = [
    "MAX_PROBE_INTERVAL",
    "THREAD_NAME",
    "flush",
    "queue_high_water",
    "replay_spool",
    "shutdown",
    "submit",
]

logger = logging.getLogger("mlops_guard_events")

THREAD_NAME: Final = "mlops-guard-events-worker"

MAX_PROBE_INTERVAL: Final = 10.0
"""The maximum wait, in seconds, between two probes of an endpoint that keeps failing."""

# How long shutdown() waits for a stopped worker to exit before it spools the worker's event
# itself. A worker blocked in a request does not exit sooner.
_STOP_GRACE_SECONDS: Final = 0.2
# While coalescing windows are open the worker wakes at least this often, so that windows
# measured on a test's FakeClock close soon after the test advances it.
_MAX_WINDOW_WAIT_SECONDS: Final = 1.0
# flush() re-checks that the worker is alive this often while it waits.
_IDLE_CHECK_SECONDS: Final = 0.5
_LOG_INTERVAL_SECONDS: Final = 60.0


# The queue


class _EventQueue:
    """A bounded FIFO of events that also counts the events taken but not yet finished."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.high_water = 0
        self._items: deque[ModerationEvent] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._closed = False
        self._consumer_waiting = False
        self._wake_requested = False

    def put(self, event: ModerationEvent) -> bool:
        """Append `event` unless the queue is full or closed; never blocks."""
        with self._lock:
            if self._closed or len(self._items) >= self.max_size:
                return False
            self._items.append(event)
            size = len(self._items)
            if size > self.high_water:
                self.high_water = size
            if self._consumer_waiting:
                self._changed.notify()
            return True

    def take(self) -> ModerationEvent | None:
        """Remove and return the oldest event, which counts as in flight until `done`."""
        with self._lock:
            if not self._items:
                return None
            self._in_flight += 1
            return self._items.popleft()

    def done(self, count: int = 1) -> None:
        """Finish `count` events returned by `take`."""
        with self._lock:
            self._in_flight -= count
            self._notify_if_idle()

    def drain(self) -> list[ModerationEvent]:
        """Remove and return every queued event; those in flight stay counted."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._notify_if_idle()
            return items

    def close(self) -> list[ModerationEvent]:
        """Refuse further events and return the queued ones."""
        with self._lock:
            self._closed = True
        return self.drain()

    def pending(self) -> int:
        """Return the number of events queued or in flight."""
        with self._lock:
            return len(self._items) + self._in_flight

    def wait(self, timeout: float | None, *, for_events: bool) -> None:
        """Block the consumer until `wake`, the timeout, or (if `for_events`) a new event."""
        with self._lock:
            if self._wake_requested or (for_events and self._items):
                self._wake_requested = False
                return
            self._consumer_waiting = for_events
            self._changed.wait(timeout)
            self._consumer_waiting = False
            self._wake_requested = False

    def wake(self) -> None:
        """End the consumer's current or next `wait` at once."""
        with self._lock:
            self._wake_requested = True
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for nothing to be pending; return how many are."""
        with self._lock:
            if self._items or self._in_flight:
                self._idle.wait(timeout)
            return len(self._items) + self._in_flight

    def _notify_if_idle(self) -> None:
        if not self._items and not self._in_flight:
            self._idle.notify_all()


# Senders: where the worker delivers a body


class _Sender(Protocol):
    def post(self, body: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class _EventLogSender:
    """A sender that appends bodies to the local event log; a failed write is retryable."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def post(self, body: Mapping[str, Any]) -> None:
        try:
            self._log.append(body)
        except SpoolError as error:
            raise EventRetryableError(str(error)) from error

    def close(self) -> None:
        pass


def _build_sender(settings: Settings) -> _Sender:
    if settings.uses_event_log:
        assert settings.event_log_path is not None  # Settings fills it in
        return _EventLogSender(EventLog(settings.event_log_path))
    return HttpTransport(settings)


class _Outcome(enum.Enum):
    DELIVERED = "delivered"
    REJECTED = "rejected"
    RETRY = "retry"


_throttle = _stats.LogThrottle(_LOG_INTERVAL_SECONDS)


def _send(sender: _Sender, body: Mapping[str, Any]) -> tuple[_Outcome, EventDeliveryError | None]:
    """Make one delivery attempt and classify its outcome; every Exception is caught."""
    try:
        sender.post(body)
    except EventRejectedError as error:
        return _Outcome.REJECTED, error
    except EventRetryableError as error:
        return _Outcome.RETRY, error
    except EventDeliveryError as error:
        return _Outcome.RETRY, EventRetryableError(str(error))
    except Exception as error:
        # A bug here must not lose the event: it is retried and spooled like a failed request.
        if _throttle.allow("internal"):
            logger.exception("delivering a moderation event failed unexpectedly")
        return _Outcome.RETRY, EventRetryableError(f"internal error: {type(error).__name__}")
    return _Outcome.DELIVERED, None


def _count_outcome(settings: Settings, *, replayed: bool) -> None:
    _stats.count("logged" if settings.uses_event_log else "delivered")
    if replayed:
        _stats.count("replayed")


def _count_rejected(error: EventDeliveryError | None) -> None:
    _stats.count("rejected")
    _stats.count_drop("rejected")
    status = error.status_code if error is not None else None
    if _throttle.allow(f"rejected-{status}"):
        logger.warning(
            "the server rejected a moderation event for good, so it is dropped, not retried: %s",
            error,
        )
    else:
        logger.debug("the server rejected a moderation event: %s", error)


# The worker thread


@dataclasses.dataclass
class _ReplayCursor:
    spool: Spool
    segment: ClaimedSegment
    index: int = 0


class _Worker:
    """The delivery thread of one runtime, and the retry state it keeps between requests."""

    def __init__(self, runtime: _Runtime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self.running = False
        self._stop_requested = False
        self._abandoned = False

        self._sender: _Sender | None = None
        self._sender_settings: Settings | None = None
        self._policy = RetryPolicy()
        self._probe_policy = RetryPolicy(max_backoff=MAX_PROBE_INTERVAL)

        self._current: ModerationEvent | None = None
        self._current_retries = 0
        self._previous_delay: float | None = None
        self._paused_until = 0.0
        self._offline = False
        self._probe_failures = 0

        self._replay: _ReplayCursor | None = None
        # A spool left by an earlier process, or by a crash, is replayed once the worker runs.
        self._replay_pending = True
        self._replay_not_before = 0.0

        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def start(self) -> None:
        self.running = True
        try:
            self._thread.start()
        except BaseException:
            self.running = False
            raise

    def is_current_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def request_stop(self) -> None:
        with self._lock:
            self._stop_requested = True
        self._runtime.queue.wake()

    def join(self, timeout: float) -> None:
        if not self.is_current_thread() and self._thread.is_alive():
            self._thread.join(timeout)

    def take_over(self) -> tuple[list[ModerationEvent], _ReplayCursor | None]:
        """Stop the worker for good and return its event in flight and its replay cursor.

        The thread may still be blocked in a request. When the request returns, the thread
        finds itself abandoned and exits without touching anything.
        """
        with self._lock:
            self._abandoned = True
            current, self._current = self._current, None
            replay, self._replay = self._replay, None
        return ([current] if current is not None else []), replay

    def forget_after_fork(self) -> None:
        """Close this process's copy of the claimed segment's descriptor, in a forked child."""
        replay = self._replay
        if replay is not None:
            with contextlib.suppress(OSError):
                os.close(replay.segment.descriptor)

    # The loop

    def _run(self) -> None:
        logger.debug("%s started in process %d", THREAD_NAME, os.getpid())
        try:
            while self._step():
                pass
        finally:
            self.running = False
            with self._lock:
                sender, self._sender = self._sender, None
            if sender is not None:
                sender.close()
            logger.debug("%s stopped in process %d", THREAD_NAME, os.getpid())

    def _step(self) -> bool:
        """Do one unit of work or wait for some; return False when the worker must stop."""
        with self._lock:
            if self._stop_requested or self._abandoned:
                return False
        try:
            self._refresh_sender()
            self._runtime.enqueue_summaries(self._runtime.storm.due_summaries())
            if time.monotonic() < self._paused_until:
                self._wait_while_paused()
            elif not self._work_once():
                self._runtime.queue.wait(self._idle_timeout(), for_events=True)
        except Exception:
            _stats.count("reporting_errors")
            if _throttle.allow("worker"):
                logger.exception("%s failed; it carries on", THREAD_NAME)
            self._recover_after_error()
        return True

    def _refresh_sender(self) -> None:
        try:
            settings = current_settings()
        except ConfigurationError:
            settings = self._runtime.settings
        if settings is not self._runtime.settings:
            self._runtime.apply_settings(settings)
        if settings is self._sender_settings:
            return
        sender = _build_sender(settings)
        with self._lock:
            old, self._sender = self._sender, sender
            self._sender_settings = settings
            self._policy = RetryPolicy(max_retries=settings.max_retries)
            # A new endpoint or token deserves a fresh try, without the old one's pauses.
            self._paused_until = 0.0
            self._offline = False
            self._probe_failures = 0
            self._replay_pending = True
        if old is not None:
            old.close()

    def _wait_while_paused(self) -> None:
        if self._offline:
            self._spool_queued()
        remaining = self._paused_until - time.monotonic()
        self._runtime.queue.wait(max(0.0, remaining), for_events=False)

    def _idle_timeout(self) -> float | None:
        timeouts: list[float] = []
        if self._runtime.storm.next_deadline() is not None:
            timeouts.append(_MAX_WINDOW_WAIT_SECONDS)
        if self._replay_pending or self._replay is not None:
            timeouts.append(max(0.0, self._replay_not_before - _clock.monotonic()))
        return min(timeouts) if timeouts else None

    def _work_once(self) -> bool:
        """Send the event being retried, the next queued one, or the next spooled one."""
        if self._current is not None:
            self._attempt_current()
            return True
        # Taking under the lock means that shutdown's take_over finds every event the worker took.
        with self._lock:
            if self._abandoned:
                return True
            event = self._runtime.queue.take()
            if event is not None:
                self._current = event
                self._current_retries = 0
                self._previous_delay = None
        if event is not None:
            self._attempt_current()
            return True
        if self._runtime.take_replay_hint():
            self._replay_pending = True
        wants_replay = self._replay is not None or self._replay_pending
        if wants_replay and _clock.monotonic() >= self._replay_not_before:
            return self._replay_once()
        return False

    # Fresh events

    def _attempt_current(self) -> None:
        event = self._current
        sender = self._sender
        assert event is not None
        assert sender is not None
        body = event.to_wire()
        if self._current_retries == 0 and not self._runtime.rate.try_acquire():
            with self._lock:
                if not self._abandoned:
                    self._finish_current(spool=True)
                    self._replay_pending = True
            return

        outcome, error = _send(sender, body)
        with self._lock:
            if self._abandoned:
                return
            if outcome is _Outcome.DELIVERED:
                _count_outcome(self._runtime.settings, replayed=False)
                self._finish_current(spool=False)
                self._note_success()
            elif outcome is _Outcome.REJECTED:
                _count_rejected(error)
                self._finish_current(spool=False)
            else:
                assert isinstance(error, EventRetryableError)
                self._handle_retryable(error)

    def _handle_retryable(self, error: EventRetryableError) -> None:
        if self._offline:
            # This was a probe of an endpoint already known to fail.
            self._finish_current(spool=True)
            self._go_offline(error)
            return
        self._current_retries += 1
        if not self._policy.should_retry(self._current_retries):
            self._finish_current(spool=True)
            self._go_offline(error)
            return
        delay = self._policy.delay(
            self._current_retries, retry_after=error.retry_after, previous=self._previous_delay
        )
        self._previous_delay = delay
        self._paused_until = time.monotonic() + delay
        _stats.count("retried")
        if _throttle.allow("retry"):
            logger.warning(
                "moderation event delivery failed: %s; retry %d of %d in %.2f s",
                error,
                self._current_retries,
                self._policy.max_retries,
                delay,
            )

    def _finish_current(self, *, spool: bool) -> None:
        """Retire the event in flight, spooling it first if asked; call with the lock held."""
        event, self._current = self._current, None
        if event is None:
            return
        if spool:
            self._runtime.spool_events([event], drop_reason="spool_error")
        self._runtime.queue.done()

    def _spool_queued(self) -> None:
        events = self._runtime.queue.drain()
        if events:
            self._runtime.spool_events(events, drop_reason="spool_error")

    # Health of the endpoint

    def _note_success(self) -> None:
        if self._offline:
            logger.info("moderation event delivery works again; replaying the spooled events")
            self._replay_pending = True
        self._offline = False
        self._probe_failures = 0
        self._previous_delay = None

    def _go_offline(self, error: EventRetryableError) -> None:
        self._probe_failures += 1
        delay = self._probe_policy.delay(self._probe_failures, retry_after=error.retry_after)
        self._paused_until = time.monotonic() + delay
        if not self._offline and _throttle.allow("offline"):
            logger.warning(
                "moderation events cannot be delivered (%s); they are spooled until a probe"
                " succeeds, the next in %.1f s",
                error,
                delay,
            )
        self._offline = True

    # Replay

    def _replay_once(self) -> bool:
        """Send one spooled event; return False when there is nothing to replay now."""
        cursor = self._replay or self._claim_segment()
        if cursor is None:
            return False
        if cursor.index >= len(cursor.segment.bodies):
            with self._lock:
                if self._abandoned:
                    return True
                self._replay = None
            cursor.spool.release(cursor.segment, cursor.index)
            return True
        if not self._runtime.rate.try_acquire():
            wait = self._runtime.rate.seconds_until_available()
            self._replay_not_before = _clock.monotonic() + wait
            return False

        sender = self._sender
        assert sender is not None
        outcome, failure = _send(sender, cursor.segment.bodies[cursor.index])
        with self._lock:
            if self._abandoned:
                return True
            if outcome is _Outcome.DELIVERED:
                _count_outcome(self._runtime.settings, replayed=True)
                cursor.index += 1
                self._note_success()
            elif outcome is _Outcome.REJECTED:
                _count_rejected(failure)
                cursor.index += 1
            else:
                assert isinstance(failure, EventRetryableError)
                self._replay = None
                self._replay_pending = True
                cursor.spool.release(cursor.segment, cursor.index)
                self._go_offline(failure)
        return True

    def _claim_segment(self) -> _ReplayCursor | None:
        spool = self._runtime.spool
        try:
            segment = spool.claim()
        except SpoolError as error:
            self._replay_pending = False
            if _throttle.allow("replay"):
                logger.warning("cannot replay the spool: %s", error)
            return None
        if segment is None:
            self._replay_pending = False
            return None
        cursor = _ReplayCursor(spool, segment)
        with self._lock:
            abandoned = self._abandoned
            if not abandoned:
                self._replay = cursor
        if abandoned:
            spool.release(segment, 0)
            return None
        return cursor

    def _recover_after_error(self) -> None:
        """Put the event in flight in the spool after an unexpected error, and slow down."""
        with self._lock:
            if self._abandoned:
                return
            self._finish_current(spool=True)
            self._paused_until = time.monotonic() + 1.0


# The runtime: everything one process uses to deliver events


class _Runtime:
    """The queue, storm control, spool and worker of one process and one settings object."""

    def __init__(self, settings: Settings, *, spool_only: bool = False) -> None:
        self.pid = os.getpid()
        self.settings = settings
        self.queue = _EventQueue(settings.queue_size)
        self.storm = StormControl(settings.coalesce_window, clock=_clock.monotonic)
        self.rate = RateLimiter(settings.max_events_per_minute, clock=_clock.monotonic)
        self.spool = Spool(settings.spool_dir, settings.spool_max_bytes)
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._spool_only = spool_only
        # Set when an event is spooled, so that the worker replays it once it is idle.
        self._replay_hint = False

    def submit(self, event: ModerationEvent) -> bool:
        if self.storm.admit(event) is Admission.COALESCED:
            _stats.count("coalesced")
            return True
        # Scrubbed only now, so that a storm of repeats pays for no redaction.
        prepared = prepare_event(event, self.settings)
        if prepared is None:
            return False
        if not self._spool_only and self.queue.put(prepared):
            self.ensure_worker()
            return True
        return self.spool_events([prepared], drop_reason="queue_full") == 1

    def apply_settings(self, settings: Settings) -> None:
        """Adopt a settings object that `configure()` installed."""
        with self._lock:
            old = self.settings
            if settings is old:
                return
            self.settings = settings
            self.queue.max_size = settings.queue_size
            self.storm.set_window(settings.coalesce_window)
            self.rate.set_rate(settings.max_events_per_minute)
            moved = (settings.spool_dir, settings.spool_max_bytes) != (
                old.spool_dir,
                old.spool_max_bytes,
            )
            old_spool = self.spool
            if moved:
                self.spool = Spool(settings.spool_dir, settings.spool_max_bytes)
        if moved:
            old_spool.close()
        self.queue.wake()

    def enqueue_summaries(self, summaries: Iterable[ModerationEvent]) -> None:
        for summary in summaries:
            _stats.count("summaries")
            # A summary quotes the last repeat's message, which was never scrubbed.
            prepared = prepare_event(summary, self.settings)
            if prepared is None:
                continue
            if self._spool_only or not self.queue.put(prepared):
                self.spool_events([prepared], drop_reason="queue_full")

    def spool_events(
        self, events: Iterable[ModerationEvent | Mapping[str, Any]], *, drop_reason: str
    ) -> int:
        """Append events to the spool and return how many it took; every Exception is caught.

        An event the spool cannot take is counted as dropped for `drop_reason`.
        """
        spooled = 0
        for event in events:
            try:
                body = event.to_wire() if isinstance(event, ModerationEvent) else event
                self.spool.append(body)
                spooled += 1
                self._replay_hint = True
            except SpoolError as error:
                _stats.count_drop(drop_reason, detail=str(error))
            except Exception:
                _stats.count_drop("internal_error")
                if _throttle.allow("spool-internal"):
                    logger.exception("spooling a moderation event failed unexpectedly")
        return spooled

    def take_replay_hint(self) -> bool:
        """Return whether events were spooled since the last call."""
        hint, self._replay_hint = self._replay_hint, False
        return hint

    def ensure_worker(self) -> bool:
        """Start the worker thread unless it runs; return whether it runs."""
        worker = self._worker
        if worker is not None and worker.running:
            return True
        with self._lock:
            worker = self._worker
            if worker is not None and worker.running:
                return True
            if self._spool_only:
                return False
            worker = _Worker(self)
            try:
                worker.start()
            except RuntimeError:
                # The interpreter is shutting down and starts no more threads.
                logger.debug("cannot start %s; spooling events instead", THREAD_NAME)
                self._spool_only = True
                return False
            self._worker = worker
            return True

    def flush(self, timeout: float | None) -> int:
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        self.enqueue_summaries(self.storm.pending_summaries())
        return self._wait_idle(deadline)

    def shutdown(self, timeout: float | None) -> int:
        """Flush until the deadline, stop the worker, and spool whatever is still pending.

        Returns:
            How many events were not delivered by the deadline. They are in the spool now,
            unless the spool could not take them, which is counted as a drop.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        self.enqueue_summaries(self.storm.pending_summaries())
        self._wait_idle(deadline)

        with self._lock:
            self._spool_only = True
            worker = self._worker
        in_flight: list[ModerationEvent] = []
        replay: _ReplayCursor | None = None
        if worker is not None:
            worker.request_stop()
            remaining = _STOP_GRACE_SECONDS if deadline is None else deadline - time.monotonic()
            worker.join(max(0.0, min(remaining, _STOP_GRACE_SECONDS)))
            in_flight, replay = worker.take_over()
        undelivered = in_flight + self.queue.close()
        if replay is not None:
            replay.spool.release(replay.segment, replay.index)
        spooled = self.spool_events(undelivered, drop_reason="shutdown")
        self.spool.close()
        if undelivered:
            logger.info(
                "%d moderation events were not delivered before shutdown; %d of them were"
                " spooled for a later replay",
                len(undelivered),
                spooled,
            )
        return len(undelivered)

    def forget_after_fork(self) -> None:
        """Close this process's copies of the parent's file descriptors, in a forked child."""
        self.spool.forget_after_fork()
        worker = self._worker
        if worker is not None:
            worker.forget_after_fork()

    def _wait_idle(self, deadline: float | None) -> int:
        while True:
            pending = self.queue.pending()
            if not pending or not self.ensure_worker():
                return pending
            self.queue.wake()
            slice_seconds = _IDLE_CHECK_SECONDS
            if deadline is not None:
                slice_seconds = min(slice_seconds, deadline - time.monotonic())
                if slice_seconds <= 0:
                    return pending
            self.queue.wait_idle(slice_seconds)


# Process-wide state

_runtime: _Runtime | None = None
_runtime_lock = threading.Lock()
_state_pid = os.getpid()
# Set by the exit hook: events submitted after it go to the spool, since no thread may start.
_exiting = False
_finalizer_pid: int | None = None


def submit(event: ModerationEvent) -> bool:
    """Hand `event` to the background worker without blocking; every Exception is caught.

    Repeats inside the coalescing window are only counted. When the queue is full, the event
    is appended to the spool on this thread, which costs one `os.write`.

    Returns:
        Whether the event was taken (queued, coalesced or spooled). False when it was dropped
        or the library failed; both are counted.
    """
    try:
        runtime = _runtime
        if runtime is None or runtime.pid != os.getpid():
            runtime = _get_runtime(create=True)
            assert runtime is not None
        settings = current_settings()
        if settings is not runtime.settings:
            runtime.apply_settings(settings)
        return runtime.submit(event)
    except Exception:
        _stats.count("reporting_errors")
        # A broken logging handler must not reach the guarded code either.
        with contextlib.suppress(Exception):
            logger.exception("mlops_guard_events failed to queue a moderation event")
        return False


def flush(timeout: float | None = None) -> int:
    """Wait until the pending events are delivered, spooled or dropped.

    Repeats counted by storm control are sent as their summary events first, so the counts
    add up after a flush. Events already in the spool are not waited for.

    Args:
        timeout: The maximum number of seconds to wait; None waits as long as it takes. While the
            endpoint is down, events go to the spool, so the wait ends after the retries.

    Returns:
        How many events are still pending (queued or being sent).
    """
    runtime = _get_runtime(create=False)
    if runtime is None:
        return 0
    return runtime.flush(timeout)


def shutdown(timeout: float | None = None) -> int:
    """Flush pending events until `timeout`, stop the worker, and spool what is left.

    It returns by the deadline even when a request hangs: that event is spooled too, so it may
    be delivered twice. The next event reported starts a new worker.

    Args:
        timeout: The maximum number of seconds to spend delivering; None waits as long as
            it takes.

    Returns:
        How many events were still pending at the deadline; they are in the spool now.
    """
    global _runtime
    _get_runtime(create=False)
    with _runtime_lock:
        runtime, _runtime = _runtime, None
    if runtime is None:
        return 0
    return runtime.shutdown(timeout)


def replay_spool(
    timeout: float | None = None, *, progress: Callable[[int], None] | None = None
) -> int:
    """Send the spooled events now, on this thread, oldest first.

    Events the server rejects for good are removed and counted as rejected. The replay stops
    at the first failure that a retry within the deadline cannot fix; the events not sent stay
    in the spool. The per-minute cap does not apply, because the caller asked for the replay.

    Args:
        timeout: The maximum number of seconds to spend; None replays until the spool is
            empty or a failure stops it. A request already started may run past it, by at most the
            connect and read timeouts.
        progress: Called on this thread after each spooled event is finished (delivered, or
            rejected for good) with the number finished so far.

    Returns:
        How many spooled events were delivered (or, without an endpoint, written to the
        event log).

    Raises:
        ConfigurationError: The settings in the environment are invalid.
        SpoolError: The spool directory cannot be read.
    """
    settings = current_settings()
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    runtime = _get_runtime(create=False)
    if runtime is not None and runtime.settings.spool_dir == settings.spool_dir:
        spool = runtime.spool
    else:
        spool = Spool(settings.spool_dir, settings.spool_max_bytes)
    sender = _build_sender(settings)
    policy = RetryPolicy(max_retries=settings.max_retries)
    delivered = 0
    done = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            segment = spool.claim()
            if segment is None:
                break
            sent, finished = _replay_segment(
                sender, settings, policy, segment, deadline, _offset_progress(progress, done)
            )
            delivered += sent
            done += finished
            spool.release(segment, finished)
            if finished < len(segment.bodies):
                break
    finally:
        sender.close()
    return delivered


def _offset_progress(
    progress: Callable[[int], None] | None, offset: int
) -> Callable[[int], None] | None:
    """Turn a segment's own count into the replay's count, for the progress callback."""
    if progress is None:
        return None
    return lambda finished: progress(offset + finished)


def _replay_segment(
    sender: _Sender,
    settings: Settings,
    policy: RetryPolicy,
    segment: ClaimedSegment,
    deadline: float | None,
    progress: Callable[[int], None] | None,
) -> tuple[int, int]:
    """Send a claimed segment's events; return how many were delivered and how many finished."""
    delivered = 0
    for index, body in enumerate(segment.bodies):
        retry = 0
        while True:
            outcome, error = _send(sender, body)
            if outcome is not _Outcome.RETRY:
                break
            assert isinstance(error, EventRetryableError)
            retry += 1
            if not policy.should_retry(retry):
                logger.warning("replay of the spool stopped: %s", error)
                return delivered, index
            delay = policy.delay(retry, retry_after=error.retry_after)
            if deadline is not None and time.monotonic() + delay >= deadline:
                return delivered, index
            _stats.count("retried")
            time.sleep(delay)
        if outcome is _Outcome.DELIVERED:
            _count_outcome(settings, replayed=True)
            delivered += 1
        else:
            _count_rejected(error)
        if progress is not None:
            progress(index + 1)
        if deadline is not None and time.monotonic() >= deadline:
            return delivered, index + 1
    return delivered, len(segment.bodies)


def queue_high_water() -> int:
    """Return the largest number of events the current queue has held, for tests and doctor."""
    runtime = _get_runtime(create=False)
    return runtime.queue.high_water if runtime is not None else 0


def _get_runtime(*, create: bool) -> _Runtime | None:
    global _runtime
    if _state_pid != os.getpid():
        # A fork whose at-fork hooks did not run, such as one made from C.
        _reset_after_fork()
    runtime = _runtime
    if runtime is not None or not create:
        return runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = _Runtime(current_settings(), spool_only=_exiting)
            _register_multiprocessing_finalizer()
        return _runtime


def _reset_after_fork() -> None:
    """Give a forked child its own state; the parent's worker thread does not exist here."""
    global _runtime, _runtime_lock, _state_pid, _exiting, _finalizer_pid
    inherited = _runtime
    _runtime = None
    _runtime_lock = threading.Lock()
    _state_pid = os.getpid()
    _exiting = False
    _finalizer_pid = None
    _stats.reset_counters()
    if inherited is not None:
        try:
            inherited.forget_after_fork()
        except Exception:  # a fork hook must never raise
            logger.debug("closing inherited spool descriptors failed", exc_info=True)


def _exit_hook() -> None:
    """Deliver what is pending with the exit deadline, then spool the rest."""
    global _exiting
    try:
        if _state_pid != os.getpid():
            return
        _exiting = True
        runtime = _runtime
        if runtime is not None:
            shutdown(runtime.settings.exit_flush_timeout)
    except Exception:  # nothing may fail the interpreter's exit
        logger.debug("the exit flush of moderation events failed", exc_info=True)


def _register_multiprocessing_finalizer() -> None:
    """Run the exit hook in `multiprocessing` children, which end with `os._exit`.

    Such a child skips `atexit`, but runs `multiprocessing.util`'s finalizers first. The
    registry is cleared in each new child, so this registers once per process, and only when
    the program already imported `multiprocessing`.
    """
    global _finalizer_pid
    util = sys.modules.get("multiprocessing.util")
    if util is None or _finalizer_pid == os.getpid():
        return
    _finalizer_pid = os.getpid()
    util.Finalize(None, _exit_hook, exitpriority=10)


atexit.register(_exit_hook)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
