"""Events of decorators and context managers travel over HTTP to a loopback receiver."""

from __future__ import annotations

import asyncio

from mlops_guard_events import flush, guard_events, metric_reporting_events
from mlops_guard_events._receiver import Faults, RemoteEventsReceiver

# Seconds to wait for the worker; delivery to 127.0.0.1 normally takes milliseconds.
DELIVERY_TIMEOUT = 30.0

# Seconds the receiver holds a request in the slow-server test: far longer than a guarded call
# that does not wait on the network takes, even on a loaded machine.
SERVER_LATENCY = 2.0


def test_decorator_event_reaches_server(events_receiver: RemoteEventsReceiver) -> None:
    @guard_events("Toxicity", fallback=None)
    def check(text: str) -> bool:
        raise ValueError("model unavailable")

    assert check("the prompt") is None

    [body] = events_receiver.wait_for_events(1, timeout_seconds=DELIVERY_TIMEOUT)
    assert body["eventType"] == "moderationModelRuntimeError"
    assert body["title"] == "Guard 'Toxicity' failed"
    assert body["message"].startswith("ValueError: model unavailable")
    assert body["moderationData"] == {"guardName": "Toxicity", "metricName": ""}
    assert "the prompt" not in str(body)


def test_async_block_event_reaches_server(events_receiver: RemoteEventsReceiver) -> None:
    async def upload() -> None:
        async with metric_reporting_events("latency", timeout=0.02, fallback=None):
            await asyncio.Event().wait()

    asyncio.run(upload())

    [body] = events_receiver.wait_for_events(1, timeout_seconds=DELIVERY_TIMEOUT)
    assert body["eventType"] == "moderationMetricReportingError"
    assert body["title"] == "Reporting of custom metric 'latency' timed out after 0.02 s"
    assert body["moderationData"] == {"guardName": "", "metricName": "latency"}


def test_guard_returns_before_server_answers(events_receiver: RemoteEventsReceiver) -> None:
    # The server delays its response, so a guard that waited for delivery would return only
    # after the receiver had accepted the event.
    events_receiver.set_faults(Faults(latency_seconds=SERVER_LATENCY))

    @guard_events("Toxicity", fallback="fallback")
    def check() -> str:
        raise ValueError("model unavailable")

    assert check() == "fallback"
    assert events_receiver.events() == []

    events_receiver.set_faults(Faults())
    assert flush(DELIVERY_TIMEOUT) == 0
    assert len(events_receiver.wait_for_events(1, timeout_seconds=DELIVERY_TIMEOUT)) == 1
