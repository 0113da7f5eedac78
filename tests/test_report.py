"""The explicit call: `report_moderation_event` and the drop-in `MLOpsEvent`."""

from __future__ import annotations

import inspect
import json
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

import mlops_guard_events
from mlops_guard_events import _report, _stats
from mlops_guard_events._config import configure
from mlops_guard_events._event import ModerationEventType
from mlops_guard_events._receiver import Faults, RemoteEventsReceiver
from mlops_guard_events._report import MLOpsEvent, report_moderation_event
from mlops_guard_events.exceptions import (
    EventDeliveryError,
    EventRejectedError,
    EventRetryableError,
    SpoolError,
)
from mlops_guard_events.testing import capture_events

RUNTIME = "moderationModelRuntimeError"
TOKEN = "tok-88d1-SECRET-41aa"

OFFICIAL_PARAMETERS = [
    ("event_type", inspect.Parameter.empty),
    ("timestamp", None),
    ("title", None),
    ("message", None),
    ("deployment_id", None),
    ("org_id", None),
    ("guard_name", None),
    ("metric_name", None),
]


@pytest.fixture(autouse=True)
def fresh_counters() -> Iterator[None]:
    _stats.reset_counters()
    yield
    _stats.reset_counters()


@pytest.fixture
def configured(receiver: RemoteEventsReceiver) -> RemoteEventsReceiver:
    configure(endpoint=receiver.endpoint, max_retries=0)
    return receiver


def parameters_of(function: Any) -> list[tuple[str, object]]:
    signature = inspect.signature(function)
    for parameter in signature.parameters.values():
        assert parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    return [(name, parameter.default) for name, parameter in signature.parameters.items()]


def test_signature_matches_official() -> None:
    assert parameters_of(report_moderation_event) == OFFICIAL_PARAMETERS


def test_mlops_event_signature_matches() -> None:
    assert parameters_of(MLOpsEvent.report_moderation_event) == OFFICIAL_PARAMETERS


def test_package_exports_the_call() -> None:
    assert mlops_guard_events.report_moderation_event is report_moderation_event
    assert mlops_guard_events.MLOpsEvent is MLOpsEvent


def test_report_delivers_event(configured: RemoteEventsReceiver) -> None:
    report_moderation_event(
        RUNTIME,
        "2026-01-31T12:00:00Z",
        "Guard failed",
        "timed out",
        "dep-1",
        "org-1",
        "toxicity",
        "latency",
    )

    events = configured.events()
    assert len(events) == 1
    assert {key: value for key, value in events[0].items() if key != "id"} == {
        "eventType": RUNTIME,
        "timestamp": "2026-01-31T12:00:00.000000+00:00",
        "title": "Guard failed",
        "message": "timed out",
        "deploymentId": "dep-1",
        "orgId": "org-1",
        "moderationData": {"guardName": "toxicity", "metricName": "latency"},
    }


def test_report_counts_delivered(configured: RemoteEventsReceiver) -> None:
    report_moderation_event(RUNTIME)

    assert _stats.stats()["delivered"] == 1


def test_mlops_event_is_drop_in(configured: RemoteEventsReceiver) -> None:
    MLOpsEvent.report_moderation_event(
        event_type="moderationMetricCreationError",
        title="Failed to create moderation metric",
        message="Maximum number of custom metrics reached",
        deployment_id="5c939e08962d741e34f609f0",
        metric_name="Blocked Prompts",
    )

    event = configured.events()[0]
    assert event["eventType"] == "moderationMetricCreationError"
    assert event["moderationData"] == {"guardName": "", "metricName": "Blocked Prompts"}


def test_enum_member_is_accepted(configured: RemoteEventsReceiver) -> None:
    report_moderation_event(ModerationEventType.MODERATION_MODEL_CONFIG_ERROR)

    assert configured.events()[0]["eventType"] == "moderationModelConfigError"


def test_ids_default_to_configured(receiver: RemoteEventsReceiver) -> None:
    configure(endpoint=receiver.endpoint, deployment_id="dep-conf", org_id="org-conf")

    report_moderation_event(RUNTIME)

    event = receiver.events()[0]
    assert event["deploymentId"] == "dep-conf"
    assert event["orgId"] == "org-conf"


def test_explicit_ids_override_configured(receiver: RemoteEventsReceiver) -> None:
    configure(endpoint=receiver.endpoint, deployment_id="dep-conf", org_id="org-conf")

    report_moderation_event(RUNTIME, deployment_id="dep-call", org_id="org-call")

    event = receiver.events()[0]
    assert event["deploymentId"] == "dep-call"
    assert event["orgId"] == "org-call"


def test_deployment_id_env_default(
    receiver: RemoteEventsReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_DEPLOYMENT_ID", "dep-env")
    configure(endpoint=receiver.endpoint)

    report_moderation_event(RUNTIME)

    assert receiver.events()[0]["deploymentId"] == "dep-env"


def test_missing_ids_are_omitted(configured: RemoteEventsReceiver) -> None:
    report_moderation_event(RUNTIME)

    event = configured.events()[0]
    assert "deploymentId" not in event
    assert "orgId" not in event


def test_invalid_input_names_parameter(configured: RemoteEventsReceiver) -> None:
    with pytest.raises(ValueError, match="guard_name") as caught:
        report_moderation_event(RUNTIME, guard_name="g" * 513)

    assert "guardName" not in str(caught.value)
    assert configured.requests() == []


def test_invalid_type_raises_before_request(configured: RemoteEventsReceiver) -> None:
    with pytest.raises(ValueError, match="moderationModelRuntimeError"):
        report_moderation_event("moderationModelRuntimeErr")

    assert configured.requests() == []


def test_naive_timestamp_means_utc(configured: RemoteEventsReceiver) -> None:
    report_moderation_event(RUNTIME, timestamp=datetime(2026, 1, 31, 12, 0, 0))

    assert configured.events()[0]["timestamp"] == "2026-01-31T12:00:00.000000+00:00"


def test_default_timestamp_is_now(configured: RemoteEventsReceiver) -> None:
    before = datetime.now(timezone.utc)
    report_moderation_event(RUNTIME)
    after = datetime.now(timezone.utc)

    sent = datetime.fromisoformat(configured.events()[0]["timestamp"])
    assert before <= sent <= after


def test_rejection_raises_with_status(configured: RemoteEventsReceiver) -> None:
    configured.set_faults(Faults(status=422))

    with pytest.raises(EventRejectedError) as caught:
        report_moderation_event(RUNTIME)

    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, EventDeliveryError)
    assert caught.value.status_code == 422
    assert "422" in str(caught.value)
    assert "injected fault" in str(caught.value)
    assert isinstance(caught.value.__cause__, requests.HTTPError)


def test_rejection_counts_rejected(configured: RemoteEventsReceiver) -> None:
    configured.set_faults(Faults(status=400))

    with pytest.raises(EventRejectedError):
        report_moderation_event(RUNTIME)

    assert _stats.stats()["rejected"] == 1
    assert _stats.stats()["delivered"] == 0


def test_wrong_token_raises_401() -> None:
    with RemoteEventsReceiver(token=TOKEN) as receiver:
        configure(endpoint=receiver.endpoint, api_token="not-the-token")

        with pytest.raises(EventRejectedError) as caught:
            report_moderation_event(RUNTIME)

    assert caught.value.status_code == 401
    assert "not-the-token" not in str(caught.value)


def test_token_scheme_reaches_server() -> None:
    with RemoteEventsReceiver(token=TOKEN) as receiver:
        configure(endpoint=receiver.endpoint, api_token=TOKEN, token_type="Token")

        report_moderation_event(RUNTIME)

        assert receiver.requests()[0].header("Authorization") == f"Token {TOKEN}"


def test_unreachable_server_raises_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configure(endpoint=f"http://127.0.0.1:{port}/api/v2", max_retries=0)

    with pytest.raises(EventRetryableError) as caught:
        report_moderation_event(RUNTIME)

    assert isinstance(caught.value, ValueError)
    assert caught.value.status_code is None
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


def test_retries_until_accepted(configured: RemoteEventsReceiver) -> None:
    configure(endpoint=configured.endpoint, max_retries=2)
    configured.set_faults(Faults(fail_first=2, fail_first_status=503, retry_after=0))

    report_moderation_event(RUNTIME)

    assert [request.status for request in configured.requests()] == [503, 503, 201]
    assert _stats.stats()["retried"] == 2


def test_disabled_validates_and_returns(receiver: RemoteEventsReceiver) -> None:
    configure(endpoint=receiver.endpoint, enabled=False)

    report_moderation_event(RUNTIME)
    with pytest.raises(ValueError, match="title"):
        report_moderation_event(RUNTIME, title="t" * 513)

    assert receiver.requests() == []
    assert _stats.stats()["delivered"] == 0


def test_no_endpoint_appends_event_log(tmp_path: Path) -> None:
    settings = configure(state_dir=tmp_path)

    report_moderation_event(RUNTIME, "2026-01-31T12:00:00Z", title="logged", deployment_id="d")

    assert settings.event_log_path == tmp_path / "events.jsonl"
    lines = (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "eventType": RUNTIME,
            "timestamp": "2026-01-31T12:00:00.000000+00:00",
            "title": "logged",
            "deploymentId": "d",
            "moderationData": {"guardName": "", "metricName": ""},
        }
    ]
    assert _stats.stats()["logged"] == 1


def test_event_log_failure_raises(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("")
    (tmp_path / "events.jsonl").symlink_to(target)
    configure(state_dir=tmp_path)

    with pytest.raises(SpoolError, match="symbolic link"):
        report_moderation_event(RUNTIME)


def test_capture_takes_explicit_event(configured: RemoteEventsReceiver) -> None:
    with capture_events() as captured:
        report_moderation_event(RUNTIME, guard_name="toxicity")

    assert len(captured) == 1
    assert captured[0].guard_name == "toxicity"
    assert configured.requests() == []


def test_connection_reused_across_calls(configured: RemoteEventsReceiver) -> None:
    report_moderation_event(RUNTIME)
    report_moderation_event(RUNTIME)

    ports = {request.client_address[1] for request in configured.requests()}
    assert len(ports) == 1


def test_configure_replaces_transport(receiver: RemoteEventsReceiver) -> None:
    first_settings = configure(endpoint=receiver.endpoint)
    first = _report._transport_for(first_settings)
    second_settings = configure(endpoint=receiver.endpoint + "/")

    second = _report._transport_for(second_settings)

    assert second is not first
    assert _report._transport_for(second_settings) is second


def test_new_settings_reach_server() -> None:
    with RemoteEventsReceiver() as old, RemoteEventsReceiver() as new:
        configure(endpoint=old.endpoint)
        report_moderation_event(RUNTIME)
        configure(endpoint=new.endpoint)
        report_moderation_event(RUNTIME)

        assert len(old.events()) == 1
        assert len(new.events()) == 1


def test_concurrent_calls_from_threads(configured: RemoteEventsReceiver) -> None:
    errors: list[BaseException] = []

    def report_five(number: int) -> None:
        try:
            for index in range(5):
                report_moderation_event(RUNTIME, title=f"{number}-{index}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=report_five, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    titles = sorted(event["title"] for event in configured.events())
    assert titles == sorted(f"{number}-{index}" for number in range(6) for index in range(5))
