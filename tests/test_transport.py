"""HTTP delivery against a real loopback server, the lazy import, and the local event log."""

from __future__ import annotations

import email.utils
import inspect
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

from mlops_guard_events import _stats, _transport
from mlops_guard_events._config import Settings
from mlops_guard_events._event import ModerationEvent
from mlops_guard_events._receiver import Faults, RemoteEventsReceiver
from mlops_guard_events._retry import RetryPolicy
from mlops_guard_events._transport import EventLog, HttpTransport, load_requests
from mlops_guard_events._version import __version__
from mlops_guard_events.exceptions import (
    EventRejectedError,
    EventRetryableError,
    SpoolError,
)

TOKEN = "tok-3f9a-SECRET-7c21"
NOW = 1_800_000_000.0


def make_event(**overrides: Any) -> ModerationEvent:
    fields: dict[str, Any] = {
        "event_type": "moderationModelRuntimeError",
        "timestamp": "2026-01-31T12:00:00.123456Z",
        "title": "Guard failed",
        "message": "toxicity guard timed out after 2.0 s",
        "deployment_id": "65a1b2c3d4e5f6a7b8c9d0e1",
        "guard_name": "toxicity",
    }
    fields.update(overrides)
    return ModerationEvent.create(**fields)


BODY = make_event().to_wire()


class SleepRecorder:
    """An injected `sleep` that records each requested delay and waits for nothing."""

    def __init__(self, on_sleep: Callable[[], None] | None = None) -> None:
        self.delays: list[float] = []
        self._on_sleep = on_sleep

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self._on_sleep is not None:
            self._on_sleep()


def policy(
    sleep: SleepRecorder, *, max_retries: int = 3, max_retry_after: float = 60.0
) -> RetryPolicy:
    return RetryPolicy(
        max_retries=max_retries,
        max_retry_after=max_retry_after,
        sleep=sleep,
        clock=lambda: NOW,
        random=lambda: 0.5,
    )


@pytest.fixture
def transport(receiver: RemoteEventsReceiver) -> Iterator[HttpTransport]:
    with HttpTransport(Settings(endpoint=receiver.endpoint)) as opened:
        yield opened


@pytest.fixture(autouse=True)
def fresh_counters() -> Iterator[None]:
    _stats.reset_counters()
    yield
    _stats.reset_counters()


class ScriptedServer:
    """A loopback HTTP server that responds to every request with one fixed response.

    The receiver validates events as DataRobot does. This server sends the responses that the
    receiver never sends: redirects, plain-text errors, 200 and 204, and a message that quotes
    the request's Authorization header.
    """

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        echo_authorization: bool = False,
    ) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                scripted.requests.append((self.path, dict(self.headers.items())))
                content = body
                if echo_authorization:
                    content = json.dumps(
                        {"message": f"bad credentials {self.headers.get('Authorization')}"}
                    ).encode()
                lines = [f"HTTP/1.1 {status} Scripted", f"Content-Length: {len(content)}"]
                lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
                self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode() + content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/api/v2"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# One attempt: post().


def test_post_delivers_on_201(receiver: RemoteEventsReceiver, transport: HttpTransport) -> None:
    transport.post(BODY)

    assert [request.status for request in receiver.requests()] == [201]
    assert len(receiver.events()) == 1


def test_post_body_is_exact_wire_json(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    transport.post(BODY)

    sent = json.loads(receiver.requests()[0].body)
    assert sent == BODY
    assert list(sent) == list(BODY)
    assert sent["timestamp"] == "2026-01-31T12:00:00.123456+00:00"
    assert sent["moderationData"] == {"guardName": "toxicity", "metricName": ""}


def test_post_sends_json_content_type(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    transport.post(BODY)

    assert receiver.requests()[0].header("Content-Type") == "application/json"


def test_post_path_with_trailing_slash(receiver: RemoteEventsReceiver) -> None:
    with HttpTransport(Settings(endpoint=receiver.endpoint + "/")) as transport:
        transport.post(BODY)

    assert receiver.requests()[0].path == "/api/v2/remoteEvents/"


def test_post_path_without_trailing_slash(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    transport.post(BODY)

    assert receiver.requests()[0].path == "/api/v2/remoteEvents/"


def test_bearer_is_default_scheme() -> None:
    with (
        RemoteEventsReceiver(token=TOKEN) as receiver,
        HttpTransport(Settings(endpoint=receiver.endpoint, api_token=TOKEN)) as transport,
    ):
        transport.post(BODY)

        assert receiver.requests()[0].header("Authorization") == f"Bearer {TOKEN}"


def test_token_scheme_is_configurable() -> None:
    settings_kwargs: dict[str, Any] = {"api_token": TOKEN, "token_type": "Token"}
    with (
        RemoteEventsReceiver(token=TOKEN) as receiver,
        HttpTransport(Settings(endpoint=receiver.endpoint, **settings_kwargs)) as transport,
    ):
        transport.post(BODY)

        assert receiver.requests()[0].header("Authorization") == f"Token {TOKEN}"


def test_no_token_sends_no_authorization(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    transport.post(BODY)

    assert receiver.requests()[0].header("Authorization") is None


def test_user_agent_names_library_and_requests(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    transport.post(BODY)

    expected = f"mlops-guard-events/{__version__} python-requests/{requests.__version__}"
    assert receiver.requests()[0].header("User-Agent") == expected


@pytest.mark.parametrize("status", [200, 202, 204])
def test_any_2xx_is_success(status: int) -> None:
    with (
        ScriptedServer(status) as server,
        HttpTransport(Settings(endpoint=server.endpoint)) as transport,
    ):
        transport.post(BODY)

    assert len(server.requests) == 1


def test_422_is_rejected_with_server_message(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    invalid = {**BODY, "deploymentId": "None"}

    with pytest.raises(EventRejectedError) as caught:
        transport.post(invalid)

    assert caught.value.status_code == 422
    assert caught.value.server_message is not None
    assert "deploymentId" in caught.value.server_message
    assert "422" in str(caught.value)
    assert caught.value.server_message in str(caught.value)


def test_rejection_chains_requests_http_error(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    receiver.set_faults(Faults(status=422))

    with pytest.raises(EventRejectedError) as caught:
        transport.post(BODY)

    assert isinstance(caught.value.__cause__, requests.HTTPError)


def test_wrong_token_is_rejected_401() -> None:
    with (
        RemoteEventsReceiver(token=TOKEN) as receiver,
        HttpTransport(Settings(endpoint=receiver.endpoint, api_token="wrong-token")) as transport,
        pytest.raises(EventRejectedError) as caught,
    ):
        transport.post(BODY)

    assert caught.value.status_code == 401
    assert "401" in str(caught.value)
    assert "check the API token" in str(caught.value)
    assert "wrong-token" not in str(caught.value)


@pytest.mark.parametrize("status", [400, 403, 404, 409, 413, 500, 501])
def test_final_statuses_are_rejected(
    receiver: RemoteEventsReceiver, transport: HttpTransport, status: int
) -> None:
    receiver.set_faults(Faults(status=status))

    with pytest.raises(EventRejectedError) as caught:
        transport.post(BODY)

    assert caught.value.status_code == status


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses(
    receiver: RemoteEventsReceiver, transport: HttpTransport, status: int
) -> None:
    receiver.set_faults(Faults(status=status))

    with pytest.raises(EventRetryableError) as caught:
        transport.post(BODY)

    assert caught.value.status_code == status
    assert caught.value.retry_after is None


def test_retryable_carries_retry_after(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    receiver.set_faults(Faults(status=429, retry_after=17))

    with pytest.raises(EventRetryableError) as caught:
        transport.post(BODY)

    assert caught.value.retry_after == 17.0


def test_plain_text_message_is_shortened() -> None:
    text = b"upstream failure " + b"x" * 5000
    with (
        ScriptedServer(400, text, {"Content-Type": "text/plain"}) as server,
        HttpTransport(Settings(endpoint=server.endpoint)) as transport,
        pytest.raises(EventRejectedError) as caught,
    ):
        transport.post(BODY)

    message = caught.value.server_message
    assert message is not None
    assert message.startswith("upstream failure x")
    assert len(message) <= 500


def test_empty_error_body_is_reported() -> None:
    with (
        ScriptedServer(400) as server,
        HttpTransport(Settings(endpoint=server.endpoint)) as transport,
        pytest.raises(EventRejectedError) as caught,
    ):
        transport.post(BODY)

    assert caught.value.server_message is None
    assert "the response has no message" in str(caught.value)


def test_redirect_is_not_followed() -> None:
    location = "https://app.example.invalid/api/v2/remoteEvents/"
    with (
        ScriptedServer(307, headers={"Location": location}) as server,
        HttpTransport(Settings(endpoint=server.endpoint)) as transport,
        pytest.raises(EventRejectedError) as caught,
    ):
        transport.post(BODY)

    assert caught.value.status_code == 307
    assert location in str(caught.value)
    assert len(server.requests) == 1


def test_token_scrubbed_from_server_message() -> None:
    with (
        ScriptedServer(400, echo_authorization=True) as server,
        HttpTransport(Settings(endpoint=server.endpoint, api_token=TOKEN)) as transport,
        pytest.raises(EventRejectedError) as caught,
    ):
        transport.post(BODY)

    assert caught.value.server_message is not None
    assert TOKEN not in caught.value.server_message
    assert TOKEN not in str(caught.value)
    assert "Bearer [REDACTED]" in str(caught.value)


def test_connection_refused_is_retryable() -> None:
    settings = Settings(endpoint=f"http://127.0.0.1:{free_port()}/api/v2")

    with HttpTransport(settings) as transport, pytest.raises(EventRetryableError) as caught:
        transport.post(BODY)

    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert caught.value.status_code is None


def test_read_timeout_is_retryable(receiver: RemoteEventsReceiver) -> None:
    receiver.set_faults(Faults(hang=True))
    settings = Settings(endpoint=receiver.endpoint, read_timeout=0.2)

    with HttpTransport(settings) as transport, pytest.raises(EventRetryableError) as caught:
        transport.post(BODY)

    assert isinstance(caught.value.__cause__, requests.ReadTimeout)
    assert "timed out" in str(caught.value)


def test_tls_failure_is_final(receiver: RemoteEventsReceiver) -> None:
    # The receiver speaks plain HTTP, so a TLS handshake with it fails.
    settings = Settings(endpoint=receiver.endpoint.replace("http://", "https://"))
    sleep = SleepRecorder()

    with HttpTransport(settings) as transport, pytest.raises(EventRejectedError) as caught:
        transport.send(BODY, policy(sleep))

    assert isinstance(caught.value.__cause__, requests.exceptions.SSLError)
    assert sleep.delays == []


def test_missing_ca_bundle_is_final(receiver: RemoteEventsReceiver, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    settings = Settings(
        endpoint=receiver.endpoint.replace("http://", "https://"), ssl_verify=str(bundle)
    )
    bundle.unlink()

    with HttpTransport(settings) as transport, pytest.raises(EventRejectedError) as caught:
        transport.post(BODY)

    assert "ssl_verify" in str(caught.value)


def test_unserializable_body_raises() -> None:
    with (
        HttpTransport(Settings(endpoint="http://127.0.0.1:9/api/v2")) as transport,
        pytest.raises(ValueError, match="Out of range float"),
    ):
        transport.post({**BODY, "title": float("nan")})


def test_requires_an_endpoint() -> None:
    with pytest.raises(ValueError, match="EventLog"):
        HttpTransport(Settings(endpoint=None))


def test_repr_hides_token(receiver: RemoteEventsReceiver) -> None:
    settings = Settings(endpoint=receiver.endpoint, api_token=TOKEN)

    with HttpTransport(settings) as transport:
        assert TOKEN not in repr(transport)


# Retried sending: send().


def test_send_retries_503_then_succeeds(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    receiver.set_faults(Faults(fail_first=1, fail_first_status=503))
    sleep = SleepRecorder()

    transport.send(BODY, policy(sleep))

    assert [request.status for request in receiver.requests()] == [503, 201]
    assert sleep.delays == [0.25]
    assert _stats.stats()["retried"] == 1


def test_send_honours_retry_after_seconds(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    receiver.set_faults(Faults(fail_first=2, fail_first_status=429, retry_after=7))
    sleep = SleepRecorder()

    transport.send(BODY, policy(sleep))

    assert sleep.delays == [7.0, 7.0]
    assert len(receiver.events()) == 1


def test_send_honours_retry_after_date(receiver: RemoteEventsReceiver) -> None:
    header = email.utils.formatdate(NOW + 42, usegmt=True)
    receiver.set_faults(Faults(fail_first=1, fail_first_status=429, retry_after=header))
    sleep = SleepRecorder()
    retry_policy = policy(sleep)

    with HttpTransport(
        Settings(endpoint=receiver.endpoint), retry_policy=retry_policy
    ) as transport:
        transport.send(BODY)

    assert sleep.delays == [42.0]


def test_send_caps_retry_after(receiver: RemoteEventsReceiver, transport: HttpTransport) -> None:
    receiver.set_faults(Faults(fail_first=1, fail_first_status=503, retry_after=86400))
    sleep = SleepRecorder()

    transport.send(BODY, policy(sleep, max_retry_after=30.0))

    assert sleep.delays == [30.0]


def test_send_retries_dropped_connection(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    receiver.set_faults(Faults(drop_fraction=1.0))
    sleep = SleepRecorder(on_sleep=lambda: receiver.set_faults(Faults()))

    transport.send(BODY, policy(sleep))

    assert len(sleep.delays) == 1
    assert len(receiver.events()) == 1


def test_send_gives_up_after_max_retries(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    receiver.set_faults(Faults(status=503))
    sleep = SleepRecorder()

    with pytest.raises(EventRetryableError) as caught:
        transport.send(BODY, policy(sleep, max_retries=2))

    assert caught.value.status_code == 503
    assert "gave up after 3 attempts" in str(caught.value)
    assert len(receiver.requests()) == 3
    assert len(sleep.delays) == 2


def test_send_slow_response_final_cause(receiver: RemoteEventsReceiver) -> None:
    receiver.set_faults(Faults(hang=True))
    settings = Settings(endpoint=receiver.endpoint, read_timeout=0.2)
    sleep = SleepRecorder()

    with HttpTransport(settings) as transport, pytest.raises(EventRetryableError) as caught:
        transport.send(BODY, policy(sleep, max_retries=1))

    assert isinstance(caught.value.__cause__, requests.ReadTimeout)
    assert len(sleep.delays) == 1
    assert len(receiver.requests()) == 2


def test_send_does_not_retry_rejection(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    receiver.set_faults(Faults(status=422))
    sleep = SleepRecorder()

    with pytest.raises(EventRejectedError):
        transport.send(BODY, policy(sleep))

    assert sleep.delays == []
    assert len(receiver.requests()) == 1


def test_send_default_policy_from_settings(receiver: RemoteEventsReceiver) -> None:
    settings = Settings(endpoint=receiver.endpoint, max_retries=5)

    with HttpTransport(settings) as transport:
        assert transport.retry_policy.max_retries == 5


def test_retry_logged_without_body_or_headers(
    receiver: RemoteEventsReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.set_faults(Faults(fail_first=1, fail_first_status=503))
    settings = Settings(endpoint=receiver.endpoint)
    caplog.set_level(logging.WARNING, logger="mlops_guard_events")

    with HttpTransport(settings) as transport:
        transport.send(BODY, policy(SleepRecorder()))

    warnings = [record for record in caplog.records if record.name == "mlops_guard_events"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "retry 1 of 3" in warnings[0].getMessage()
    assert BODY["message"] not in warnings[0].getMessage()
    assert "application/json" not in warnings[0].getMessage()


def test_token_never_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    with RemoteEventsReceiver(token=TOKEN) as receiver:
        settings = Settings(endpoint=receiver.endpoint, api_token=TOKEN, read_timeout=0.2)
        with HttpTransport(settings) as transport:
            transport.send(BODY, policy(SleepRecorder()))
            for faults in (Faults(status=401), Faults(status=503), Faults(hang=True)):
                receiver.set_faults(faults)
                with pytest.raises((EventRejectedError, EventRetryableError)) as caught:
                    transport.send(BODY, policy(SleepRecorder(), max_retries=1))
                messages.append(str(caught.value))
                messages.append(repr(caught.value.__cause__))
    unreachable = Settings(endpoint=f"http://127.0.0.1:{free_port()}/api/v2", api_token=TOKEN)
    with HttpTransport(unreachable) as transport, pytest.raises(EventRetryableError) as caught:
        transport.send(BODY, policy(SleepRecorder(), max_retries=1))
    messages.append(str(caught.value))

    assert len(caplog.records) > 0
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
    for message in messages:
        assert TOKEN not in message


# Connections, threads and processes.


def test_connection_reused_across_posts(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    transport.post(BODY)
    transport.post(BODY)

    ports = {request.client_address[1] for request in receiver.requests()}
    assert len(ports) == 1


def test_concurrent_posts_from_threads(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    errors: list[BaseException] = []

    def post_five() -> None:
        try:
            for _ in range(5):
                transport.post(BODY)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=post_five) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(receiver.events()) == 40


def test_close_then_post_still_works(
    receiver: RemoteEventsReceiver, transport: HttpTransport
) -> None:
    transport.post(BODY)
    transport.close()
    transport.post(BODY)

    ports = [request.client_address[1] for request in receiver.requests()]
    assert len(receiver.events()) == 2
    assert ports[0] != ports[1]


def run_python(script: str, *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONWARNINGS": "error"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        check=False,
    )


def test_forked_child_opens_own_connection(receiver: RemoteEventsReceiver) -> None:
    script = f"""
        import os, sys
        from mlops_guard_events._config import Settings
        from mlops_guard_events._transport import HttpTransport
        body = {BODY!r}
        transport = HttpTransport(Settings(endpoint={receiver.endpoint!r}))
        transport.post(body)
        pid = os.fork()
        if pid == 0:
            try:
                transport.post(body)
            except BaseException:
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        transport.post(body)
        transport.close()
        sys.exit(os.waitstatus_to_exitcode(status))
    """

    result = run_python(script)

    assert result.returncode == 0, result.stderr
    ports = [request.client_address[1] for request in receiver.requests()]
    assert len(ports) == 3
    assert ports[1] != ports[0]
    assert ports[2] == ports[0]


# The lazy, fork-safe import of requests.


def test_import_does_not_load_requests() -> None:
    script = """
        import sys
        import mlops_guard_events
        from mlops_guard_events import MLOpsEvent, report_moderation_event, configure
        from mlops_guard_events import _transport, _report, _retry
        assert "requests" not in sys.modules, "requests was imported"
        assert "urllib3" not in sys.modules, "urllib3 was imported"
    """

    result = run_python(script)

    assert result.returncode == 0, result.stderr


def test_first_delivery_loads_requests(tmp_path: Path) -> None:
    script = f"""
        import sys
        from mlops_guard_events import configure, report_moderation_event
        configure(state_dir={str(tmp_path)!r})
        report_moderation_event("moderationModelRuntimeError")
        assert "requests" not in sys.modules, "the event log needs no requests"
        from mlops_guard_events._transport import load_requests
        module = load_requests()
        assert sys.modules["requests"] is module
    """

    result = run_python(script)

    assert result.returncode == 0, result.stderr


def test_load_requests_returns_module() -> None:
    assert load_requests() is requests


def test_fork_waits_for_import_lock() -> None:
    # A thread holds the import lock, as during the import of requests, while the main thread
    # forks. The fork handler waits for the lock, so the child gets a free lock and can import.
    # Without the handler, the child would block forever on the inherited lock.
    script = """
        import os, sys, threading, time
        from mlops_guard_events import _transport

        held = threading.Event()

        def hold_import_lock():
            with _transport._import_lock:
                held.set()
                time.sleep(0.3)

        thread = threading.Thread(target=hold_import_lock)
        thread.start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            module = _transport.load_requests()
            os._exit(0 if hasattr(module, "Session") else 3)
        thread.join()
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """

    result = run_python(script, timeout=30.0)

    assert result.returncode == 0, result.stderr


def test_fork_during_import_sees_whole_module() -> None:
    script = """
        import os, sys, threading
        from mlops_guard_events import _transport

        thread = threading.Thread(target=_transport.load_requests)
        thread.start()
        statuses = []
        for _ in range(10):
            pid = os.fork()
            if pid == 0:
                module = sys.modules.get("requests")
                whole = module is None or hasattr(module, "Session")
                loaded = hasattr(_transport.load_requests(), "Session")
                os._exit(0 if whole and loaded else 3)
            statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        thread.join()
        sys.exit(max(statuses))
    """

    result = run_python(script, timeout=60.0)

    assert result.returncode == 0, result.stderr


# The one table that maps requests exceptions.


def requests_exception_classes() -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(requests.exceptions, inspect.isclass)
        if issubclass(cls, requests.RequestException) and cls.__module__ == "requests.exceptions"
    ]


def test_every_requests_exception_is_mapped() -> None:
    mapped = {name for name, _, _ in _transport.REQUESTS_FAILURES}

    missing = [cls.__name__ for cls in requests_exception_classes() if cls.__name__ not in mapped]

    assert missing == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (requests.ConnectionError("refused"), EventRetryableError),
        (requests.ConnectTimeout("slow"), EventRetryableError),
        (requests.ReadTimeout("slow"), EventRetryableError),
        (requests.exceptions.ProxyError("proxy down"), EventRetryableError),
        (requests.exceptions.ChunkedEncodingError("cut"), EventRetryableError),
        (requests.exceptions.SSLError("bad certificate"), EventRejectedError),
        (requests.exceptions.InvalidURL("bad"), EventRejectedError),
        (requests.exceptions.MissingSchema("bad"), EventRejectedError),
        (requests.exceptions.InvalidHeader("bad"), EventRejectedError),
        (requests.exceptions.TooManyRedirects("loop"), EventRejectedError),
        (urllib3.exceptions.ProtocolError("reset"), EventRetryableError),
        (OSError("Could not find a suitable TLS CA certificate bundle"), EventRejectedError),
    ],
)
def test_exception_mapped_to_library_error(error: Exception, expected: type[Exception]) -> None:
    with HttpTransport(Settings(endpoint="http://127.0.0.1:9/api/v2")) as transport:
        mapped = transport._delivery_error(error)

    assert type(mapped) is expected


def test_foreign_exception_is_not_mapped() -> None:
    with HttpTransport(Settings(endpoint="http://127.0.0.1:9/api/v2")) as transport:
        assert transport._delivery_error(KeyError("bug")) is None


# The local event log.


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_event_log_appends_wire_json(tmp_path: Path) -> None:
    path = tmp_path / "state" / "events.jsonl"
    log = EventLog(path)

    log.append(BODY)
    log.append({**BODY, "title": "second"})

    lines = read_lines(path)
    assert [json.loads(line) for line in lines] == [BODY, {**BODY, "title": "second"}]


def test_event_log_keeps_unicode(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")

    log.append({**BODY, "message": "Grüße 🚀"})

    assert "Grüße 🚀" in (tmp_path / "events.jsonl").read_text(encoding="utf-8")


def test_event_log_file_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"

    EventLog(path).append(BODY)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_event_log_directory_mode_0700(tmp_path: Path) -> None:
    path = tmp_path / "new" / "events.jsonl"

    EventLog(path).append(BODY)

    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_event_log_modes_despite_umask(tmp_path: Path) -> None:
    path = tmp_path / "new" / "events.jsonl"
    previous = os.umask(0o277)
    try:
        EventLog(path).append(BODY)
    finally:
        os.umask(previous)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_event_log_symlink_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("")
    path = tmp_path / "events.jsonl"
    path.symlink_to(target)

    with pytest.raises(SpoolError, match="symbolic link"):
        EventLog(path).append(BODY)

    assert target.read_text() == ""


def test_event_log_dangling_symlink_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "planted.txt"
    path = tmp_path / "events.jsonl"
    path.symlink_to(target)

    with pytest.raises(SpoolError, match="symbolic link"):
        EventLog(path).append(BODY)

    assert not target.exists()


def test_event_log_read_rejects_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.jsonl"
    target.write_text(json.dumps(BODY) + "\n")
    path = tmp_path / "events.jsonl"
    path.symlink_to(target)

    with pytest.raises(SpoolError, match="symbolic link"):
        list(EventLog(path).read())


def test_event_log_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")

    with pytest.raises(SpoolError, match="cannot open the event log"):
        EventLog(blocker / "events.jsonl").append(BODY)


def test_event_log_read_skips_corrupt_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.jsonl"
    good = json.dumps(BODY)
    path.write_bytes(
        "\n".join([good, "not json", "[1, 2]", "", good, '{"eventType": "mod']).encode()
        + b"\n\xff\xfe\n"
    )
    log = EventLog(path)
    caplog.set_level(logging.WARNING, logger="mlops_guard_events")

    bodies = list(log.read())

    assert bodies == [BODY, BODY]
    assert log.corrupt_lines == 4
    assert len(caplog.records) == 1
    assert "line 2" in caplog.records[0].getMessage()


def test_event_log_read_missing_file(tmp_path: Path) -> None:
    assert list(EventLog(tmp_path / "absent.jsonl").read()) == []


def test_event_log_warns_once_per_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mlops_guard_events")
    first = tmp_path / "a" / "events.jsonl"
    second = tmp_path / "b" / "events.jsonl"

    EventLog(first).append(BODY)
    EventLog(first).append(BODY)
    EventLog(second).append(BODY)

    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert str(first) in messages[0]
    assert "no DataRobot endpoint is configured" in messages[0]
    assert "DATAROBOT_ENDPOINT" in messages[0]
    assert str(second) in messages[1]


def test_event_log_threads_do_not_interleave(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")

    def append_fifty(number: int) -> None:
        for index in range(50):
            log.append({**BODY, "title": f"thread {number} event {index}"})

    threads = [threading.Thread(target=append_fifty, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    bodies = list(log.read())
    assert len(bodies) == 400
    assert log.corrupt_lines == 0


def test_event_log_processes_do_not_interleave(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    script = f"""
        import sys
        from mlops_guard_events._transport import EventLog
        log = EventLog({str(path)!r})
        body = {BODY!r}
        for index in range(200):
            log.append({{**body, "message": sys.argv[1] * 3000, "title": str(index)}})
    """
    processes = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), letter])
        for letter in "abcd"
    ]
    for process in processes:
        assert process.wait(timeout=60) == 0

    log = EventLog(path)
    bodies = list(log.read())
    assert len(bodies) == 800
    assert log.corrupt_lines == 0
    for body in bodies:
        assert len(set(body["message"])) == 1


def test_event_log_usable_in_forked_child(tmp_path: Path) -> None:
    # A parent thread holds the event log's lock across the fork; the child gets a new lock.
    path = tmp_path / "events.jsonl"
    script = f"""
        import os, sys, threading, time
        from mlops_guard_events._transport import EventLog

        log = EventLog({str(path)!r})
        held = threading.Event()
        release = threading.Event()

        def hold_lock():
            with log._lock:
                held.set()
                release.wait()

        thread = threading.Thread(target=hold_lock)
        thread.start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            log.append({BODY!r})
            os._exit(0)
        release.set()
        thread.join()
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """

    result = run_python(script, timeout=30.0)

    assert result.returncode == 0, result.stderr
    assert list(EventLog(path).read()) == [BODY]


# The environment: proxies, ~/.netrc and the CA bundle variables.


def test_netrc_does_not_replace_token(
    receiver: RemoteEventsReceiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))

    with HttpTransport(Settings(endpoint=receiver.endpoint, api_token=TOKEN)) as transport:
        transport.post(BODY)

    assert receiver.requests()[0].header("Authorization") == f"Bearer {TOKEN}"


def test_proxy_variable_is_honoured(
    receiver: RemoteEventsReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RemoteEventsReceiver() as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with HttpTransport(Settings(endpoint=receiver.endpoint)) as transport:
            transport.post(BODY)

        assert receiver.requests() == []
        assert proxy.requests()[0].path.startswith(f"http://127.0.0.1:{receiver.port}/")


def test_ca_bundle_variable_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("not read by this test\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))

    transport = HttpTransport(Settings(endpoint="https://dr.example.com/api/v2"))

    assert transport._verify == str(bundle)
