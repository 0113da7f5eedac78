"""Local DataRobot ``remoteEvents`` receiver for tests, demos and the CLI.

The receiver is a real HTTP/1.1 server on a loopback address, built on the standard
library only. It checks each ``POST {endpoint}/remoteEvents/`` body against the fields of a
DataRobot moderation event, stores accepted events in memory and optionally in a JSON Lines
file, records every request it reads, and injects the faults described by `Faults`.

Example:
    with RemoteEventsReceiver(token="secret") as receiver:
        requests.post(
            f"{receiver.endpoint}/remoteEvents/",
            json=event,
            headers={"Authorization": "Bearer secret"},
        )
        events = receiver.wait_for_events(1, timeout_seconds=5.0)

NOTE: DataRobot publishes no REST reference for this route, so the real server's checks and
its 422 body may differ from the ones here.
"""

from __future__ import annotations

import contextlib
import copy
import hmac
import json
import logging
import math
import os
import random
import re
import secrets
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import IO, Any, TypeGuard, TypeVar
from urllib.parse import urlsplit

from ._version import __version__

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Faults", "RecordedRequest", "RemoteEventsReceiver"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""Default maximum request body size in bytes. Larger bodies get 413."""

_API_BASE_PATH = "/api/v2"
_EVENT_PATHS = frozenset({f"{_API_BASE_PATH}/remoteEvents/", f"{_API_BASE_PATH}/remoteEvents"})
_VERSION_PATHS = frozenset({f"{_API_BASE_PATH}/version/", f"{_API_BASE_PATH}/version"})

_EVENT_TYPES = (
    "moderationMetricCreationError",
    "moderationMetricReportingError",
    "moderationModelConfigError",
    "moderationModelRuntimeError",
    "moderationModelScoringError",
)
_EVENT_FIELDS = (
    "deploymentId",
    "eventType",
    "message",
    "moderationData",
    "orgId",
    "timestamp",
    "title",
)
_MODERATION_DATA_FIELDS = ("guardName", "metricName")

# Field length limits of DataRobot moderation events, in characters.
_MAX_TITLE_LENGTH = 512
_MAX_MESSAGE_LENGTH = 16384
_MAX_NAME_LENGTH = 512

# The offset is optional in the pattern only so that a naive timestamp gets its own message.
_RFC3339_PATTERN = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.\d+)?"
    r"(?P<offset>[Zz]|[+-](?P<offset_hours>\d{2}):(?P<offset_minutes>\d{2}))?",
    re.ASCII,
)
_CONTENT_LENGTH_PATTERN = re.compile(r"[0-9]+", re.ASCII)
_HEADER_VALUE_PATTERN = re.compile(r"[\x20-\x7e]+", re.ASCII)

_SERVER_NAME = "mlops-guard-events-receiver"
_MAX_REQUEST_LINE_BYTES = 65536
_IDLE_TIMEOUT_SECONDS = 120.0
_STOP_JOIN_SECONDS = 2.0
# Limits on the input read and dropped after an error response that closes the connection.
_MAX_DISCARD_BYTES = 64 * 1024 * 1024
_MAX_DISCARD_SECONDS = 5.0

_ReceiverT = TypeVar("_ReceiverT", bound="RemoteEventsReceiver")


@dataclass(frozen=True)
class Faults:
    """Faults that the receiver injects into the requests it reads.

    The receiver applies them in this order. ``latency_seconds`` delays every request. Then
    ``hang`` leaves every request unanswered until the receiver stops, ``drop_fraction`` closes the
    connection of a share of requests without a response, the first ``fail_first`` requests
    get ``fail_first_status``, and all other requests get ``status``. A request that no fault
    catches is served normally. ``fail_first`` counts the requests read since these faults were
    set, and the dropped requests are drawn from a generator seeded with ``seed`` at that
    moment, so the same sequence of requests loses the same ones.

    Attributes:
        status: HTTP status sent to every request instead of serving it, or None to serve.
        retry_after: ``Retry-After`` value sent with every injected status, as given: seconds
            as an int, or a string such as an HTTP-date. None sends no header.
        latency_seconds: delay in seconds before each request is handled.
        fail_first: number of requests that get ``fail_first_status`` before recovery.
        fail_first_status: HTTP status for the first ``fail_first`` requests.
        drop_fraction: share of requests, from 0.0 to 1.0, whose connection is closed
            without a response.
        seed: seed of the random generator that picks the dropped requests.
        hang: if True, read each request and send no response until the receiver stops,
            then close the connection.
    """

    status: int | None = None
    retry_after: int | str | None = None
    latency_seconds: float = 0.0
    fail_first: int = 0
    fail_first_status: int = 503
    drop_fraction: float = 0.0
    seed: int = 0
    hang: bool = False

    def __post_init__(self) -> None:
        if self.status is not None:
            _check_fault_status("status", self.status)
        _check_fault_status("fail_first_status", self.fail_first_status)
        _check_retry_after(self.retry_after)

        if not _is_number(self.latency_seconds) or not 0 <= self.latency_seconds < math.inf:
            raise ValueError(
                f"invalid Faults.latency_seconds {self.latency_seconds!r}: "
                "expected a finite number of seconds >= 0"
            )
        if not _is_integer(self.fail_first) or self.fail_first < 0:
            raise ValueError(
                f"invalid Faults.fail_first {self.fail_first!r}: expected a request count >= 0"
            )
        if not _is_number(self.drop_fraction) or not 0.0 <= self.drop_fraction <= 1.0:
            raise ValueError(
                f"invalid Faults.drop_fraction {self.drop_fraction!r}: "
                "expected a number from 0.0 to 1.0"
            )
        if not _is_integer(self.seed):
            raise ValueError(f"invalid Faults.seed {self.seed!r}: expected an int")


def _is_integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_fault_status(name: str, status: object) -> None:
    # 1xx statuses are interim responses, so a client would keep waiting for a final one.
    if not _is_integer(status) or not 200 <= status <= 599:
        raise ValueError(
            f"invalid Faults.{name} {status!r}: expected an HTTP status from 200 to 599"
        )


def _check_retry_after(value: object) -> None:
    if value is None:
        return
    if _is_integer(value) and value >= 0:
        return
    if isinstance(value, str) and _HEADER_VALUE_PATTERN.fullmatch(value):
        return
    raise ValueError(
        f"invalid Faults.retry_after {value!r}: expected seconds as an int >= 0 or a string "
        "of printable ASCII such as an HTTP-date"
    )


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request that the receiver read, with the status it sent.

    Requests whose request line or headers cannot be parsed get an error response and are
    not recorded.

    Attributes:
        method: request method, such as ``"POST"``.
        path: request target as sent, including any query string.
        headers: request headers with their names as sent. If a name repeats, the last
            value is kept. `header` looks a name up without regard to case.
        body: raw body bytes. The body is empty when the request was rejected before it was
            read (411, 413) and partial when the client disconnected while sending it.
        status: HTTP status sent in response, or None while the request waits and when no
            response was sent (dropped, hung or disconnected).
        arrived_at: `time.monotonic` value when the request line was read.
        client_address: client host and port. Requests on one keep-alive connection share
            the port.
        message: the ``message`` of an error response, such as why an event got 422, or None
            for a success and while no response was sent.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None
    arrived_at: float
    client_address: tuple[str, int]
    message: str | None = None

    def header(self, name: str) -> str | None:
        """Return the value of header ``name``, matched without regard to case, or None."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


# Validation of event bodies


class _HttpError(Exception):
    """Rejection of a request with an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _StorageFailed(Exception):
    """The receiver's ``storage`` function raised `error`, so the event was not stored."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _ClientDisconnected(Exception):
    """End of the connection before the whole request body arrived."""

    def __init__(self, partial_body: bytes) -> None:
        super().__init__(f"connection closed after {len(partial_body)} body bytes")
        self.partial_body = partial_body


def _json_type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _HttpError(400, f"invalid JSON: key {key!r} appears more than once")
        document[key] = value
    return document


def _reject_constant(name: str) -> None:
    raise _HttpError(400, f"invalid JSON: {name} is not a JSON number")


def _parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode ``body`` as a UTF-8 JSON object.

    Raises:
        _HttpError: 400 when the body is not UTF-8, not JSON, or not a JSON object.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _HttpError(400, f"request body is not valid UTF-8: {error}") from error

    try:
        document = json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as error:
        raise _HttpError(400, f"request body is not valid JSON: {error}") from error
    except RecursionError as error:
        raise _HttpError(400, "request body is not valid JSON: nested too deeply") from error

    if not isinstance(document, dict):
        raise _HttpError(
            400, f"request body must be a JSON object, got {_json_type_name(document)}"
        )
    return document


def _invalid(message: str) -> _HttpError:
    return _HttpError(422, message)


def _check_string(value: object, *, label: str, max_length: int | None) -> str:
    if not isinstance(value, str):
        raise _invalid(f"field {label!r} must be a string, got {_json_type_name(value)}")
    if max_length is not None and len(value) > max_length:
        raise _invalid(
            f"field {label!r} is too long: {len(value)} characters, maximum {max_length}"
        )
    return value


def _required_string(
    container: dict[str, Any], key: str, *, label: str, max_length: int | None = None
) -> str:
    """Return the string at ``container[key]``.

    Raises:
        _HttpError: 422 when the field is missing, is not a string, or is longer than
            ``max_length`` characters.
    """
    if key not in container:
        raise _invalid(f"missing required field {label!r}")
    return _check_string(container[key], label=label, max_length=max_length)


def _optional_string(
    container: dict[str, Any], key: str, *, label: str, max_length: int | None = None
) -> str | None:
    """Return the string at ``container[key]``, or None when the key is absent.

    A JSON null is rejected like any other non-string, because clients omit unset fields.

    Raises:
        _HttpError: 422 when the field is not a string or is longer than ``max_length``.
    """
    if key not in container:
        return None
    return _check_string(container[key], label=label, max_length=max_length)


def _validate_timestamp(value: str) -> None:
    """Raise a 422 `_HttpError` unless ``value`` is an RFC 3339 date-time with an offset.

    NOTE: RFC 3339 allows the leap second ``:60``, which `datetime` rejects, so such a
    timestamp gets 422 here.
    """
    match = _RFC3339_PATTERN.fullmatch(value)
    if match is None:
        raise _invalid(
            f"invalid timestamp {value!r}: expected RFC 3339 such as "
            "'2026-01-31T12:00:00Z' or '2026-01-31T12:00:00.123456+00:00'"
        )
    if match["offset"] is None:
        raise _invalid(
            f"invalid timestamp {value!r}: the UTC offset is missing, add 'Z' or '+HH:MM'"
        )

    try:
        datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
        )
    except ValueError as error:
        raise _invalid(f"invalid timestamp {value!r}: {error}") from error

    if match["offset_hours"] is not None and (
        int(match["offset_hours"]) > 23 or int(match["offset_minutes"]) > 59
    ):
        raise _invalid(f"invalid timestamp {value!r}: the UTC offset is out of range")


def _validate_moderation_data(event: dict[str, Any]) -> None:
    if "moderationData" not in event:
        raise _invalid("missing required field 'moderationData'")

    moderation_data = event["moderationData"]
    if not isinstance(moderation_data, dict):
        raise _invalid(
            "field 'moderationData' must be an object with 'guardName' and 'metricName', "
            f"got {_json_type_name(moderation_data)}"
        )

    unknown = sorted(set(moderation_data) - set(_MODERATION_DATA_FIELDS))
    if unknown:
        names = ", ".join(f"moderationData.{name}" for name in unknown)
        raise _invalid(f"unknown field {names}: moderationData allows only guardName, metricName")

    for key in _MODERATION_DATA_FIELDS:
        _required_string(
            moderation_data, key, label=f"moderationData.{key}", max_length=_MAX_NAME_LENGTH
        )


def _validate_event(event: dict[str, Any], *, reject_none_deployment_id: bool) -> None:
    """Raise a 422 `_HttpError` naming the first field of ``event`` that is invalid."""
    unknown = sorted(set(event) - set(_EVENT_FIELDS))
    if unknown:
        raise _invalid(
            f"unknown field {', '.join(unknown)}: allowed fields are {', '.join(_EVENT_FIELDS)}"
        )

    event_type = _required_string(event, "eventType", label="eventType")
    if event_type not in _EVENT_TYPES:
        raise _invalid(
            f"invalid eventType {event_type!r}: expected one of {', '.join(_EVENT_TYPES)}"
        )

    _validate_timestamp(_required_string(event, "timestamp", label="timestamp"))

    _optional_string(event, "title", label="title", max_length=_MAX_TITLE_LENGTH)
    _optional_string(event, "message", label="message", max_length=_MAX_MESSAGE_LENGTH)
    _optional_string(event, "orgId", label="orgId")

    deployment_id = _optional_string(event, "deploymentId", label="deploymentId")
    if deployment_id == "":
        raise _invalid("field 'deploymentId' must not be empty: omit it when there is no ID")
    # The official datarobot client (3.20.0) sends the text "None" when it has no deployment ID.
    if deployment_id == "None" and reject_none_deployment_id:
        raise _invalid(
            "field 'deploymentId' is the text 'None': send a real deployment ID or omit the field"
        )

    _validate_moderation_data(event)


# HTTP handling


class _Handler(BaseHTTPRequestHandler):
    """Request handler that sends every response as JSON in a single write."""

    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY and one write per response, Nagle's algorithm delays the second write
    # until the client's delayed acknowledgement, about 40 ms per keep-alive request on Linux.
    disable_nagle_algorithm = True
    timeout = _IDLE_TIMEOUT_SECONDS
    server: _Server

    def handle_one_request(self) -> None:
        """Read one request and send its response, closing the connection on socket errors."""
        try:
            self._handle_one_request()
        except OSError as error:
            # Resets, broken pipes, idle timeouts and sockets shut down by stop() all end here.
            logger.debug("closing connection from %s: %r", self.client_address, error)
            self.close_connection = True

    def _handle_one_request(self) -> None:
        raw_requestline = self.rfile.readline(_MAX_REQUEST_LINE_BYTES + 1)
        if not raw_requestline:
            self.close_connection = True
            return
        arrived_at = time.monotonic()

        self.raw_requestline = raw_requestline
        self.command = ""
        if len(raw_requestline) > _MAX_REQUEST_LINE_BYTES:
            self.send_error(414, f"request line longer than {_MAX_REQUEST_LINE_BYTES} bytes")
            return
        if not self.parse_request():
            return  # parse_request has sent the error response.

        self._serve_request(arrived_at)

    def _serve_request(self, arrived_at: float) -> None:
        receiver = self.server.receiver

        try:
            body = self._read_body()
        except _ClientDisconnected as error:
            logger.debug("client %s disconnected: %s", self.client_address, error)
            receiver._record_request(self._describe_request(arrived_at, error.partial_body))
            self.close_connection = True
            return
        except _HttpError as error:
            request_id = receiver._record_request(self._describe_request(arrived_at, b""))
            # The unread body would be parsed as the next request, so the connection must end.
            self.close_connection = True
            self._respond(request_id, error.status, {"message": error.message})
            self._discard_input()
            return

        request_id = receiver._record_request(self._describe_request(arrived_at, body))
        if self._inject_faults(request_id):
            return

        status, payload, headers = self._route(body)
        self._respond(request_id, status, payload, headers)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding") is not None:
            raise _HttpError(
                411, "Transfer-Encoding is not supported: send the body with a Content-Length"
            )

        values = self.headers.get_all("Content-Length") or []
        if not values:
            if self.command == "POST":
                raise _HttpError(411, "missing Content-Length header")
            return b""
        if len(set(values)) > 1 or not _CONTENT_LENGTH_PATTERN.fullmatch(values[0].strip()):
            raise _HttpError(400, f"invalid Content-Length header: {', '.join(values)}")

        length = int(values[0])
        max_body_bytes = self.server.receiver.max_body_bytes
        if length > max_body_bytes:
            raise _HttpError(
                413, f"request body of {length} bytes exceeds the limit of {max_body_bytes} bytes"
            )

        body = self.rfile.read(length)
        if len(body) < length:
            raise _ClientDisconnected(body)
        return body

    def _discard_input(self) -> None:
        """Half-close the connection and drop the input that the client still sends.

        Closing a socket with unread input makes the kernel reset the connection, and the
        client can then lose the error response before reading it. Dropping stops at end of
        file, after `_MAX_DISCARD_BYTES` or after `_MAX_DISCARD_SECONDS`.
        """
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)

        deadline = time.monotonic() + _MAX_DISCARD_SECONDS
        discarded = 0
        while discarded < _MAX_DISCARD_BYTES:
            remaining_seconds = deadline - time.monotonic()
            if remaining_seconds <= 0:
                return
            self.connection.settimeout(remaining_seconds)
            chunk = self.rfile.read1(65536)
            if not chunk:
                return
            discarded += len(chunk)

    def _describe_request(self, arrived_at: float, body: bytes) -> RecordedRequest:
        host, port = self.client_address[:2]
        return RecordedRequest(
            method=self.command,
            path=self.path,
            headers=dict(self.headers.items()),
            body=body,
            status=None,
            arrived_at=arrived_at,
            client_address=(str(host), int(port)),
        )

    def _inject_faults(self, request_id: int) -> bool:
        """Apply the receiver's current faults and return whether they ended the request."""
        receiver = self.server.receiver
        faults, ordinal, drop = receiver._draw_faults()

        if faults.latency_seconds > 0 and receiver._stopping.wait(faults.latency_seconds):
            self.close_connection = True
            return True
        if faults.hang:
            receiver._stopping.wait()
            self.close_connection = True
            return True
        if drop:
            self.close_connection = True
            return True

        status = faults.fail_first_status if ordinal < faults.fail_first else faults.status
        if status is None:
            return False

        headers = {}
        if faults.retry_after is not None:
            headers["Retry-After"] = str(faults.retry_after)
        message = f"injected fault: {status} {self._phrase(status)}"
        self._respond(request_id, status, {"message": message}, headers)
        return True

    def _route(self, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Serve a request that no fault caught and return its status, payload and headers."""
        receiver = self.server.receiver
        path = urlsplit(self.path).path

        if path in _VERSION_PATHS:
            return self._route_version(path)
        if path not in _EVENT_PATHS:
            message = f"not found: {path}. Events are posted to {_API_BASE_PATH}/remoteEvents/"
            return 404, {"message": message}, {}
        if self.command != "POST":
            message = f"method {self.command} is not allowed on {path}: use POST"
            return 405, {"message": message}, {"Allow": "POST"}
        if not receiver._is_authorized(self.headers.get("Authorization")):
            message = (
                "missing or invalid Authorization header: send 'Bearer <token>' or 'Token <token>'"
            )
            return 401, {"message": message}, {"WWW-Authenticate": "Bearer"}

        try:
            event = _parse_json_object(body)
            _validate_event(event, reject_none_deployment_id=receiver.reject_none_deployment_id)
        except _HttpError as error:
            return error.status, {"message": error.message}, {}

        try:
            stored = receiver._store_event(event)
        except _StorageFailed as failure:
            cause = failure.error
            logger.error("the storage function failed to store an event", exc_info=cause)
            message = f"failed to store the event: {type(cause).__name__}: {cause}"
            return 500, {"message": message}, {}
        except OSError as error:
            logger.exception("failed to append an event to %s", receiver.jsonl_path)
            return 500, {"message": f"failed to store the event: {error}"}, {}
        return 201, stored, {}

    def _route_version(self, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Serve the version route, which `mlops-guard-events doctor` requests."""
        if self.command not in ("GET", "HEAD"):
            message = f"method {self.command} is not allowed on {path}: use GET"
            return 405, {"message": message}, {"Allow": "GET, HEAD"}
        # The route needs the token, so that doctor's check of the endpoint checks the token too.
        if not self.server.receiver._is_authorized(self.headers.get("Authorization")):
            message = (
                "missing or invalid Authorization header: send 'Bearer <token>' or 'Token <token>'"
            )
            return 401, {"message": message}, {"WWW-Authenticate": "Bearer"}
        return 200, {"versionString": __version__, "server": _SERVER_NAME}, {}

    def _phrase(self, status: int) -> str:
        return self.responses.get(status, ("Unknown",))[0]

    def _respond(
        self,
        request_id: int | None,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send ``payload`` as JSON with ``status`` and record the status for ``request_id``.

        The ``message`` of an error payload is recorded with the status.
        """
        if request_id is not None:
            message = payload.get("message") if not 200 <= status < 300 else None
            self.server.receiver._set_request_status(
                request_id, status, message if isinstance(message, str) else None
            )

        body = json.dumps(payload).encode("utf-8")
        lines = [
            f"{self.protocol_version} {status} {self._phrase(status)}",
            f"Server: {_SERVER_NAME}",
            f"Date: {self.date_time_string()}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            f"Connection: {'close' if self.close_connection else 'keep-alive'}",
        ]
        lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

        if self.command == "HEAD":
            body = b""
        self.wfile.write(head + body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Send a JSON error and close the connection, replacing the standard HTML page."""
        text = message or self._phrase(code)
        if explain:
            text = f"{text}: {explain}"
        self.close_connection = True
        self._respond(None, code, {"message": text})
        self._discard_input()

    def log_message(self, format: str, *args: Any) -> None:
        """Send the base class's log lines to DEBUG instead of stderr."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    """Threading HTTP server that stops at once and can close its open connections."""

    daemon_threads = True
    # stop() joins handler threads with a deadline. The base class would join them without
    # one and block on handlers that hang.
    block_on_close = False
    request_queue_size = 128
    # handle_request() returns instead of blocking if the pending connection is gone.
    timeout = 0.0

    def __init__(
        self, address: tuple[str, int], receiver: RemoteEventsReceiver, family: int
    ) -> None:
        self.address_family = family
        self.receiver = receiver
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        self._closing = False
        self._stop_requested = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        try:
            super().__init__(address, _Handler)
        except OSError:
            self._close_wake_sockets()
            raise

    def serve_until_stopped(self) -> None:
        """Accept connections until `request_stop` is called.

        This replaces `serve_forever`, which notices a shutdown only at its next poll
        interval, so that stop() does not wait for a poll.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._stop_requested.is_set():
                ready = selector.select()
                if self._stop_requested.is_set():
                    return
                if any(key.fileobj is self.socket for key, _events in ready):
                    self.handle_request()

    def request_stop(self) -> None:
        """Make `serve_until_stopped` return, waking it from its wait for connections."""
        self._stop_requested.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def server_close(self) -> None:
        """Close the listening socket and the sockets that wake the accept loop."""
        super().server_close()
        self._close_wake_sockets()

    def _close_wake_sockets(self) -> None:
        self._wake_reader.close()
        self._wake_writer.close()

    def server_bind(self) -> None:
        """Bind the socket without `HTTPServer.server_bind`, whose getfqdn can wait on DNS."""
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request_thread(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """Handle one connection and keep it registered so that stop() can close it."""
        assert isinstance(request, socket.socket)  # a TCP server passes the connected socket
        with self._connections_lock:
            closing = self._closing
            if not closing:
                self._connections[request] = threading.current_thread()
        if closing:
            self.shutdown_request(request)
            return

        try:
            self.finish_request(request, client_address)
        except Exception:
            # The base class would print the traceback to stderr from handle_error().
            logger.exception("receiver failed to handle a request from %s", client_address)
        finally:
            self.shutdown_request(request)
            with self._connections_lock:
                self._connections.pop(request, None)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """Log an error raised while accepting a connection, instead of printing it."""
        # The base class calls this from inside its except block, so the traceback is current.
        logger.exception(  # noqa: LOG004
            "receiver failed to accept a connection from %s", client_address
        )

    def close_connections(self, timeout_seconds: float) -> list[threading.Thread]:
        """Shut down every open connection and return the handler threads still alive.

        Shutting a socket down wakes a handler blocked in a read, because the read returns
        end of file. Connections accepted later are closed at once.
        """
        with self._connections_lock:
            self._closing = True
            connections = list(self._connections.items())

        for connection, _thread in connections:
            with contextlib.suppress(OSError):  # The handler closed it in the meantime.
                connection.shutdown(socket.SHUT_RDWR)

        # stop() may run on a handler thread, from on_event, and a thread cannot join itself.
        others = [
            thread
            for _connection, thread in connections
            if thread is not threading.current_thread()
        ]
        deadline = time.monotonic() + timeout_seconds
        for thread in others:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread for thread in others if thread.is_alive()]


# Public receiver


@dataclass
class _State:
    """Records and faults shared by the handler threads, guarded by the receiver's condition."""

    faults: Faults
    generator: random.Random
    requests_since_faults_set: int = 0
    next_request_id: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: dict[int, RecordedRequest] = field(default_factory=dict)


class RemoteEventsReceiver:
    """Local HTTP server that receives DataRobot moderation events.

    Clients post events to ``{endpoint}/remoteEvents/`` (the path without the trailing slash
    works too). The receiver responds with JSON, always with ``Content-Type:
    application/json``:

    - 201 with the stored event, which is the request body plus an ``id``.
    - 200 with ``{"versionString": ...}`` for ``GET {endpoint}/version/``, the route that
      DataRobot's API serves and ``mlops-guard-events doctor`` requests. It needs the token too.
    - 400 for a body that is not a UTF-8 JSON object, or an invalid Content-Length.
    - 400, 414 or 431 for a request line or headers that cannot be parsed. These requests
      are not recorded.
    - 401 when ``token`` is set and the ``Authorization`` header is neither
      ``Bearer <token>`` nor ``Token <token>``. The scheme is matched without regard to case.
    - 404 for other paths and 405 for other methods on the events and version paths.
    - 411 without Content-Length or with Transfer-Encoding, and 413 when Content-Length
      exceeds ``max_body_bytes``. Every error response to a malformed request closes the
      connection.
    - 422 with ``{"message": ...}`` naming the first invalid field.
    - 500 when the event cannot be appended to ``jsonl_path``, or ``storage`` raises.
    - Any status set by the current `Faults`.

    Keep-alive connections are served by daemon threads. Nothing is printed, and the
    standard library's per-request log lines go to this module's logger at DEBUG.

    NOTE: events and requests, with their bodies, are kept in memory without limit until
    `clear` is called, and `requests` copies all of them on each call.

    Args:
        host: IP address to bind, such as ``127.0.0.1`` or ``::1``. The receiver has no
            TLS and accepts any request when ``token`` is None, so bind a loopback address.
        port: port to bind. 0 picks a free port.
        token: API token that clients must send, or None to accept any request.
        max_body_bytes: maximum request body size in bytes.
        reject_none_deployment_id: if True, reject a ``deploymentId`` that is the text
            ``"None"``, which the official datarobot client sends when it has no ID.
        faults: faults to inject from the start. `set_faults` replaces them while running.
        jsonl_path: file that each accepted event is appended to as one JSON line. It is
            created with mode 0600 when it does not exist.
        on_event: function called with a copy of each accepted event, on the handler
            thread, after the event is stored and before the response is sent. Its
            exceptions are logged and do not change the response.
        storage: function that stores a copy of each valid event, called on the handler
            thread before the event is recorded in memory or in ``jsonl_path``. If it
            raises an `Exception`, the response is 500 with the exception's type and text,
            and the event is not recorded. Handler threads may call it concurrently.

    Raises:
        ValueError: if ``port``, ``token`` or ``max_body_bytes`` is invalid.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        reject_none_deployment_id: bool = True,
        faults: Faults | None = None,
        jsonl_path: str | os.PathLike[str] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        storage: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if not _is_integer(port) or not 0 <= port <= 65535:
            raise ValueError(f"invalid port {port!r}: expected 0 (any free port) to 65535")
        if token is not None and (token == "" or not _HEADER_VALUE_PATTERN.fullmatch(token)):
            raise ValueError(
                "invalid token: expected a non-empty string of printable ASCII, or None "
                "to accept requests without authorization"
            )
        if not _is_integer(max_body_bytes) or max_body_bytes < 0:
            raise ValueError(
                f"invalid max_body_bytes {max_body_bytes!r}: expected a size in bytes >= 0"
            )

        self._host = host
        self._requested_port = port
        self._token = token
        self.max_body_bytes = max_body_bytes
        self.reject_none_deployment_id = reject_none_deployment_id
        self.jsonl_path = os.fspath(jsonl_path) if jsonl_path is not None else None
        self._on_event = on_event
        self._storage = storage

        initial_faults = faults if faults is not None else Faults()
        self._condition = threading.Condition()
        self._state = _State(faults=initial_faults, generator=random.Random(initial_faults.seed))
        self._stopping = threading.Event()
        self._lifecycle = "new"
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._jsonl_file: IO[str] | None = None

    def __repr__(self) -> str:
        token = "None" if self._token is None else "'***'"
        location = (
            self.endpoint if self._server is not None else f"{self._host}:{self._requested_port}"
        )
        return f"RemoteEventsReceiver({location!r}, token={token}, state={self._lifecycle!r})"

    def __enter__(self: _ReceiverT) -> _ReceiverT:
        if self._lifecycle == "new":
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Lifecycle

    def start(self: _ReceiverT) -> _ReceiverT:
        """Bind the address and serve requests on a daemon thread.

        Returns:
            This receiver, so that ``receiver = RemoteEventsReceiver().start()`` works.

        Raises:
            RuntimeError: if the receiver was started before. A stopped receiver cannot be
                restarted, so create a new one.
            OSError: if the address cannot be bound or ``jsonl_path`` cannot be opened.
        """
        with self._condition:
            if self._lifecycle != "new":
                raise RuntimeError(
                    f"receiver is {self._lifecycle}: start() works once, create a new receiver"
                )
            self._lifecycle = "starting"

        try:
            if self.jsonl_path is not None:
                descriptor = os.open(
                    self.jsonl_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
                )
                self._jsonl_file = os.fdopen(descriptor, "a", encoding="utf-8")
            family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
            self._server = _Server((self._host, self._requested_port), self, family)
        except BaseException:
            self._close_jsonl_file()
            with self._condition:
                self._lifecycle = "new"
            raise

        self._thread = threading.Thread(
            target=self._server.serve_until_stopped,
            name=f"remote-events-receiver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        with self._condition:
            self._lifecycle = "running"
        logger.debug("receiver listening on %s", self.endpoint)
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging and delayed handlers, and close every connection.

        Handler threads get up to 2 seconds to finish. A handler still running after that,
        such as one blocked in ``on_event``, is logged and left to end on its own. Calling
        stop() again, or before start(), does nothing.
        """
        with self._condition:
            if self._lifecycle != "running" or self._server is None or self._thread is None:
                return
            self._lifecycle = "stopped"

        self._stopping.set()
        self._server.request_stop()
        self._thread.join()
        self._server.server_close()
        stragglers = self._server.close_connections(_STOP_JOIN_SECONDS)
        if stragglers:
            logger.warning(
                "%d receiver handler threads were still running %.1f s after stop",
                len(stragglers),
                _STOP_JOIN_SECONDS,
            )
        self._close_jsonl_file()
        logger.debug("receiver on %s stopped", self.endpoint)

    def _close_jsonl_file(self) -> None:
        with self._condition:
            jsonl_file, self._jsonl_file = self._jsonl_file, None
        if jsonl_file is not None:
            jsonl_file.close()

    # Addresses

    @property
    def host(self) -> str:
        """Address the receiver binds."""
        return self._host

    @property
    def port(self) -> int:
        """Bound port, known once the receiver has started."""
        if self._server is None:
            raise RuntimeError("receiver is not started: call start() first")
        return self._server.server_port

    @property
    def endpoint(self) -> str:
        """DataRobot API endpoint URL, such as ``http://127.0.0.1:PORT/api/v2``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}{_API_BASE_PATH}"

    @property
    def events_url(self) -> str:
        """URL that events are posted to: ``{endpoint}/remoteEvents/``."""
        return f"{self.endpoint}/remoteEvents/"

    # Faults

    @property
    def faults(self) -> Faults:
        """Faults currently injected."""
        with self._condition:
            return self._state.faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the injected faults for the requests read from now on.

        The ``fail_first`` count restarts and the drop generator is seeded again. Requests
        already waiting, such as hanging ones, keep the faults they started with.

        Args:
            faults: The faults to inject from now on; ``Faults()`` injects none.
        """
        with self._condition:
            self._state.faults = faults
            self._state.generator = random.Random(faults.seed)
            self._state.requests_since_faults_set = 0

    def _draw_faults(self) -> tuple[Faults, int, bool]:
        """Return the current faults, the request's ordinal and whether to drop the request.

        The ordinal counts the requests read since the faults were set.
        """
        with self._condition:
            state = self._state
            ordinal = state.requests_since_faults_set
            state.requests_since_faults_set += 1
            drop = state.faults.drop_fraction > 0 and (
                state.generator.random() < state.faults.drop_fraction
            )
            return state.faults, ordinal, drop

    # Records

    def events(self) -> list[dict[str, Any]]:
        """Return a deep copy of the accepted events, oldest first."""
        with self._condition:
            return copy.deepcopy(self._state.events)

    def requests(self) -> list[RecordedRequest]:
        """Return a copy of the recorded requests, in the order they arrived."""
        with self._condition:
            return [
                replace(request, headers=dict(request.headers))
                for request in self._state.requests.values()
            ]

    def clear(self) -> None:
        """Forget the recorded events and requests. Faults and their counts stay."""
        with self._condition:
            self._state.events.clear()
            self._state.requests.clear()

    def wait_for_events(self, count: int, timeout_seconds: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` events were accepted and return all of them.

        Args:
            count: The number of accepted events to wait for.
            timeout_seconds: The maximum wait, in seconds.

        Returns:
            Copies of every accepted event, oldest first, each the request body plus ``id``.

        Raises:
            TimeoutError: if fewer than ``count`` events arrived within ``timeout_seconds``.
        """
        with self._condition:
            arrived = self._condition.wait_for(
                lambda: len(self._state.events) >= count, timeout_seconds
            )
            if not arrived:
                raise TimeoutError(
                    f"received {len(self._state.events)} of {count} events "
                    f"within {timeout_seconds} s"
                )
            return copy.deepcopy(self._state.events)

    def wait_for_requests(self, count: int, timeout_seconds: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests were read and return all of them.

        A request counts once its body is read, before faults and before the response.

        Args:
            count: The number of requests to wait for.
            timeout_seconds: The maximum wait, in seconds.

        Returns:
            Every recorded request, oldest first.

        Raises:
            TimeoutError: if fewer than ``count`` requests arrived within ``timeout_seconds``.
        """
        with self._condition:
            arrived = self._condition.wait_for(
                lambda: len(self._state.requests) >= count, timeout_seconds
            )
            if not arrived:
                raise TimeoutError(
                    f"received {len(self._state.requests)} of {count} requests "
                    f"within {timeout_seconds} s"
                )
        return self.requests()

    def _record_request(self, request: RecordedRequest) -> int:
        with self._condition:
            request_id = self._state.next_request_id
            self._state.next_request_id += 1
            self._state.requests[request_id] = request
            self._condition.notify_all()
            return request_id

    def _set_request_status(self, request_id: int, status: int, message: str | None) -> None:
        with self._condition:
            request = self._state.requests.get(request_id)
            if request is not None:  # clear() may have removed it.
                self._state.requests[request_id] = replace(request, status=status, message=message)

    def _store_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Store ``event`` with a new ``id`` and return the stored event.

        Raises:
            _StorageFailed: if ``storage`` raised. The event is then not stored.
            OSError: if the event cannot be appended to ``jsonl_path``. It is then not stored.
        """
        stored: dict[str, Any] = {"id": secrets.token_hex(12), **event}
        if self._storage is not None:
            try:
                self._storage(copy.deepcopy(stored))
            except Exception as error:
                raise _StorageFailed(error) from error
        with self._condition:
            if self._jsonl_file is not None:
                self._jsonl_file.write(json.dumps(stored, ensure_ascii=False) + "\n")
                self._jsonl_file.flush()
            self._state.events.append(stored)
            self._condition.notify_all()

        if self._on_event is not None:
            try:
                self._on_event(copy.deepcopy(stored))
            except Exception:
                logger.exception("on_event callback failed for event %s", stored["id"])
        return stored

    def _is_authorized(self, authorization: str | None) -> bool:
        if self._token is None:
            return True
        if authorization is None:
            return False

        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return False
        return hmac.compare_digest(credentials.strip().encode(), self._token.encode())
