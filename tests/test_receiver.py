"""Tests of the local remoteEvents receiver over real loopback sockets."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from mlops_guard_events._receiver import Faults, RemoteEventsReceiver

TIMEOUT_SECONDS = 10.0


def valid_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventType": "moderationModelRuntimeError",
        "timestamp": "2026-01-31T12:00:00.123456+00:00",
        "title": "Guard failed",
        "message": "toxicity guard timed out",
        "deploymentId": "65a1b2c3d4e5f6a7b8c9d0e1",
        "moderationData": {"guardName": "toxicity", "metricName": ""},
    }
    event.update(overrides)
    return event


def post(receiver: RemoteEventsReceiver, body: Any, **kwargs: Any) -> requests.Response:
    return requests.post(receiver.events_url, json=body, timeout=TIMEOUT_SECONDS, **kwargs)


def exchange_raw(receiver: RemoteEventsReceiver, data: bytes, *, half_close: bool = False) -> bytes:
    """Send ``data`` on a new connection and return everything received until the server
    closes it."""
    with socket.create_connection((receiver.host, receiver.port), timeout=TIMEOUT_SECONDS) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def raw_post(body: bytes, *, content_length: int | None = None) -> bytes:
    length = len(body) if content_length is None else content_length
    head = (
        "POST /api/v2/remoteEvents/ HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


# Accepted events


def test_post_valid_event_201(receiver: RemoteEventsReceiver) -> None:
    response = post(receiver, valid_event())

    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert len(body["id"]) == 24
    assert {key: value for key, value in body.items() if key != "id"} == valid_event()


def test_post_stores_event(receiver: RemoteEventsReceiver) -> None:
    response = post(receiver, valid_event())

    events = receiver.events()
    assert events == [response.json()]
    assert events[0]["id"] == response.json()["id"]


def test_minimal_event_accepted(receiver: RemoteEventsReceiver) -> None:
    event = {
        "eventType": "moderationMetricReportingError",
        "timestamp": "2026-01-31T12:00:00Z",
        "moderationData": {"guardName": "", "metricName": ""},
    }

    response = post(receiver, event)

    assert response.status_code == 201


@pytest.mark.parametrize(
    "event_type",
    [
        "moderationMetricCreationError",
        "moderationMetricReportingError",
        "moderationModelConfigError",
        "moderationModelRuntimeError",
        "moderationModelScoringError",
    ],
)
def test_each_event_type_accepted(receiver: RemoteEventsReceiver, event_type: str) -> None:
    assert post(receiver, valid_event(eventType=event_type)).status_code == 201


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-01-31T12:00:00Z",
        "2026-01-31t12:00:00z",
        "2026-01-31T12:00:00+00:00",
        "2026-01-31T12:00:00.5-05:30",
        "2028-02-29T23:59:59.999999+14:00",
    ],
)
def test_timestamp_forms_accepted(receiver: RemoteEventsReceiver, timestamp: str) -> None:
    assert post(receiver, valid_event(timestamp=timestamp)).status_code == 201


def test_limits_at_maximum_accepted(receiver: RemoteEventsReceiver) -> None:
    event = valid_event(
        title="t" * 512,
        message="m" * 16384,
        moderationData={"guardName": "g" * 512, "metricName": "n" * 512},
    )

    assert post(receiver, event).status_code == 201


def test_path_without_slash_accepted(receiver: RemoteEventsReceiver) -> None:
    url = f"{receiver.endpoint}/remoteEvents"

    response = requests.post(url, json=valid_event(), timeout=TIMEOUT_SECONDS)

    assert response.status_code == 201
    assert len(receiver.events()) == 1


def test_endpoint_format(receiver: RemoteEventsReceiver) -> None:
    assert receiver.endpoint == f"http://127.0.0.1:{receiver.port}/api/v2"
    assert receiver.events_url == f"http://127.0.0.1:{receiver.port}/api/v2/remoteEvents/"


# Rejected requests


def without(key: str) -> dict[str, Any]:
    event = valid_event()
    del event[key]
    return event


INVALID_EVENTS = [
    pytest.param(without("eventType"), "missing required field 'eventType'", id="missing-type"),
    pytest.param(valid_event(eventType="moderationFoo"), "invalid eventType", id="unknown-type"),
    pytest.param(valid_event(eventType=3), "'eventType' must be a string", id="type-not-string"),
    pytest.param(without("timestamp"), "missing required field 'timestamp'", id="no-timestamp"),
    pytest.param(
        valid_event(timestamp="2026-02-30T00:00:00Z"), "day is out of range", id="impossible-date"
    ),
    pytest.param(
        valid_event(timestamp="2026-01-31T12:00:00"), "UTC offset is missing", id="naive-timestamp"
    ),
    pytest.param(valid_event(timestamp="yesterday"), "expected RFC 3339", id="not-a-timestamp"),
    pytest.param(
        valid_event(timestamp="2026-01-31T25:00:00Z"), "hour must be in", id="impossible-hour"
    ),
    pytest.param(
        valid_event(timestamp="2026-01-31T12:00:00+24:00"), "offset is out of range", id="offset"
    ),
    pytest.param(valid_event(timestamp=1767182400), "must be a string", id="numeric-timestamp"),
    pytest.param(valid_event(title="t" * 513), "'title' is too long", id="oversize-title"),
    pytest.param(valid_event(message="m" * 16385), "'message' is too long", id="oversize-message"),
    pytest.param(valid_event(title=None), "'title' must be a string, got null", id="null-title"),
    pytest.param(valid_event(orgId=12), "'orgId' must be a string", id="org-id-number"),
    pytest.param(without("moderationData"), "'moderationData'", id="no-moderation-data"),
    pytest.param(
        valid_event(moderationData=["toxicity"]), "must be an object", id="moderation-data-array"
    ),
    pytest.param(
        valid_event(moderationData={"metricName": ""}),
        "missing required field 'moderationData.guardName'",
        id="missing-guard-name",
    ),
    pytest.param(
        valid_event(moderationData={"guardName": "toxicity"}),
        "missing required field 'moderationData.metricName'",
        id="missing-metric-name",
    ),
    pytest.param(
        valid_event(moderationData={"guardName": "g" * 513, "metricName": ""}),
        "'moderationData.guardName' is too long",
        id="oversize-guard-name",
    ),
    pytest.param(
        valid_event(moderationData={"guardName": "", "metricName": "", "score": 1}),
        "unknown field moderationData.score",
        id="moderation-data-extra-key",
    ),
    pytest.param(valid_event(deploymentId="None"), "text 'None'", id="none-deployment-id"),
    pytest.param(valid_event(deploymentId=""), "must not be empty", id="empty-deployment-id"),
    pytest.param(valid_event(extra="x"), "unknown field extra", id="unknown-key"),
]


@pytest.mark.parametrize(("event", "expected_message"), INVALID_EVENTS)
def test_invalid_event_422(
    receiver: RemoteEventsReceiver, event: dict[str, Any], expected_message: str
) -> None:
    response = post(receiver, event)

    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/json"
    assert expected_message in response.json()["message"]
    assert receiver.events() == []


def test_none_deployment_id_allowed_by_option() -> None:
    with RemoteEventsReceiver(reject_none_deployment_id=False) as receiver:
        response = post(receiver, valid_event(deploymentId="None"))

    assert response.status_code == 201
    assert receiver.events()[0]["deploymentId"] == "None"


@pytest.mark.parametrize(
    ("body", "expected_message"),
    [
        pytest.param(b'{"eventType": ', "not valid JSON", id="truncated"),
        pytest.param(b"[1, 2]", "must be a JSON object, got array", id="array"),
        pytest.param(b'"text"', "must be a JSON object, got string", id="string"),
        pytest.param(b"\xff\xfe{}", "not valid UTF-8", id="not-utf8"),
        pytest.param(b'{"title": "a", "title": "b"}', "appears more than once", id="duplicate"),
        pytest.param(b'{"title": NaN}', "NaN is not a JSON number", id="nan"),
        pytest.param(b"[" * 100_000, "not valid JSON", id="deep-nesting"),
    ],
)
def test_malformed_body_400(
    receiver: RemoteEventsReceiver, body: bytes, expected_message: str
) -> None:
    response = requests.post(
        receiver.events_url,
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT_SECONDS,
    )

    assert response.status_code == 400
    assert expected_message in response.json()["message"]


def test_unknown_path_404(receiver: RemoteEventsReceiver) -> None:
    url = f"{receiver.endpoint}/deployments/"

    response = requests.post(url, json=valid_event(), timeout=TIMEOUT_SECONDS)

    assert response.status_code == 404
    assert "/api/v2/deployments/" in response.json()["message"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE"])
def test_other_method_405(receiver: RemoteEventsReceiver, method: str) -> None:
    response = requests.request(method, receiver.events_url, timeout=TIMEOUT_SECONDS)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert method in response.json()["message"]


def test_head_405_without_body(receiver: RemoteEventsReceiver) -> None:
    response = requests.head(receiver.events_url, timeout=TIMEOUT_SECONDS)

    assert response.status_code == 405
    assert response.content == b""
    assert int(response.headers["Content-Length"]) > 0


# Authorization


def test_wrong_token_401() -> None:
    with RemoteEventsReceiver(token="secret") as receiver:
        response = post(receiver, valid_event(), headers={"Authorization": "Bearer wrong"})

    assert response.status_code == 401
    assert "Authorization" in response.json()["message"]
    assert "secret" not in response.text
    assert receiver.events() == []


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("secret", id="no-scheme"),
        pytest.param("Basic secret", id="basic-scheme"),
        pytest.param("Bearer secret2", id="longer-token"),
        pytest.param("Bearer ", id="empty-token"),
    ],
)
def test_bad_authorization_401(authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with RemoteEventsReceiver(token="secret") as receiver:
        response = post(receiver, valid_event(), headers=headers)

    assert response.status_code == 401


@pytest.mark.parametrize("scheme", ["Bearer", "Token", "bearer"])
def test_token_schemes_accepted(scheme: str) -> None:
    with RemoteEventsReceiver(token="secret") as receiver:
        response = post(receiver, valid_event(), headers={"Authorization": f"{scheme} secret"})

    assert response.status_code == 201
    assert receiver.requests()[0].header("authorization") == f"{scheme} secret"


# Request framing


def test_oversize_body_413() -> None:
    with RemoteEventsReceiver(max_body_bytes=100) as receiver:
        response = requests.post(receiver.events_url, data=b"x" * 101, timeout=TIMEOUT_SECONDS)
        after = post(receiver, {})

    assert response.status_code == 413
    assert "101 bytes exceeds the limit of 100 bytes" in response.json()["message"]
    assert receiver.requests()[0].body == b""
    assert after.status_code == 422


def test_large_body_413_not_reset(receiver: RemoteEventsReceiver) -> None:
    body = b"x" * (8 * 1024 * 1024)

    response = requests.post(receiver.events_url, data=body, timeout=TIMEOUT_SECONDS)

    assert response.status_code == 413
    assert response.headers["Connection"] == "close"


def test_body_at_limit_read() -> None:
    body = json.dumps(valid_event()).encode()
    with RemoteEventsReceiver(max_body_bytes=len(body)) as limited:
        response = requests.post(
            limited.events_url,
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=TIMEOUT_SECONDS,
        )

    assert response.status_code == 201


def test_missing_content_length_411(receiver: RemoteEventsReceiver) -> None:
    request = (
        b"POST /api/v2/remoteEvents/ HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n\r\n"
    )

    response = exchange_raw(receiver, request)

    assert response.startswith(b"HTTP/1.1 411 ")
    assert b"Content-Type: application/json" in response
    assert b"missing Content-Length" in response


def test_chunked_body_411(receiver: RemoteEventsReceiver) -> None:
    def chunks() -> Any:
        yield json.dumps(valid_event()).encode()

    response = requests.post(receiver.events_url, data=chunks(), timeout=TIMEOUT_SECONDS)

    assert response.status_code == 411
    assert "Transfer-Encoding" in response.json()["message"]


def test_invalid_content_length_400(receiver: RemoteEventsReceiver) -> None:
    response = exchange_raw(receiver, raw_post(b"{}").replace(b"Length: 2", b"Length: -2"))

    assert response.startswith(b"HTTP/1.1 400 ")
    assert b"invalid Content-Length" in response


def test_raw_post_201(receiver: RemoteEventsReceiver) -> None:
    response = exchange_raw(receiver, raw_post(json.dumps(valid_event()).encode()))

    assert response.startswith(b"HTTP/1.1 201 ")
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"Connection: close" in head
    assert json.loads(body)["eventType"] == "moderationModelRuntimeError"


# Broken clients


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"\x00\x01\x02 \xff\xfe garbage\r\n\r\n", id="binary-line"),
        pytest.param(b"HELLO\r\n\r\n", id="one-word"),
        pytest.param(b"GET / HTTP/9.9\r\n\r\n", id="http-version"),
        pytest.param(b"POST /api/v2/remoteEvents/ HTTP/1.1\r\n" + b"X: y\r\n" * 200, id="headers"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", id="tls-hello"),
    ],
)
def test_garbage_then_valid_request(receiver: RemoteEventsReceiver, garbage: bytes) -> None:
    response = exchange_raw(receiver, garbage, half_close=True)

    assert b"Traceback" not in response
    assert post(receiver, valid_event()).status_code == 201


def test_long_request_line_414(receiver: RemoteEventsReceiver) -> None:
    request = b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    response = exchange_raw(receiver, request)

    assert response.startswith(b"HTTP/1.1 414 ")
    assert post(receiver, valid_event()).status_code == 201


def test_garbage_gets_json_400(receiver: RemoteEventsReceiver) -> None:
    response = exchange_raw(receiver, b"\x00\x01\x02 \xff\xfe garbage\r\n\r\n")

    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Type: application/json" in head
    assert "message" in json.loads(body)


def test_half_closed_after_request_served(receiver: RemoteEventsReceiver) -> None:
    request = raw_post(json.dumps(valid_event()).encode()).replace(
        b"Connection: close", b"Connection: keep-alive"
    )

    response = exchange_raw(receiver, request, half_close=True)

    assert response.startswith(b"HTTP/1.1 201 ")
    assert len(receiver.events()) == 1


def test_half_closed_in_headers_ignored(receiver: RemoteEventsReceiver) -> None:
    partial = b"POST /api/v2/remoteEvents/ HTTP/1.1\r\nContent-Length: 50\r\n"

    response = exchange_raw(receiver, partial, half_close=True)

    assert response == b""
    assert receiver.wait_for_requests(1)[0].status is None
    assert post(receiver, valid_event()).status_code == 201


def test_disconnect_mid_body_recorded(receiver: RemoteEventsReceiver) -> None:
    with socket.create_connection((receiver.host, receiver.port), timeout=TIMEOUT_SECONDS) as sock:
        sock.sendall(raw_post(b'{"eventType"', content_length=100))

    recorded = receiver.wait_for_requests(1)

    assert recorded[0].body == b'{"eventType"'
    assert recorded[0].status is None
    assert receiver.events() == []
    assert post(receiver, valid_event()).status_code == 201


def test_idle_connection_closed_by_stop() -> None:
    receiver = RemoteEventsReceiver().start()
    with socket.create_connection((receiver.host, receiver.port), timeout=TIMEOUT_SECONDS) as sock:
        post(receiver, valid_event())  # The idle connection is open while another is served.

        started = time.monotonic()
        receiver.stop()
        stop_seconds = time.monotonic() - started

        assert sock.recv(1) == b""
    assert stop_seconds < 5


# Faults


@pytest.mark.parametrize("status", [500, 502, 503, 504, 400])
def test_fixed_status_fault(status: int) -> None:
    with RemoteEventsReceiver(faults=Faults(status=status)) as receiver:
        response = post(receiver, valid_event())

    assert response.status_code == status
    assert "injected fault" in response.json()["message"]
    assert "Retry-After" not in response.headers
    assert receiver.events() == []
    assert receiver.requests()[0].status == status


@pytest.mark.parametrize(
    ("retry_after", "expected_header"),
    [
        pytest.param(2, "2", id="seconds"),
        pytest.param("120", "120", id="seconds-text"),
        pytest.param("Wed, 21 Oct 2026 07:28:00 GMT", "Wed, 21 Oct 2026 07:28:00 GMT", id="date"),
    ],
)
def test_429_retry_after_as_given(retry_after: int | str, expected_header: str) -> None:
    faults = Faults(status=429, retry_after=retry_after)
    with RemoteEventsReceiver(faults=faults) as receiver:
        response = post(receiver, valid_event())

    assert response.status_code == 429
    assert response.headers["Retry-After"] == expected_header


def test_latency_fault_delays_response() -> None:
    with RemoteEventsReceiver(faults=Faults(latency_seconds=0.3)) as receiver:
        started = time.monotonic()
        response = post(receiver, valid_event())
        elapsed = time.monotonic() - started

    assert response.status_code == 201
    assert elapsed >= 0.3


def test_fail_first_then_201() -> None:
    faults = Faults(fail_first=2, fail_first_status=503, retry_after=1)
    with RemoteEventsReceiver(faults=faults) as receiver, requests.Session() as session:
        statuses = [
            session.post(receiver.events_url, json=valid_event(), timeout=TIMEOUT_SECONDS)
            for _ in range(4)
        ]

    assert [response.status_code for response in statuses] == [503, 503, 201, 201]
    assert statuses[0].headers["Retry-After"] == "1"
    assert len(receiver.events()) == 2


def test_fail_first_then_fixed_status() -> None:
    faults = Faults(fail_first=1, fail_first_status=502, status=500)
    with RemoteEventsReceiver(faults=faults) as receiver:
        statuses = [post(receiver, valid_event()).status_code for _ in range(3)]

    assert statuses == [502, 500, 500]


def test_dropped_connection_raises() -> None:
    with RemoteEventsReceiver(faults=Faults(drop_fraction=1.0)) as receiver:
        with pytest.raises(requests.ConnectionError):
            post(receiver, valid_event())

        recorded = receiver.wait_for_requests(1)

    assert recorded[0].status is None
    assert receiver.events() == []


def drop_pattern(seed: int) -> list[bool]:
    faults = Faults(drop_fraction=0.5, seed=seed)
    dropped = []
    with RemoteEventsReceiver(faults=faults) as receiver:
        for _ in range(20):
            try:
                post(receiver, valid_event())
            except requests.ConnectionError:
                dropped.append(True)
            else:
                dropped.append(False)
    return dropped


def test_drop_fraction_repeats_with_seed() -> None:
    first = drop_pattern(seed=7)
    second = drop_pattern(seed=7)

    assert first == second
    assert any(first)
    assert not all(first)


def test_hang_until_stop() -> None:
    receiver = RemoteEventsReceiver(faults=Faults(hang=True)).start()
    errors: list[Exception] = []

    def post_and_keep_error() -> None:
        try:
            post(receiver, valid_event())
        except requests.RequestException as error:
            errors.append(error)

    client = threading.Thread(target=post_and_keep_error)
    client.start()
    try:
        receiver.wait_for_requests(1)
        assert client.is_alive()

        started = time.monotonic()
        receiver.stop()
        stop_seconds = time.monotonic() - started
    finally:
        receiver.stop()
        client.join(TIMEOUT_SECONDS)

    assert stop_seconds < 5
    assert not client.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], requests.ConnectionError)
    assert receiver.requests()[0].status is None
    assert receiver.events() == []


def test_latency_cut_short_by_stop() -> None:
    receiver = RemoteEventsReceiver(faults=Faults(latency_seconds=60)).start()
    client = threading.Thread(target=post_ignoring_errors, args=(receiver,))
    client.start()
    try:
        receiver.wait_for_requests(1)
        started = time.monotonic()
        receiver.stop()
        stop_seconds = time.monotonic() - started
    finally:
        receiver.stop()
        client.join(TIMEOUT_SECONDS)

    assert stop_seconds < 5
    assert not client.is_alive()


def post_ignoring_errors(receiver: RemoteEventsReceiver) -> None:
    with contextlib.suppress(requests.RequestException):
        post(receiver, valid_event())


def test_fault_change_while_running(receiver: RemoteEventsReceiver) -> None:
    with requests.Session() as session:

        def status() -> int:
            response = session.post(receiver.events_url, json=valid_event(), timeout=10)
            return response.status_code

        receiver.set_faults(Faults(status=503))
        assert status() == 503

        receiver.set_faults(Faults())
        assert status() == 201

        receiver.set_faults(Faults(status=429, retry_after=3))
        assert receiver.faults == Faults(status=429, retry_after=3)
        assert status() == 429

        receiver.set_faults(Faults(fail_first=1))
        assert status() == 503
        assert status() == 201

    assert len(receiver.events()) == 2


@pytest.mark.parametrize(
    ("options", "field_name"),
    [
        pytest.param({"status": 99}, "status", id="status-low"),
        pytest.param({"status": 600}, "status", id="status-high"),
        pytest.param({"status": 100}, "status", id="status-interim"),
        pytest.param({"status": True}, "status", id="status-bool"),
        pytest.param({"fail_first_status": 700}, "fail_first_status", id="fail-status"),
        pytest.param({"retry_after": -1}, "retry_after", id="retry-negative"),
        pytest.param({"retry_after": "1\r\nX-Injected: 1"}, "retry_after", id="retry-newline"),
        pytest.param({"retry_after": ""}, "retry_after", id="retry-empty"),
        pytest.param({"latency_seconds": -0.1}, "latency_seconds", id="latency-negative"),
        pytest.param({"latency_seconds": float("inf")}, "latency_seconds", id="latency-inf"),
        pytest.param({"fail_first": -1}, "fail_first", id="fail-first-negative"),
        pytest.param({"drop_fraction": 1.5}, "drop_fraction", id="drop-high"),
        pytest.param({"seed": "seven"}, "seed", id="seed-text"),
    ],
)
def test_faults_invalid_value_raises(options: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ValueError, match=rf"invalid Faults\.{field_name} "):
        Faults(**options)


# Records


def test_request_fields_recorded(receiver: RemoteEventsReceiver) -> None:
    before = time.monotonic()
    response = post(receiver, valid_event(), headers={"Authorization": "Bearer xyz"})
    after = time.monotonic()

    [recorded] = receiver.requests()
    assert recorded.method == "POST"
    assert recorded.path == "/api/v2/remoteEvents/"
    assert recorded.headers["Authorization"] == "Bearer xyz"
    assert recorded.header("content-type") == "application/json"
    assert recorded.header("X-Missing") is None
    assert json.loads(recorded.body) == valid_event()
    assert recorded.status == response.status_code
    assert before <= recorded.arrived_at <= after
    assert recorded.client_address[0] == "127.0.0.1"


def test_requests_record_rejected(receiver: RemoteEventsReceiver) -> None:
    requests.get(f"{receiver.endpoint}/missing?x=1", timeout=TIMEOUT_SECONDS)

    [recorded] = receiver.requests()
    assert recorded.method == "GET"
    assert recorded.path == "/api/v2/missing?x=1"
    assert recorded.status == 404


def test_keep_alive_reuses_connection(receiver: RemoteEventsReceiver) -> None:
    with requests.Session() as session:
        for _ in range(3):
            session.post(receiver.events_url, json=valid_event(), timeout=TIMEOUT_SECONDS)

    addresses = {recorded.client_address for recorded in receiver.requests()}
    assert len(addresses) == 1


def test_concurrent_posts_all_stored(receiver: RemoteEventsReceiver) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def post_many() -> None:
        with requests.Session() as session:
            for _ in range(25):
                response = session.post(
                    receiver.events_url, json=valid_event(), timeout=TIMEOUT_SECONDS
                )
                with lock:
                    statuses.append(response.status_code)

    clients = [threading.Thread(target=post_many) for _ in range(8)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(60)

    assert statuses == [201] * 200
    events = receiver.events()
    assert len(events) == 200
    assert len({event["id"] for event in events}) == 200


def test_wait_for_events_from_thread(receiver: RemoteEventsReceiver) -> None:
    client = threading.Thread(target=lambda: [post(receiver, valid_event()) for _ in range(2)])
    client.start()

    events = receiver.wait_for_events(2, timeout_seconds=TIMEOUT_SECONDS)
    client.join(TIMEOUT_SECONDS)

    assert len(events) == 2


def test_wait_for_events_times_out(receiver: RemoteEventsReceiver) -> None:
    post(receiver, valid_event())

    with pytest.raises(TimeoutError, match="received 1 of 2 events"):
        receiver.wait_for_events(2, timeout_seconds=0.1)


def test_records_returned_as_copies(receiver: RemoteEventsReceiver) -> None:
    post(receiver, valid_event())

    receiver.events()[0]["moderationData"]["guardName"] = "changed"
    receiver.requests()[0].headers["Authorization"] = "changed"

    assert receiver.events()[0]["moderationData"]["guardName"] == "toxicity"
    assert "Authorization" not in receiver.requests()[0].headers


def test_clear_forgets_records(receiver: RemoteEventsReceiver) -> None:
    post(receiver, valid_event())

    receiver.clear()

    assert receiver.events() == []
    assert receiver.requests() == []
    assert post(receiver, valid_event()).status_code == 201
    assert len(receiver.events()) == 1


def test_jsonl_appends_events(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with RemoteEventsReceiver(jsonl_path=path) as receiver:
        first = post(receiver, valid_event()).json()
        post(receiver, valid_event(eventType="nope"))
        second = post(receiver, valid_event(title="второй")).json()

    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [first, second]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_jsonl_keeps_existing_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"id": "old"}\n', encoding="utf-8")
    with RemoteEventsReceiver(jsonl_path=path) as receiver:
        post(receiver, valid_event())

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == {"id": "old"}


def test_on_event_called() -> None:
    seen: list[dict[str, Any]] = []
    with RemoteEventsReceiver(on_event=seen.append) as receiver:
        response = post(receiver, valid_event())
        post(receiver, valid_event(eventType="nope"))

    assert seen == [response.json()]


def test_on_event_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    def fail(event: dict[str, Any]) -> None:
        raise RuntimeError("callback broke")

    with RemoteEventsReceiver(on_event=fail) as receiver:
        response = post(receiver, valid_event())

    assert response.status_code == 201
    assert len(receiver.events()) == 1
    assert "on_event callback failed" in caplog.text
    assert "callback broke" in caplog.text


# Lifecycle


def test_no_stderr_output(capfd: pytest.CaptureFixture[str]) -> None:
    with RemoteEventsReceiver() as receiver:
        post(receiver, valid_event())
        post(receiver, {"bad": True})
        exchange_raw(receiver, b"garbage\r\n\r\n")

    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_lifecycle_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mlops_guard_events._receiver")
    with RemoteEventsReceiver() as receiver:
        exchange_raw(receiver, b"garbage\r\n\r\n")

    assert "receiver listening on http://127.0.0.1:" in caplog.text
    assert "stopped" in caplog.text


def test_stop_twice_harmless() -> None:
    receiver = RemoteEventsReceiver().start()

    receiver.stop()
    receiver.stop()

    with pytest.raises(requests.ConnectionError):
        post(receiver, valid_event())


def test_stop_before_start_harmless() -> None:
    RemoteEventsReceiver().stop()


def test_start_twice_raises(receiver: RemoteEventsReceiver) -> None:
    with pytest.raises(RuntimeError, match="start\\(\\) works once"):
        receiver.start()


def test_port_before_start_raises() -> None:
    with pytest.raises(RuntimeError, match="call start\\(\\) first"):
        _ = RemoteEventsReceiver().port


def test_busy_port_raises(receiver: RemoteEventsReceiver) -> None:
    with pytest.raises(OSError):  # noqa: PT011 - the errno differs by platform
        RemoteEventsReceiver(port=receiver.port).start()


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"port": 70000}, id="port"),
        pytest.param({"token": ""}, id="empty-token"),
        pytest.param({"token": "a\nb"}, id="token-newline"),
        pytest.param({"max_body_bytes": -1}, id="max-body"),
    ],
)
def test_invalid_option_raises(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="invalid"):
        RemoteEventsReceiver(**options)


def test_repr_masks_token() -> None:
    with RemoteEventsReceiver(token="secret") as receiver:
        text = repr(receiver)

    assert "secret" not in text
    assert "token='***'" in text
    assert receiver.endpoint in text


def test_ipv6_loopback() -> None:
    try:
        receiver = RemoteEventsReceiver(host="::1").start()
    except OSError as error:
        pytest.skip(f"IPv6 loopback unavailable: {error}")

    with receiver:
        response = post(receiver, valid_event())

    assert receiver.endpoint == f"http://[::1]:{receiver.port}/api/v2"
    assert response.status_code == 201
    assert receiver.requests()[0].client_address[0] == "::1"
