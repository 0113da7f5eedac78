"""The local receiver stays up under garbage, keeps to loopback, and explains what it rejects.

Covered elsewhere and not repeated here:

- tests/test_receiver.py: 413 for a body over the limit, 400 for malformed JSON, 411 without
  Content-Length, a fixed set of garbage requests, and a client that half-closes or disconnects
  mid-body;
- tests/test_cli.py: the `--host` check of the `receiver` command.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_guard_events._receiver import Faults, RemoteEventsReceiver
from mlops_guard_events._version import __version__

TIMEOUT_SECONDS = 10.0
# Connections of one burst of abrupt clients; enough to exhaust a server that leaks them.
BURST_CONNECTIONS = 50


def valid_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventType": "moderationModelRuntimeError",
        "timestamp": "2026-01-31T12:00:00.000000+00:00",
        "title": "Guard failed",
        "moderationData": {"guardName": "toxicity", "metricName": ""},
    }
    event.update(overrides)
    return event


def post(receiver: RemoteEventsReceiver, event: object, **options: Any) -> requests.Response:
    return requests.post(receiver.events_url, json=event, timeout=TIMEOUT_SECONDS, **options)


def exchange_raw(receiver: RemoteEventsReceiver, data: bytes) -> bytes:
    """Send `data`, half-close the connection, and return what arrives until the server closes."""
    with socket.create_connection((receiver.host, receiver.port), timeout=TIMEOUT_SECONDS) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[RemoteEventsReceiver]:
    """A receiver shared by the examples of the property tests, which a fixture per test cannot
    serve because hypothesis runs many examples in one test."""
    with RemoteEventsReceiver() as running:
        yield running


def receiver_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return the ERROR records the receiver logged, such as a handler that crashed."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "mlops_guard_events._receiver" and record.levelno >= logging.ERROR
    ]


# Loopback by default.


def test_binds_loopback_by_default(receiver: RemoteEventsReceiver) -> None:
    with socket.create_connection((receiver.host, receiver.port), timeout=TIMEOUT_SECONDS) as sock:
        server_address = sock.getpeername()[0]

    assert ipaddress.ip_address(receiver.host).is_loopback
    assert ipaddress.ip_address(server_address).is_loopback


# Garbage and broken connections.

request_lines = st.sampled_from(
    [
        b"POST /api/v2/remoteEvents/ HTTP/1.1\r\n",
        b"GET /api/v2/version/ HTTP/1.1\r\n",
        b"POST / HTTP/1.0\r\n",
        b"",
    ]
)
header_lines = st.lists(
    st.sampled_from(
        [
            b"Content-Length: 5\r\n",
            b"Content-Length: -1\r\n",
            b"Content-Length: 99999999999999999999\r\n",
            b"Content-Length: 3\r\nContent-Length: 4\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Authorization: Bearer \xff\xfe\r\n",
            b"Host: \x00\r\n",
            b": no name\r\n",
            b"X-Long: " + b"a" * 70_000 + b"\r\n",
        ]
    ),
    max_size=4,
)


@settings(max_examples=40, deadline=None)
@given(
    line=request_lines,
    headers=header_lines,
    separator=st.sampled_from([b"\r\n", b"\n", b""]),
    body=st.binary(max_size=200),
)
def test_garbage_never_crashes(
    shared_receiver: RemoteEventsReceiver,
    line: bytes,
    headers: list[bytes],
    separator: bytes,
    body: bytes,
) -> None:
    response = exchange_raw(shared_receiver, line + b"".join(headers) + separator + body)

    assert response == b"" or response.startswith(b"HTTP/1.1 ")
    assert b"Traceback" not in response
    assert post(shared_receiver, valid_event()).status_code == 201


def test_abrupt_clients_never_crash(
    receiver: RemoteEventsReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    partial = b'POST /api/v2/remoteEvents/ HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"event'
    for number in range(BURST_CONNECTIONS):
        sock = socket.create_connection((receiver.host, receiver.port), timeout=TIMEOUT_SECONDS)
        if number % 3 == 0:
            sock.sendall(partial)
        elif number % 3 == 1:
            # Reset instead of closing: the server's next read fails with ECONNRESET.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(partial[:10])
        sock.close()
    response = post(receiver, valid_event())
    receiver.stop()

    assert response.status_code == 201
    assert len(receiver.events()) == 1
    assert receiver_errors(caplog) == []


# The version route, which doctor requests.


def test_version_route_returns_version(receiver: RemoteEventsReceiver) -> None:
    response = requests.get(f"{receiver.endpoint}/version/", timeout=TIMEOUT_SECONDS)

    assert response.status_code == 200
    assert response.json()["versionString"] == __version__
    assert response.headers["Server"] == "mlops-guard-events-receiver"


def test_version_route_needs_token() -> None:
    with RemoteEventsReceiver(token="version-token") as receiver:
        url = f"{receiver.endpoint}/version"
        without = requests.get(url, timeout=TIMEOUT_SECONDS)
        with_token = requests.get(
            url, headers={"Authorization": "Token version-token"}, timeout=TIMEOUT_SECONDS
        )

    assert without.status_code == 401
    assert with_token.status_code == 200


def test_version_route_rejects_post(receiver: RemoteEventsReceiver) -> None:
    response = requests.post(f"{receiver.endpoint}/version/", json={}, timeout=TIMEOUT_SECONDS)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert receiver.events() == []


# The response message of each request is recorded.


def test_rejection_message_recorded(receiver: RemoteEventsReceiver) -> None:
    post(receiver, valid_event(eventType="guardFailed"))
    post(receiver, valid_event())

    rejected, accepted = receiver.requests()
    assert rejected.status == 422
    assert rejected.message is not None
    assert rejected.message.startswith("invalid eventType 'guardFailed'")
    assert accepted.status == 201
    assert accepted.message is None


def test_fault_message_recorded(receiver: RemoteEventsReceiver) -> None:
    receiver.set_faults(Faults(status=503))

    post(receiver, valid_event())

    assert receiver.requests()[0].message == "injected fault: 503 Service Unavailable"


# The storage function.


def test_storage_receives_stored_event() -> None:
    stored: list[dict[str, Any]] = []

    with RemoteEventsReceiver(storage=stored.append) as receiver:
        response = post(receiver, valid_event())

    assert response.status_code == 201
    assert stored == [response.json()]


def test_storage_failure_answers_500(tmp_path: Path) -> None:
    def full_disk(event: dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")

    with RemoteEventsReceiver(storage=full_disk, jsonl_path=tmp_path / "events.jsonl") as receiver:
        response = post(receiver, valid_event())

    assert response.status_code == 500
    assert "OSError" in response.json()["message"]
    assert receiver.events() == []
    assert (tmp_path / "events.jsonl").read_text() == ""


# The receiver command prints why it rejected a request, and reports storage failures.


class ReceiverCommand:
    """`mlops-guard-events receiver --port 0` in a subprocess, with its printed lines."""

    def __init__(self, tmp_path: Path, *options: str) -> None:
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("DATAROBOT_", "MLOPS_"))
        }
        environment["PYTHONUNBUFFERED"] = "1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlops_guard_events", "receiver", "--port", "0", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=environment,
        )
        self.lines: list[str] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        banner = self.wait_for("listening on")
        self.endpoint = banner.split("listening on ", 1)[1].strip()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._arrived:
                self.lines.append(line.rstrip("\n"))
                self._arrived.notify_all()

    def wait_for(self, text: str) -> str:
        deadline = time.monotonic() + 30.0
        with self._arrived:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no line containing {text!r} in {self.lines}")
                self._arrived.wait(remaining)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=30.0)
        finally:
            self.process.kill()
            self._reader.join(30.0)
            assert self.process.stdout is not None
            assert self.process.stderr is not None
            self.process.stdout.close()
            self.process.stderr.close()
        return status


def test_command_prints_rejection_reason(tmp_path: Path) -> None:
    command = ReceiverCommand(tmp_path)
    try:
        requests.post(
            f"{command.endpoint}/remoteEvents/",
            json=valid_event(title=None),
            timeout=TIMEOUT_SECONDS,
        )
        printed = command.wait_for("422 POST")
    finally:
        status = command.stop()

    assert printed == "422 POST /api/v2/remoteEvents/: field 'title' must be a string, got null"
    assert status == 0


def test_command_sqlite_failure_answers_500(tmp_path: Path) -> None:
    database = tmp_path / "events.db"
    with sqlite3.connect(database) as connection:
        # A table of the same name but another layout, so that every insert fails.
        connection.execute("CREATE TABLE events (id TEXT)")
    connection.close()
    command = ReceiverCommand(tmp_path, "--output", str(database))
    try:
        response = requests.post(
            f"{command.endpoint}/remoteEvents/", json=valid_event(), timeout=TIMEOUT_SECONDS
        )
        printed = command.wait_for("500 POST")
    finally:
        command.stop()

    assert response.status_code == 500
    assert "OperationalError" in response.json()["message"]
    assert "OperationalError" in printed
