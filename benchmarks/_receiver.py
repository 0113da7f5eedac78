"""The loopback receiver, run in a process of its own.

A server in the benchmark's own process would compete with the code under test for the GIL,
and a real DataRobot server runs elsewhere, so the library's `RemoteEventsReceiver` runs in a
child process on 127.0.0.1. The parent sends one command per line on the child's standard
input, and the child replies to each with one JSON line:

- `latency SECONDS`: delay each request from now on, through `Faults(latency_seconds=...)`.
- `counts`: return the numbers of accepted events, recorded requests and distinct titles.
- `clear`: forget the recorded events and requests.
- `quit`: stop the server and exit.

Run the child as `python -m benchmarks._receiver`, with the token in `BENCHMARK_RECEIVER_TOKEN`.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["ReceiverProcess"]

TOKEN_VARIABLE = "BENCHMARK_RECEIVER_TOKEN"
_HOST = "127.0.0.1"
_REPLY_TIMEOUT_SECONDS = 120.0
_EXIT_TIMEOUT_SECONDS = 10.0


class ReceiverProcess:
    """A `RemoteEventsReceiver` on 127.0.0.1 in a child process, as a context manager.

    Attributes:
        token: The API token the receiver requires, made up for this run.
        endpoint: The API endpoint, such as `http://127.0.0.1:PORT/api/v2`, once started.
    """

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self.endpoint = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._buffer = b""

    def __enter__(self) -> ReceiverProcess:
        environment = dict(os.environ, **{TOKEN_VARIABLE: self.token})
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._receiver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=Path(__file__).resolve().parent.parent,
            env=environment,
        )
        self.endpoint = str(self._read_reply()["endpoint"])
        return self

    def __exit__(self, *exc_info: object) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        try:
            if process.stdin is not None and process.poll() is None:
                process.stdin.write(b"quit\n")
                process.stdin.close()
            process.wait(timeout=_EXIT_TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            if process.stdout is not None:
                process.stdout.close()
            if self._stderr is not None:
                self._stderr.close()

    def set_latency(self, seconds: float) -> None:
        """Delay the response to every request from now on by `seconds`."""
        self._command(f"latency {seconds!r}")

    def counts(self) -> dict[str, int]:
        """Return the numbers of `events`, `requests` and `distinct_titles` received."""
        reply = self._command("counts")
        return {key: int(value) for key, value in reply.items()}

    def clear(self) -> None:
        """Forget the events and requests received so far."""
        self._command("clear")

    def _command(self, line: str) -> dict[str, Any]:
        process = self._running()
        assert process.stdin is not None
        process.stdin.write(line.encode() + b"\n")
        process.stdin.flush()
        return self._read_reply()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the receiver process is not running: use it inside `with`")
        return self._process

    def _read_reply(self) -> dict[str, Any]:
        process = self._running()
        assert process.stdout is not None
        deadline = time.monotonic() + _REPLY_TIMEOUT_SECONDS
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"the receiver process sent no reply within {_REPLY_TIMEOUT_SECONDS:g} s"
                    )
                if not selector.select(remaining):
                    continue
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(
                        f"the receiver process exited with status {process.wait()}:"
                        f" {self._stderr_text()}"
                    )
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the receiver process failed: {reply['error']}")
        return reply

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-2000:]


def _reply(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def _serve() -> None:
    from mlops_guard_events._receiver import Faults, RemoteEventsReceiver

    token = os.environ[TOKEN_VARIABLE]
    with RemoteEventsReceiver(host=_HOST, token=token) as receiver:
        _reply({"endpoint": receiver.endpoint})
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "quit":
                break
            if command == "latency":
                receiver.set_faults(Faults(latency_seconds=float(argument)))
                _reply({})
            elif command == "counts":
                events = receiver.events()
                _reply(
                    {
                        "events": len(events),
                        "requests": len(receiver.requests()),
                        "distinct_titles": len({event.get("title") for event in events}),
                    }
                )
            elif command == "clear":
                receiver.clear()
                _reply({})
            else:
                _reply({"error": f"unknown command {command!r}"})


if __name__ == "__main__":
    _serve()
