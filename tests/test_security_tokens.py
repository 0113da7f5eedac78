"""The API token and other credentials never leak, and TLS and http rules protect the token.

Covered elsewhere and not repeated here:

- tests/test_config.py: the token masked in `Settings` repr and str, and refused over plain
  http to a host that is not loopback unless `allow_insecure_http=True`;
- tests/test_transport.py: the token left out of `HttpTransport` repr and masked in quoted
  server text;
- tests/test_receiver.py and tests/test_cli.py: the token masked in the receiver's repr and
  in `doctor` output.
"""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlops_guard_events import (
    ConfigurationError,
    EventRejectedError,
    _stats,
    _worker,
    cli,
    configure,
    flush,
    guard_events,
    report_moderation_event,
    shutdown,
    stats,
)
from mlops_guard_events._receiver import Faults, RemoteEventsReceiver

RUNTIME = "moderationModelRuntimeError"
TOKEN = "dr-Tok3n-7f4c2a9e1b8d6c5a0e"
BACKEND_TOKEN = "b4ckEnd-T0ken-9x8y7z6w5v"
GUARD_MESSAGE = (
    f"backend returned 401 for Authorization: Bearer {BACKEND_TOKEN};"
    f" the retry used the DataRobot token {TOKEN}"
)
LEAKS = (TOKEN, BACKEND_TOKEN)
DELIVERY_TIMEOUT = 30.0
# The loggers that can see a request: the library's, the receiver's and the HTTP stack's.
LOGGERS = ("mlops_guard_events", "mlops_guard_events._receiver", "urllib3", "requests")


@pytest.fixture(autouse=True)
def private_log_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the worker a fresh log limit, so this module's warnings do not silence others'."""
    monkeypatch.setattr(_worker, "_throttle", _stats.LogThrottle())


def record_texts(records: list[logging.LogRecord]) -> list[str]:
    """Return each record's message, with its formatted traceback and stack if it has them."""
    formatter = logging.Formatter()
    texts = []
    for record in records:
        text = record.getMessage()
        if record.exc_info:
            text += formatter.formatException(record.exc_info)
        if record.stack_info:
            text += record.stack_info
        texts.append(text)
    return texts


def exception_texts(error: BaseException) -> list[str]:
    """Return str, repr and the formatted traceback of `error` and of its chained exceptions."""
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), str(getattr(current, "server_message", ""))]
        current = current.__cause__ or current.__context__
    return texts


def spool_bytes(state_dir: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted((state_dir / "spool").iterdir()))


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


@pytest.mark.usefixtures("fresh_worker")
@pytest.mark.parametrize("status", [401, 500])
def test_failed_delivery_leaks_no_token(
    status: int, tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    state_dir = tmp_path / "state"

    @guard_events("Toxicity", fallback="fallback")
    def check(prompt: str) -> str:
        raise RuntimeError(GUARD_MESSAGE)

    with RemoteEventsReceiver(token=TOKEN, faults=Faults(status=status)) as receiver:
        configure(
            endpoint=receiver.endpoint,
            api_token=TOKEN,
            state_dir=state_dir,
            max_retries=0,
            coalesce_window=0,
        )

        # The automatic path: the worker gets the final status and drops the event.
        assert check("a prompt") == "fallback"
        receiver.wait_for_requests(1, timeout_seconds=DELIVERY_TIMEOUT)
        assert flush(DELIVERY_TIMEOUT) == 0

        # The explicit path raises the final status.
        with pytest.raises(EventRejectedError) as caught:
            report_moderation_event(RUNTIME, title="Guard failed", message=GUARD_MESSAGE)

        # A retryable status sends the next event to the spool.
        receiver.set_faults(Faults(status=503))
        check("a prompt")
        receiver.wait_for_requests(3, timeout_seconds=DELIVERY_TIMEOUT)
        assert shutdown(DELIVERY_TIMEOUT) == 0
        requests = receiver.requests()

    assert [request.status for request in requests] == [status, status, 503]
    assert stats()["rejected"] == 2
    assert caught.value.status_code == status
    bodies = [request.body.decode("utf-8") for request in requests]
    logs = record_texts(debug_logs.records)
    errors = exception_texts(caught.value)
    spooled = spool_bytes(state_dir).decode("utf-8")
    assert "[REDACTED]" in spooled
    for secret in LEAKS:
        assert all(secret not in body for body in bodies), secret
        assert all(secret not in text for text in logs), secret
        assert all(secret not in text for text in errors), secret
        assert secret not in spooled


def test_validation_error_redacts_value(
    receiver: RemoteEventsReceiver, debug_logs: pytest.LogCaptureFixture
) -> None:
    configure(endpoint=receiver.endpoint, api_token=TOKEN)

    with pytest.raises(ValueError, match="NUL character") as caught:
        report_moderation_event(RUNTIME, message=f"{TOKEN}\x00")

    assert TOKEN not in str(caught.value)
    assert "[REDACTED]" in str(caught.value)
    assert receiver.requests() == []


def test_cli_report_failure_hides_token(
    receiver: RemoteEventsReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    receiver.set_faults(Faults(status=401))
    monkeypatch.setenv("DATAROBOT_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("DATAROBOT_API_TOKEN", TOKEN)

    status = cli.main(["-vv", "report", "--event-type", RUNTIME, "--message", f"token was {TOKEN}"])

    output = capsys.readouterr()
    assert status == cli.EXIT_FAILED
    assert "HTTP status 401" in output.err
    assert TOKEN not in output.out + output.err
    assert TOKEN not in receiver.requests()[0].body.decode()


def test_doctor_hides_token_from_receiver(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with RemoteEventsReceiver(token=TOKEN) as receiver:
        monkeypatch.setenv("DATAROBOT_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("DATAROBOT_API_TOKEN", f"{TOKEN}\n")

        status = cli.main(["-vv", "doctor"])

    output = capsys.readouterr()
    assert status == cli.EXIT_OK
    assert "local `mlops-guard-events receiver`" in output.out
    assert TOKEN not in output.out + output.err


# The endpoint URL cannot carry credentials.


@pytest.mark.parametrize(
    "endpoint",
    ["https://robot:pa55word@app.example.com/api/v2", "https://robot@app.example.com/api/v2"],
)
def test_endpoint_with_credentials_rejected(endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="contains a user name or password") as caught:
        configure(endpoint=endpoint)

    assert "pa55word" not in str(caught.value)


def test_environment_endpoint_credentials_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_ENDPOINT", "https://robot:pa55word@app.example.com/api/v2")

    with pytest.raises(ConfigurationError) as caught:
        configure()

    assert "pa55word" not in str(caught.value)
    assert "'https://robot:***@app.example.com/api/v2'" in str(caught.value)


def test_malformed_endpoint_is_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="expected an http or https URL"):
        configure(endpoint="https://[::1/api/v2")


@pytest.mark.parametrize("value", ["false", 0, None])
def test_allow_insecure_http_must_be_bool(value: object) -> None:
    # A truthy string such as "false" must not switch the protection off.
    with pytest.raises(ConfigurationError, match="invalid allow_insecure_http"):
        configure(
            endpoint="http://dr.example.com/api/v2",
            api_token=TOKEN,
            allow_insecure_http=value,  # type: ignore[arg-type]
        )


# TLS: verification is on by default, and a CA bundle path is honoured.


class AcceptingHandler(BaseHTTPRequestHandler):
    """Respond to every POST with 201, as DataRobot does for an accepted event."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"id": "1"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.posts += 1  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Return a self-signed certificate for 127.0.0.1 and its key, made by the openssl tool."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    directory = tmp_path_factory.mktemp("tls")
    certificate, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return certificate, key


@pytest.fixture
def https_endpoint(certificate: tuple[Path, Path]) -> Iterator[tuple[str, ThreadingHTTPServer]]:
    """Yield the endpoint of an HTTPS server on 127.0.0.1 that accepts events, and the server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), AcceptingHandler)
    server.posts = 0  # type: ignore[attr-defined]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/api/v2", server
    server.shutdown()
    server.server_close()
    thread.join()


def test_tls_verified_by_default(
    https_endpoint: tuple[str, ThreadingHTTPServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests would otherwise take a CA bundle from these variables.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    endpoint, server = https_endpoint
    configure(endpoint=endpoint, api_token=TOKEN)

    with pytest.raises(EventRejectedError, match="TLS") as caught:
        report_moderation_event(RUNTIME, title="Guard failed")

    assert isinstance(caught.value.__cause__, Exception)
    assert "SSLError" in type(caught.value.__cause__).__name__
    assert server.posts == 0  # type: ignore[attr-defined]


def test_ca_bundle_path_honoured(
    https_endpoint: tuple[str, ThreadingHTTPServer], certificate: tuple[Path, Path]
) -> None:
    endpoint, server = https_endpoint
    configure(endpoint=endpoint, api_token=TOKEN, ssl_verify=str(certificate[0]))

    report_moderation_event(RUNTIME, title="Guard failed")

    assert server.posts == 1  # type: ignore[attr-defined]


@pytest.mark.usefixtures("fresh_worker")
def test_ca_bundle_from_environment(
    https_endpoint: tuple[str, ThreadingHTTPServer],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, server = https_endpoint
    monkeypatch.setenv("DATAROBOT_ENDPOINT", endpoint)
    monkeypatch.setenv("DATAROBOT_API_TOKEN", TOKEN)
    monkeypatch.setenv("DATAROBOT_SSL_VERIFY", str(certificate[0]))
    configure()

    @guard_events("Toxicity", fallback=None)
    def check() -> None:
        raise RuntimeError("model unavailable")

    check()

    assert flush(DELIVERY_TIMEOUT) == 0
    assert server.posts == 1  # type: ignore[attr-defined]
    assert stats()["delivered"] == 1
