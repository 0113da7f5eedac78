"""The official `datarobot` client and this library send the same event body.

Both clients post to one loopback receiver and the received bodies are compared key by key.
The differences on purpose, each checked below:

- Authorization: the official client defaults to `Token <token>`; this library to `Bearer
  <token>`. The server accepts both.
- A missing deployment ID: the official client sends the text "None"; this library leaves
  `deploymentId` out.
- The timestamp: the official client sends the caller's string as it is, and by default a
  naive UTC time without an offset. This library sends the same instant with an explicit
  `+00:00` offset and microseconds.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from datarobot.client import set_client
from datarobot.mlops.events import MLOpsEvent as OfficialMLOpsEvent
from datarobot.rest import RESTClientObject

from mlops_guard_events import MLOpsEvent, configure
from mlops_guard_events._receiver import RemoteEventsReceiver

TOKEN = "tok-5e02-SECRET-99b4"
EVENT: dict[str, Any] = {
    "event_type": "moderationModelRuntimeError",
    "timestamp": "2026-01-31T12:00:00.123456Z",
    "title": "Guard failed",
    "message": "toxicity guard timed out after 2.0 s",
    "deployment_id": "65a1b2c3d4e5f6a7b8c9d0e1",
    "org_id": "5f1e2d3c4b5a69788796a5b4",
    "guard_name": "toxicity",
    "metric_name": "",
}


@pytest.fixture
def shared_receiver() -> Iterator[RemoteEventsReceiver]:
    with RemoteEventsReceiver(token=TOKEN, reject_none_deployment_id=False) as receiver:
        yield receiver


@pytest.fixture
def official_client(shared_receiver: RemoteEventsReceiver) -> Iterator[None]:
    # Built directly because datarobot.Client() first requests the server's API version,
    # which the receiver does not serve. max_retries=0 keeps urllib3 from warning about the
    # retry options the client would otherwise build.
    client = RESTClientObject(auth=TOKEN, endpoint=shared_receiver.endpoint, max_retries=0)
    previous = set_client(client)
    yield
    set_client(previous)  # type: ignore[arg-type]
    client.close()


def send_through_both(receiver: RemoteEventsReceiver, **event: Any) -> list[dict[str, Any]]:
    OfficialMLOpsEvent.report_moderation_event(**event)
    configure(endpoint=receiver.endpoint, api_token=TOKEN)
    MLOpsEvent.report_moderation_event(**event)

    requests = receiver.requests()
    assert [request.status for request in requests] == [201, 201]
    return [
        {key: value for key, value in stored.items() if key != "id"} for stored in receiver.events()
    ]


@pytest.mark.usefixtures("official_client")
def test_same_body_key_by_key(shared_receiver: RemoteEventsReceiver) -> None:
    official, ours = send_through_both(shared_receiver, **EVENT)

    assert sorted(ours) == sorted(official)
    for key in official:
        if key == "timestamp":
            continue
        assert ours[key] == official[key], key


@pytest.mark.usefixtures("official_client")
def test_same_timestamp_instant(shared_receiver: RemoteEventsReceiver) -> None:
    official, ours = send_through_both(shared_receiver, **EVENT)

    official_instant = datetime.fromisoformat(official["timestamp"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(ours["timestamp"]) == official_instant
    # Deliberate: the offset is always written as +00:00.
    assert official["timestamp"].endswith("Z")
    assert ours["timestamp"].endswith("+00:00")


@pytest.mark.usefixtures("official_client")
def test_optional_fields_omitted_alike(shared_receiver: RemoteEventsReceiver) -> None:
    minimal = {
        "event_type": "moderationMetricReportingError",
        "timestamp": "2026-01-31T12:00:00+00:00",
        "deployment_id": "65a1b2c3d4e5f6a7b8c9d0e1",
    }

    official, ours = send_through_both(shared_receiver, **minimal)

    assert sorted(ours) == sorted(official)
    assert (
        ours["moderationData"] == official["moderationData"] == {"guardName": "", "metricName": ""}
    )


@pytest.mark.usefixtures("official_client")
def test_missing_deployment_id_differs(shared_receiver: RemoteEventsReceiver) -> None:
    without_id = {key: value for key, value in EVENT.items() if key != "deployment_id"}

    official, ours = send_through_both(shared_receiver, **without_id)

    # Deliberate: the official client sends the text "None"; this library omits the key.
    assert official["deploymentId"] == "None"
    assert "deploymentId" not in ours


@pytest.mark.usefixtures("official_client")
def test_authorization_scheme_differs(shared_receiver: RemoteEventsReceiver) -> None:
    send_through_both(shared_receiver, **EVENT)

    official, ours = (request.header("Authorization") for request in shared_receiver.requests())
    # Deliberate: Bearer, which the server accepts as well as the official default Token.
    assert official == f"Token {TOKEN}"
    assert ours == f"Bearer {TOKEN}"


@pytest.mark.usefixtures("official_client")
def test_same_scheme_when_configured(shared_receiver: RemoteEventsReceiver) -> None:
    OfficialMLOpsEvent.report_moderation_event(**EVENT)
    configure(endpoint=shared_receiver.endpoint, api_token=TOKEN, token_type="Token")
    MLOpsEvent.report_moderation_event(**EVENT)

    official, ours = (request.header("Authorization") for request in shared_receiver.requests())
    assert ours == official


def test_signatures_match() -> None:
    official = inspect.signature(OfficialMLOpsEvent.report_moderation_event)
    ours = inspect.signature(MLOpsEvent.report_moderation_event)

    assert list(ours.parameters) == list(official.parameters)
    for name, parameter in official.parameters.items():
        assert ours.parameters[name].kind == parameter.kind, name
        assert ours.parameters[name].default == parameter.default, name


def test_invalid_type_is_value_error_in_both() -> None:
    with pytest.raises(ValueError, match="moderationModelRuntimeError"):
        OfficialMLOpsEvent.report_moderation_event("guardFailed")
    with pytest.raises(ValueError, match="moderationModelRuntimeError"):
        MLOpsEvent.report_moderation_event("guardFailed")
