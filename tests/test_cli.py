"""End-to-end tests of the command line, each command run as `python -m mlops_guard_events`."""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import pytest
import requests

from mlops_guard_events._receiver import RemoteEventsReceiver

# Bounds on waiting for a subprocess; generous because test machines are shared and slow.
RUN_TIMEOUT = 60.0
START_TIMEOUT = 30.0
HTTP_TIMEOUT = 10.0

COMMANDS = ["demo", "receiver", "report", "spool", "doctor", "events"]


def cli_environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    """Return an environment without the caller's DataRobot settings, with state in tmp_path."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATAROBOT_", "MLOPS_"))
    }
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    # A fresh HOME hides the user's ~/.config/datarobot/drconfig.yaml.
    environment["HOME"] = str(home)
    environment.pop("XDG_STATE_HOME", None)
    environment["MLOPS_GUARD_EVENTS_STATE_DIR"] = str(tmp_path / "state")
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update(variables)
    return environment


def run_cli(
    tmp_path: Path, *arguments: str, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops_guard_events", *arguments],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=environment if environment is not None else cli_environment(tmp_path),
        cwd=tmp_path,
        check=False,
    )


def valid_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventType": "moderationModelRuntimeError",
        "timestamp": "2026-01-31T12:00:00.000000+00:00",
        "title": "Guard pii-detector failed",
        "deploymentId": "65a1b2c3d4e5f6a7b8c9d0e1",
        "moderationData": {"guardName": "pii-detector", "metricName": ""},
    }
    event.update(overrides)
    return event


class LineReader:
    """Collects the lines a subprocess writes, on a thread, so a test can wait for one."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = START_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line containing {text!r} in {self.seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line

    def all_lines(self) -> list[str]:
        """Return every line, once the stream has ended."""
        self.thread.join(RUN_TIMEOUT)
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return self.seen


class CliProcess:
    """A long-running command started in the background, stopped by a signal."""

    def __init__(self, tmp_path: Path, *arguments: str, environment: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlops_guard_events", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=tmp_path,
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.output = LineReader(self.process.stdout)
        self.errors = LineReader(self.process.stderr)

    def stop(self, number: int = signal.SIGINT) -> tuple[int, str]:
        """Send `number` and return the exit status and stderr."""
        if self.process.poll() is None:
            self.process.send_signal(number)
        return self.wait()

    def wait(self) -> tuple[int, str]:
        """Wait for the exit and return the exit status and stderr."""
        try:
            status = self.process.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        stderr = "".join(line + "\n" for line in self.errors.all_lines())
        self.output.all_lines()
        self.close()
        return status, stderr

    def close(self) -> None:
        """Kill the process if it still runs, and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=RUN_TIMEOUT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start a command in the background; every one is killed and closed after the test."""
    started: list[CliProcess] = []

    def start(*arguments: str) -> CliProcess:
        process = CliProcess(tmp_path, *arguments, environment=cli_environment(tmp_path))
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


@pytest.fixture
def start_receiver(spawn: Any) -> Any:
    """Start `receiver --port 0` with extra options and return it with its endpoint."""

    def start(*options: str) -> tuple[CliProcess, str]:
        process: CliProcess = spawn("receiver", "--port", "0", *options)
        line = process.output.wait_for("listening on")
        return process, line.split("listening on ", 1)[1].strip()

    return start


def parser_paths() -> list[tuple[str, ...]]:
    """Return the words that select the program, each command and each action."""
    from mlops_guard_events.cli import build_parser

    paths: list[tuple[str, ...]] = []

    def visit(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        paths.append(words)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    visit(child, (*words, name))

    visit(build_parser(), ())
    return paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# Help and usage


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_exits_0(tmp_path: Path, command: str) -> None:
    result = run_cli(tmp_path, command, "--help")

    assert result.returncode == 0
    assert f"usage: mlops-guard-events {command}" in result.stdout


def test_main_help_lists_commands(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--help")

    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


def test_version_option(tmp_path: Path) -> None:
    from mlops_guard_events import __version__

    result = run_cli(tmp_path, "--version")

    assert result.returncode == 0
    assert result.stdout.strip() == f"mlops-guard-events {__version__}"


def test_missing_command_exits_2(tmp_path: Path) -> None:
    result = run_cli(tmp_path)

    assert result.returncode == 2
    assert "required: COMMAND" in result.stderr


def test_unknown_option_exits_2(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "events", "--no-such-option")

    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-option" in result.stderr


@pytest.mark.parametrize("words", parser_paths(), ids=lambda words: " ".join(words) or "program")
def test_verbose_on_every_parser(tmp_path: Path, words: tuple[str, ...]) -> None:
    result = run_cli(tmp_path, *words, "--help")

    assert result.returncode == 0
    assert "-v, --verbose" in result.stdout


def test_verbose_after_action(tmp_path: Path, receiver: RemoteEventsReceiver) -> None:
    environment = cli_environment(tmp_path, DATAROBOT_ENDPOINT=receiver.endpoint)

    result = run_cli(tmp_path, "spool", "replay", "-v", environment=environment)

    assert result.returncode == 0, result.stderr
    assert "nothing to replay" in result.stdout


def test_verbose_counts_every_level(tmp_path: Path, receiver: RemoteEventsReceiver) -> None:
    fill_spool(tmp_path, 1)
    environment = cli_environment(tmp_path, DATAROBOT_ENDPOINT=receiver.endpoint)

    result = run_cli(tmp_path, "-v", "spool", "-v", "replay", environment=environment)

    assert result.returncode == 0, result.stderr
    assert "DEBUG mlops_guard_events" in result.stderr


def test_single_verbose_logs_no_debug(tmp_path: Path, receiver: RemoteEventsReceiver) -> None:
    fill_spool(tmp_path, 1)
    environment = cli_environment(tmp_path, DATAROBOT_ENDPOINT=receiver.endpoint)

    result = run_cli(tmp_path, "spool", "replay", "-v", environment=environment)

    assert result.returncode == 0, result.stderr
    assert "DEBUG" not in result.stderr


def test_console_script_entry_point(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("mlops-guard-events")
    if not script.exists():
        pytest.skip("the console script is not installed next to this interpreter")

    result = subprocess.run(
        [str(script), "--version"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=cli_environment(tmp_path),
        check=False,
    )

    assert result.returncode == 0


# receiver


def test_receiver_accepts_and_stores(tmp_path: Path, start_receiver: Any) -> None:
    process, endpoint = start_receiver()

    response = requests.post(f"{endpoint}/remoteEvents/", json=valid_event(), timeout=HTTP_TIMEOUT)
    printed = process.output.wait_for("moderationModelRuntimeError")
    status, _ = process.stop()

    assert response.status_code == 201
    assert "guard=pii-detector" in printed
    assert status == 0
    stored = [
        json.loads(line) for line in (tmp_path / "received-events.jsonl").read_text().splitlines()
    ]
    assert len(stored) == 1
    assert stored[0]["moderationData"] == {"guardName": "pii-detector", "metricName": ""}


def test_receiver_sigterm_exits_0(start_receiver: Any) -> None:
    process, _ = start_receiver()

    status, stderr = process.stop(signal.SIGTERM)

    assert status == 0
    assert stderr == ""


def test_receiver_prints_stop_summary(start_receiver: Any) -> None:
    process, endpoint = start_receiver()
    for _ in range(2):
        requests.post(f"{endpoint}/remoteEvents/", json=valid_event(), timeout=HTTP_TIMEOUT)

    process.stop()

    assert process.output.all_lines()[-1] == "receiver stopped: 2 events accepted"


def test_receiver_missing_field_422(start_receiver: Any) -> None:
    process, endpoint = start_receiver()
    event = valid_event()
    del event["eventType"]

    response = requests.post(f"{endpoint}/remoteEvents/", json=event, timeout=HTTP_TIMEOUT)
    printed = process.output.wait_for("422 POST")
    process.stop()

    assert response.status_code == 422
    assert response.json()["message"] == "missing required field 'eventType'"
    assert "POST /api/v2/remoteEvents/" in printed


def test_receiver_invalid_field_422(start_receiver: Any) -> None:
    _, endpoint = start_receiver()

    response = requests.post(
        f"{endpoint}/remoteEvents/", json=valid_event(eventType="guardFailed"), timeout=HTTP_TIMEOUT
    )

    assert response.status_code == 422
    assert "invalid eventType 'guardFailed'" in response.json()["message"]


def test_receiver_malformed_json_400(start_receiver: Any) -> None:
    _, endpoint = start_receiver()

    response = requests.post(
        f"{endpoint}/remoteEvents/",
        data=b'{"eventType": ',
        headers={"Content-Type": "application/json"},
        timeout=HTTP_TIMEOUT,
    )

    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]


def test_receiver_body_limit_413(start_receiver: Any) -> None:
    _, endpoint = start_receiver("--max-body-bytes", "100")

    response = requests.post(f"{endpoint}/remoteEvents/", json=valid_event(), timeout=HTTP_TIMEOUT)

    assert response.status_code == 413


def test_receiver_wrong_token_401(start_receiver: Any) -> None:
    _, endpoint = start_receiver("--token", "right-token")

    wrong = requests.post(
        f"{endpoint}/remoteEvents/",
        json=valid_event(),
        headers={"Authorization": "Bearer wrong-token"},
        timeout=HTTP_TIMEOUT,
    )
    right = requests.post(
        f"{endpoint}/remoteEvents/",
        json=valid_event(),
        headers={"Authorization": "Bearer right-token"},
        timeout=HTTP_TIMEOUT,
    )

    assert wrong.status_code == 401
    assert right.status_code == 201


def test_receiver_token_file(tmp_path: Path, start_receiver: Any) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    process, endpoint = start_receiver("--token-file", str(token_file))

    response = requests.post(
        f"{endpoint}/remoteEvents/",
        json=valid_event(),
        headers={"Authorization": "Token file-token"},
        timeout=HTTP_TIMEOUT,
    )
    process.stop()

    assert response.status_code == 201
    assert all("file-token" not in line for line in process.output.seen)


def test_receiver_sqlite_store(tmp_path: Path, start_receiver: Any) -> None:
    database = tmp_path / "events.db"
    process, endpoint = start_receiver("--output", str(database))

    response = requests.post(f"{endpoint}/remoteEvents/", json=valid_event(), timeout=HTTP_TIMEOUT)
    process.stop()

    assert response.status_code == 201
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT event_type, guard_name, body FROM events").fetchall()
    assert len(rows) == 1
    assert rows[0][:2] == ("moderationModelRuntimeError", "pii-detector")
    assert json.loads(rows[0][2])["id"] == response.json()["id"]


def test_receiver_fault_429_retry_after(start_receiver: Any) -> None:
    _, endpoint = start_receiver("--status", "429", "--retry-after", "7")

    response = requests.post(f"{endpoint}/remoteEvents/", json=valid_event(), timeout=HTTP_TIMEOUT)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_receiver_fault_fail_first(start_receiver: Any) -> None:
    _, endpoint = start_receiver("--fail-first", "1", "--fail-first-status", "502")

    statuses = [
        requests.post(
            f"{endpoint}/remoteEvents/", json=valid_event(), timeout=HTTP_TIMEOUT
        ).status_code
        for _ in range(2)
    ]

    assert statuses == [502, 201]


def test_receiver_fault_latency(start_receiver: Any) -> None:
    _, endpoint = start_receiver("--latency", "0.3")

    started = time.monotonic()
    response = requests.post(f"{endpoint}/remoteEvents/", json=valid_event(), timeout=HTTP_TIMEOUT)
    elapsed = time.monotonic() - started

    assert response.status_code == 201
    assert elapsed >= 0.3


def test_receiver_fault_drop_all(start_receiver: Any) -> None:
    process, endpoint = start_receiver("--drop-fraction", "1")

    with pytest.raises(requests.ConnectionError):
        requests.post(f"{endpoint}/remoteEvents/", json=valid_event(), timeout=HTTP_TIMEOUT)
    printed = process.output.wait_for("no response")
    process.stop()

    assert printed.startswith("---")


def test_receiver_json_output(start_receiver: Any) -> None:
    process, endpoint = start_receiver("--json")

    requests.post(f"{endpoint}/remoteEvents/", json=valid_event(), timeout=HTTP_TIMEOUT)
    printed = process.output.wait_for('"eventType"')
    process.stop()

    assert json.loads(printed)["title"] == "Guard pii-detector failed"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--host", "192.0.2.10"], "binds only a loopback address"),
        (["--port", "70000"], "invalid port '70000'"),
        (["--status", "99"], "invalid HTTP status '99'"),
        (["--drop-fraction", "1.5"], "invalid fraction '1.5'"),
        (["--latency", "-1"], "invalid seconds '-1'"),
        (["--retry-after", "5"], "--retry-after needs an injected status"),
        (["--token", ""], "invalid token from --token"),
        (["--token", "a", "--token-file", "b"], "not allowed with argument"),
    ],
)
def test_receiver_invalid_option_exits_2(tmp_path: Path, options: list[str], message: str) -> None:
    result = run_cli(tmp_path, "receiver", "--port", "0", *options)

    assert result.returncode == 2
    assert message in result.stderr


def test_receiver_port_in_use_exits_1(tmp_path: Path) -> None:
    with socket.socket() as occupied:
        occupied.bind(("127.0.0.1", 0))
        occupied.listen()
        port = occupied.getsockname()[1]

        result = run_cli(tmp_path, "receiver", "--port", str(port))

    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1 port {port}" in result.stderr


def test_receiver_unwritable_output_exits_1(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path, "receiver", "--port", "0", "--output", str(tmp_path / "no" / "x.jsonl")
    )

    assert result.returncode == 1
    assert "cannot open --output" in result.stderr


# report


def test_report_delivers_to_endpoint(tmp_path: Path, receiver: RemoteEventsReceiver) -> None:
    environment = cli_environment(
        tmp_path, DATAROBOT_ENDPOINT=receiver.endpoint, MLOPS_DEPLOYMENT_ID="dep-1"
    )

    result = run_cli(
        tmp_path,
        "report",
        "--event-type",
        "moderationMetricCreationError",
        "--title",
        "Custom metric limit reached",
        "--message",
        "the deployment has 50 custom metrics",
        "--metric-name",
        "toxicity_score",
        "--org-id",
        "org-9",
        "--timestamp",
        "2026-01-31T12:00:00Z",
        environment=environment,
    )

    assert result.returncode == 0, result.stderr
    assert f"delivered moderationMetricCreationError to {receiver.events_url}" in result.stdout
    [event] = receiver.wait_for_events(1, timeout_seconds=HTTP_TIMEOUT)
    assert event["eventType"] == "moderationMetricCreationError"
    assert event["title"] == "Custom metric limit reached"
    assert event["message"] == "the deployment has 50 custom metrics"
    assert event["deploymentId"] == "dep-1"
    assert event["orgId"] == "org-9"
    assert event["timestamp"] == "2026-01-31T12:00:00.000000+00:00"
    assert event["moderationData"] == {"guardName": "", "metricName": "toxicity_score"}


def test_report_embedded_default_logs(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path, "report", "--event-type", "moderationModelConfigError", "--guard-name", "faith"
    )

    assert result.returncode == 0, result.stderr
    assert "appended moderationModelConfigError to the local event log" in result.stdout
    lines = (tmp_path / "state" / "events.jsonl").read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["moderationData"]["guardName"] == "faith"


def test_report_invalid_type_exits_2(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "report", "--event-type", "moderationModelRuntimeErr")

    assert result.returncode == 2
    assert "invalid event_type 'moderationModelRuntimeErr'" in result.stderr
    assert "did you mean 'moderationModelRuntimeError'" in result.stderr


def test_report_title_too_long_exits_2(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path, "report", "--event-type", "moderationModelRuntimeError", "--title", "x" * 513
    )

    assert result.returncode == 2
    assert "over the limit of 512" in result.stderr


def test_report_invalid_timestamp_exits_2(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path, "report", "--event-type", "moderationModelRuntimeError", "--timestamp", "noon"
    )

    assert result.returncode == 2
    assert "invalid timestamp 'noon'" in result.stderr


def test_report_missing_type_exits_2(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "report", "--title", "no type")

    assert result.returncode == 2
    assert "--event-type" in result.stderr


def test_report_rejected_exits_1(tmp_path: Path) -> None:
    with RemoteEventsReceiver(token="right-token") as guarded:
        environment = cli_environment(
            tmp_path, DATAROBOT_ENDPOINT=guarded.endpoint, DATAROBOT_API_TOKEN="wrong-token"
        )
        result = run_cli(
            tmp_path,
            "report",
            "--event-type",
            "moderationModelRuntimeError",
            environment=environment,
        )

    assert result.returncode == 1
    assert "HTTP status 401" in result.stderr
    assert "check the API token" in result.stderr
    assert "wrong-token" not in result.stderr + result.stdout


def test_report_unreachable_exits_1(tmp_path: Path) -> None:
    environment = cli_environment(
        tmp_path,
        DATAROBOT_ENDPOINT=f"http://127.0.0.1:{free_port()}/api/v2",
        DATAROBOT_MAX_RETRIES="0",
    )

    result = run_cli(
        tmp_path, "report", "--event-type", "moderationModelRuntimeError", environment=environment
    )

    assert result.returncode == 1
    assert "no HTTP status" in result.stderr
    assert "doctor" in result.stderr


def test_report_invalid_configuration_exits_1(tmp_path: Path) -> None:
    environment = cli_environment(tmp_path, DATAROBOT_MAX_RETRIES="many")

    result = run_cli(
        tmp_path, "report", "--event-type", "moderationModelRuntimeError", environment=environment
    )

    assert result.returncode == 1
    assert "DATAROBOT_MAX_RETRIES='many'" in result.stderr


def test_report_unwritable_log_exits_1(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    environment = cli_environment(tmp_path, MLOPS_GUARD_EVENTS_STATE_DIR=str(blocker / "state"))

    result = run_cli(
        tmp_path, "report", "--event-type", "moderationModelRuntimeError", environment=environment
    )

    assert result.returncode == 1
    assert "event log" in result.stderr
    assert "Traceback" not in result.stderr


# events


def write_event_log(tmp_path: Path, *titles: str) -> Path:
    path = tmp_path / "state" / "events.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log:
        for title in titles:
            log.write(json.dumps(valid_event(title=title)) + "\n")
    return path


def test_events_prints_oldest_first(tmp_path: Path) -> None:
    write_event_log(tmp_path, "first", "second")

    result = run_cli(tmp_path, "events")

    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("'first'")
    assert lines[1].endswith("'second'")


def test_events_last_and_json(tmp_path: Path) -> None:
    write_event_log(tmp_path, "first", "second", "third")

    result = run_cli(tmp_path, "events", "--last", "1", "--json")

    assert result.returncode == 0
    assert [json.loads(line)["title"] for line in result.stdout.splitlines()] == ["third"]


def test_events_skips_corrupt_line(tmp_path: Path) -> None:
    path = write_event_log(tmp_path, "first")
    with path.open("a") as log:
        log.write('{"eventType": "cut off\n')

    result = run_cli(tmp_path, "events")

    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 1
    assert "skipped a line" in result.stderr


def test_events_missing_log_exits_0(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "events")

    assert result.returncode == 0
    assert result.stdout == ""
    assert "no event log at" in result.stderr


def test_events_timeout_without_follow_exits_2(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "events", "--timeout", "1")

    assert result.returncode == 2
    assert "--timeout applies only with --follow" in result.stderr


def test_events_follow_prints_new(tmp_path: Path, spawn: Any) -> None:
    write_event_log(tmp_path, "before")
    follower = spawn("events", "--follow", "--max-events", "3", "--timeout", str(RUN_TIMEOUT))
    follower.output.wait_for("'before'")

    for title in ("after-1", "after-2"):
        reported = run_cli(
            tmp_path, "report", "--event-type", "moderationModelRuntimeError", "--title", title
        )
        assert reported.returncode == 0, reported.stderr
    follower.output.wait_for("'after-2'")
    status, _ = follower.wait()

    assert status == 0
    assert [line.rsplit(" ", 1)[1] for line in follower.output.seen] == [
        "'before'",
        "'after-1'",
        "'after-2'",
    ]


def test_events_follow_waits_for_file(tmp_path: Path, spawn: Any) -> None:
    follower = spawn("events", "--follow", "--max-events", "1", "--timeout", str(RUN_TIMEOUT))

    write_event_log(tmp_path, "late")
    follower.output.wait_for("'late'")
    status, _ = follower.wait()

    assert status == 0


def test_events_follow_sigint_exits_0(tmp_path: Path, spawn: Any) -> None:
    write_event_log(tmp_path, "only")
    follower = spawn("events", "--follow")
    follower.output.wait_for("'only'")

    status, stderr = follower.stop(signal.SIGINT)

    assert status == 0
    assert stderr == ""


def test_events_follow_timeout_exits_0(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "events", "--follow", "--timeout", "0.5")

    assert result.returncode == 0


def test_events_path_option(tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(valid_event(title="elsewhere")) + "\n")

    result = run_cli(tmp_path, "events", "--path", str(other))

    assert result.returncode == 0
    assert "'elsewhere'" in result.stdout


# doctor


class VersionHandler(BaseHTTPRequestHandler):
    """Serve GET /api/v2/version/ as a DataRobot server does, when the token is right."""

    protocol_version = "HTTP/1.1"
    token = "doctor-token"

    def do_GET(self) -> None:
        if self.path != "/api/v2/version/":
            self._respond(404, {"message": "not found"})
        elif self.headers.get("Authorization") != f"Bearer {self.token}":
            self._respond(401, {"message": "invalid token"})
        else:
            self._respond(200, {"major": 2, "minor": 38, "versionString": "2.38.0"})

    def _respond(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def version_server() -> Iterator[str]:
    """Yield the endpoint of a server on 127.0.0.1 that serves the version route."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), VersionHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v2"
    server.shutdown()
    server.server_close()
    thread.join()


def test_doctor_embedded_default(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "doctor")

    assert result.returncode == 0
    assert "no endpoint is configured" in result.stdout
    assert "all checks passed" in result.stdout


def test_doctor_shows_sources(tmp_path: Path, version_server: str) -> None:
    environment = cli_environment(
        tmp_path, DATAROBOT_ENDPOINT=version_server, DATAROBOT_API_TOKEN="doctor-token"
    )

    result = run_cli(tmp_path, "doctor", environment=environment)

    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert "environment DATAROBOT_ENDPOINT" in rows["endpoint"]
    assert "environment DATAROBOT_API_TOKEN" in rows["api_token"]
    assert "environment MLOPS_GUARD_EVENTS_STATE_DIR" in rows["state_dir"]
    assert rows["max_retries"].split()[-1] == "default"


def test_doctor_masks_token(tmp_path: Path, version_server: str) -> None:
    environment = cli_environment(
        tmp_path, DATAROBOT_ENDPOINT=version_server, DATAROBOT_API_TOKEN="doctor-token"
    )

    result = run_cli(tmp_path, "doctor", environment=environment)

    assert "doctor-token" not in result.stdout + result.stderr
    assert "*** (set, masked)" in result.stdout


def test_doctor_endpoint_ok(tmp_path: Path, version_server: str) -> None:
    environment = cli_environment(
        tmp_path, DATAROBOT_ENDPOINT=version_server, DATAROBOT_API_TOKEN="doctor-token"
    )

    result = run_cli(tmp_path, "doctor", environment=environment)

    assert result.returncode == 0, result.stdout
    assert f"GET {version_server}/version/ -> HTTP 200" in result.stdout
    assert "DataRobot 2.38.0" in result.stdout


def test_doctor_wrong_token_exits_1(tmp_path: Path, version_server: str) -> None:
    environment = cli_environment(
        tmp_path, DATAROBOT_ENDPOINT=version_server, DATAROBOT_API_TOKEN="stale-token"
    )

    result = run_cli(tmp_path, "doctor", environment=environment)

    assert result.returncode == 1
    assert "the endpoint rejected the API token" in result.stdout
    assert "1 check failed: Endpoint" in result.stdout


def test_doctor_wrong_path_exits_1(tmp_path: Path, version_server: str) -> None:
    environment = cli_environment(
        tmp_path,
        DATAROBOT_ENDPOINT=version_server.removesuffix("/api/v2"),
        DATAROBOT_API_TOKEN="doctor-token",
    )

    result = run_cli(tmp_path, "doctor", environment=environment)

    assert result.returncode == 1
    assert "no DataRobot API responds at this URL" in result.stdout


def test_doctor_local_receiver_ok(tmp_path: Path, receiver: RemoteEventsReceiver) -> None:
    environment = cli_environment(tmp_path, DATAROBOT_ENDPOINT=receiver.endpoint)

    result = run_cli(tmp_path, "doctor", environment=environment)

    assert result.returncode == 0, result.stdout
    assert "the endpoint is a local `mlops-guard-events receiver`" in result.stdout


def start_receiver_with_token(tmp_path: Path, start_receiver: Any) -> str:
    """Start `receiver` with --token-file holding "right-token" and return its endpoint."""
    token_file = tmp_path / "token"
    token_file.write_text("right-token\n")
    _, endpoint = start_receiver("--token-file", str(token_file))
    return str(endpoint)


def test_doctor_receiver_right_token(tmp_path: Path, start_receiver: Any) -> None:
    endpoint = start_receiver_with_token(tmp_path, start_receiver)
    environment = cli_environment(
        tmp_path, DATAROBOT_ENDPOINT=endpoint, DATAROBOT_API_TOKEN="right-token"
    )

    result = run_cli(tmp_path, "doctor", environment=environment)

    assert result.returncode == 0, result.stdout
    assert f"GET {endpoint}/version/ -> HTTP 200" in result.stdout


def test_doctor_receiver_wrong_token_exits_1(tmp_path: Path, start_receiver: Any) -> None:
    endpoint = start_receiver_with_token(tmp_path, start_receiver)
    environment = cli_environment(
        tmp_path, DATAROBOT_ENDPOINT=endpoint, DATAROBOT_API_TOKEN="wrong-token"
    )

    result = run_cli(tmp_path, "doctor", environment=environment)

    assert result.returncode == 1
    assert f"GET {endpoint}/version/ -> HTTP 401" in result.stdout
    assert "receiver` rejected the API token: set DATAROBOT_API_TOKEN" in result.stdout
    assert "1 check failed: Endpoint" in result.stdout


def test_doctor_receiver_no_token_exits_1(tmp_path: Path, start_receiver: Any) -> None:
    endpoint = start_receiver_with_token(tmp_path, start_receiver)
    environment = cli_environment(tmp_path, DATAROBOT_ENDPOINT=endpoint)

    result = run_cli(tmp_path, "doctor", environment=environment)

    assert result.returncode == 1
    assert "receiver` requires an API token: set DATAROBOT_API_TOKEN" in result.stdout


def test_doctor_receiver_404_exits_1(tmp_path: Path, start_receiver: Any) -> None:
    endpoint = start_receiver_with_token(tmp_path, start_receiver)
    environment = cli_environment(
        tmp_path,
        DATAROBOT_ENDPOINT=endpoint.removesuffix("/api/v2"),
        DATAROBOT_API_TOKEN="right-token",
    )

    result = run_cli(tmp_path, "doctor", environment=environment)

    assert result.returncode == 1
    assert "-> HTTP 404" in result.stdout
    assert "receiver` has no API at this URL" in result.stdout


def test_doctor_unreachable_exits_1(tmp_path: Path) -> None:
    environment = cli_environment(
        tmp_path, DATAROBOT_ENDPOINT=f"http://127.0.0.1:{free_port()}/api/v2"
    )

    result = run_cli(tmp_path, "doctor", environment=environment)

    assert result.returncode == 1
    assert "cannot connect" in result.stdout


def test_doctor_reports_event_log(tmp_path: Path) -> None:
    write_event_log(tmp_path, "one", "two")

    result = run_cli(tmp_path, "doctor")

    assert result.returncode == 0
    assert "events.jsonl: 2 events," in result.stdout
    assert "newest:" in result.stdout


def test_doctor_event_log_one_event(tmp_path: Path) -> None:
    write_event_log(tmp_path, "one")

    result = run_cli(tmp_path, "doctor")

    assert "events.jsonl: 1 event," in result.stdout


def test_doctor_invalid_configuration_exits_1(tmp_path: Path) -> None:
    environment = cli_environment(tmp_path, DATAROBOT_API_TOKEN="lonely-token")

    result = run_cli(tmp_path, "doctor", environment=environment)

    assert result.returncode == 1
    assert "invalid configuration: an API token is set" in result.stderr
    token_rows = [
        line.split() for line in result.stdout.splitlines() if "DATAROBOT_API_TOKEN" in line
    ]
    assert token_rows == [["DATAROBOT_API_TOKEN", "***", "(set,", "masked)"]]
    assert "lonely-token" not in result.stdout + result.stderr


# spool


def fill_spool(tmp_path: Path, count: int) -> None:
    from mlops_guard_events._spool import Spool

    spool = Spool(tmp_path / "state" / "spool", 1024 * 1024)
    for number in range(count):
        spool.append(valid_event(title=f"spooled {number}"))
    spool.close()


def test_spool_show_empty(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "spool")

    assert result.returncode == 0
    assert "empty" in result.stdout


def test_spool_show_counts(tmp_path: Path) -> None:
    fill_spool(tmp_path, 3)

    result = run_cli(tmp_path, "spool", "show")

    assert result.returncode == 0
    assert "3 events in 1 segment file," in result.stdout
    assert "oldest event: 2026-01-31T12:00:00.000000+00:00" in result.stdout


def test_spool_show_one_event(tmp_path: Path) -> None:
    fill_spool(tmp_path, 1)

    result = run_cli(tmp_path, "spool", "show")

    assert "1 event in 1 segment file," in result.stdout


def test_spool_replay_delivers(tmp_path: Path, receiver: RemoteEventsReceiver) -> None:
    fill_spool(tmp_path, 3)
    environment = cli_environment(tmp_path, DATAROBOT_ENDPOINT=receiver.endpoint)

    result = run_cli(tmp_path, "spool", "replay", environment=environment)

    assert result.returncode == 0, result.stderr
    assert "replayed 3 of 3 events" in result.stdout
    assert "delivered 3;" in result.stdout
    assert "0 left in the spool" in result.stdout
    titles = [event["title"] for event in receiver.wait_for_events(3, timeout_seconds=10)]
    assert titles == ["spooled 0", "spooled 1", "spooled 2"]
    assert "empty" in run_cli(tmp_path, "spool", environment=environment).stdout


def test_spool_replay_names_corrupt_lines(tmp_path: Path, receiver: RemoteEventsReceiver) -> None:
    fill_spool(tmp_path, 2)
    segment = next((tmp_path / "state" / "spool").iterdir())
    with segment.open("a", encoding="utf-8") as file:
        file.write('{"eventType": garbage\n')
    environment = cli_environment(tmp_path, DATAROBOT_ENDPOINT=receiver.endpoint)

    result = run_cli(tmp_path, "spool", "replay", environment=environment)

    assert "delivered 2; dropped 0 that the server rejected for good" in result.stdout
    assert "and 1 corrupt spool line;" in result.stdout
    assert len(receiver.requests()) == 2


def test_spool_replay_failing_exits_1(tmp_path: Path) -> None:
    from mlops_guard_events._receiver import Faults

    fill_spool(tmp_path, 2)
    with RemoteEventsReceiver(faults=Faults(status=503)) as failing:
        environment = cli_environment(
            tmp_path, DATAROBOT_ENDPOINT=failing.endpoint, DATAROBOT_MAX_RETRIES="0"
        )
        result = run_cli(tmp_path, "spool", "replay", environment=environment)

    assert result.returncode == 1
    assert "2 events remain in the spool: delivery failed" in result.stderr
    assert "2 events in 1 segment file," in run_cli(tmp_path, "spool").stdout


def test_spool_replay_timeout_message(tmp_path: Path) -> None:
    from mlops_guard_events._receiver import Faults

    fill_spool(tmp_path, 2)
    # Each request waits 2 s in the receiver, so the 0.5 s --timeout passes during the first.
    with RemoteEventsReceiver(faults=Faults(latency_seconds=2.0)) as slow:
        environment = cli_environment(tmp_path, DATAROBOT_ENDPOINT=slow.endpoint)
        result = run_cli(tmp_path, "spool", "replay", "--timeout", "0.5", environment=environment)

    assert result.returncode == 1
    assert "in the spool: delivery failed" in result.stderr
    assert "the --timeout of 0.5 s was reached" in result.stderr
    assert "`mlops-guard-events spool replay` again" in result.stderr
    assert "see the warnings above" not in result.stderr


def test_spool_replay_help_timeout(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "spool", "replay", "--help")

    help_text = " ".join(result.stdout.split())
    assert "A request already started is not cut off" in help_text
    assert "up to the connect and read timeouts" in help_text


def test_spool_replay_rejected_dropped(tmp_path: Path) -> None:
    fill_spool(tmp_path, 2)
    with RemoteEventsReceiver(token="right-token") as guarded:
        environment = cli_environment(
            tmp_path, DATAROBOT_ENDPOINT=guarded.endpoint, DATAROBOT_API_TOKEN="wrong-token"
        )
        result = run_cli(tmp_path, "spool", "replay", environment=environment)

    assert result.returncode == 0
    assert "dropped 2 that the server rejected for good" in result.stdout


def test_spool_replay_needs_endpoint(tmp_path: Path) -> None:
    fill_spool(tmp_path, 1)

    result = run_cli(tmp_path, "spool", "replay")

    assert result.returncode == 1
    assert "no endpoint is configured" in result.stderr
    assert "1 event in 1 segment file," in run_cli(tmp_path, "spool").stdout


def test_spool_replay_to_event_log(tmp_path: Path) -> None:
    fill_spool(tmp_path, 2)

    result = run_cli(tmp_path, "spool", "replay", "--to-event-log")

    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "state" / "events.jsonl").read_text().splitlines()) == 2


def test_spool_replay_empty(tmp_path: Path, receiver: RemoteEventsReceiver) -> None:
    environment = cli_environment(tmp_path, DATAROBOT_ENDPOINT=receiver.endpoint)

    result = run_cli(tmp_path, "spool", "replay", environment=environment)

    assert result.returncode == 0
    assert "nothing to replay" in result.stdout


def test_spool_purge_yes(tmp_path: Path) -> None:
    fill_spool(tmp_path, 4)

    result = run_cli(tmp_path, "spool", "purge", "--yes")

    assert result.returncode == 0
    assert "purged 4 events" in result.stdout
    assert "empty" in run_cli(tmp_path, "spool").stdout


def test_spool_purge_needs_yes(tmp_path: Path) -> None:
    fill_spool(tmp_path, 1)

    result = run_cli(tmp_path, "spool", "purge")

    assert result.returncode == 2
    assert "purging deletes 1 undelivered event;" in result.stderr
    assert "add --yes" in result.stderr
    assert "1 event in 1 segment file," in run_cli(tmp_path, "spool").stdout


def test_spool_invalid_timeout_exits_2(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "spool", "replay", "--timeout", "0")

    assert result.returncode == 2
    assert "invalid seconds '0'" in result.stderr


def test_doctor_reports_spool(tmp_path: Path) -> None:
    fill_spool(tmp_path, 2)

    result = run_cli(tmp_path, "doctor")

    assert result.returncode == 0
    assert "2 events in 1 segment file," in result.stdout
    assert "spool replay" in result.stdout
