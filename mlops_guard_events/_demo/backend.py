"""A stand-in for a remote classification service, slow for chosen prompts.

Two of the demo's guards call it over HTTP on 127.0.0.1, as production guards call a hosted
model. It responds to `POST /v1/jailbreak` with `{"score": ...}` and to `POST /v1/topic` with
`{"topic": ...}`. It holds the response back for `slow_seconds` when the request's `id` is one
of the slow ones for that route, so that the guards' timeouts fire.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import urlsplit

from .detectors import injection_score

__all__ = ["JAILBREAK_ROUTE", "TOPIC_ROUTE", "ClassifierBackend", "post_json"]

logger = logging.getLogger(__name__)

JAILBREAK_ROUTE: Final = "/v1/jailbreak"
TOPIC_ROUTE: Final = "/v1/topic"
_MAX_BODY_BYTES: Final = 64 * 1024
_ML_WORDS: Final = frozenset(
    {"model", "models", "data", "drift", "feature", "metrics", "training", "deployment"}
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response and no Nagle delay, or each keep-alive request waits for the
    # client's delayed acknowledgement.
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY_BYTES:
            self._respond(413, {"message": f"body over {_MAX_BODY_BYTES} bytes"})
            return
        try:
            request = json.loads(self.rfile.read(length))
            prompt_id, text = str(request["id"]), str(request["text"])
        except (ValueError, KeyError, TypeError):
            self._respond(400, {"message": "expected a JSON object with id and text"})
            return
        backend = self.server.backend
        if self.path not in (JAILBREAK_ROUTE, TOPIC_ROUTE):
            self._respond(404, {"message": f"no route {self.path}"})
            return
        if prompt_id in backend.slow_ids.get(self.path, ()) and backend.stopping.wait(
            backend.slow_seconds
        ):
            return  # The backend is stopping; the client has given up long ago.
        self._respond(200, _classify(self.path, text))

    def _respond(self, status: int, payload: Mapping[str, Any]) -> None:
        body = json.dumps(payload).encode("utf-8")
        head = (
            f"HTTP/1.1 {status} {self.responses[status][0]}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        self.wfile.write(head + body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("classifier backend: %s", format % args)


def _classify(route: str, text: str) -> dict[str, Any]:
    if route == JAILBREAK_ROUTE:
        # Scaled so that the remote model flags weaker signs of an attack than the local
        # prompt-injection heuristic does.
        return {"score": round(min(1.0, 0.75 * injection_score(text)), 3)}
    words = set(text.lower().split())
    return {"topic": "machine learning" if words & _ML_WORDS else "general"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, backend: ClassifierBackend) -> None:
        self.backend = backend
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's fully qualified name, which can wait on DNS.
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name = "127.0.0.1"
        self.server_port = int(self.server_address[1])


class ClassifierBackend:
    """A classification service on a free port of 127.0.0.1, used as a context manager.

    Args:
        slow_ids: For each route, the prompt IDs whose response is held back.
        slow_seconds: How long a slow response is held back, in seconds.
    """

    def __init__(self, slow_ids: Mapping[str, frozenset[str]], slow_seconds: float) -> None:
        self.slow_ids = dict(slow_ids)
        self.slow_seconds = slow_seconds
        self.stopping = threading.Event()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="demo-classifier-backend",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """The base URL, such as `http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> ClassifierBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


async def post_json(base_url: str, route: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Post `payload` as JSON to `base_url + route` and return the JSON response.

    It uses asyncio streams, so a guard's timeout cancels the request and closes the
    connection without leaving a thread behind.

    Raises:
        ConnectionError: The backend responded with an error status or an invalid body.
        OSError: The connection failed.
    """
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = json.dumps(payload).encode("utf-8")
    head = (
        f"POST {route} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        content = await reader.readexactly(length)
    finally:
        writer.close()
    status = status_line.split(b" ", 2)[1:2]
    if status != [b"200"]:
        raise ConnectionError(f"{route} responded {status_line.decode('latin-1').strip()!r}")
    document = json.loads(content)
    if not isinstance(document, dict):
        raise ConnectionError(f"{route} responded with JSON that is not an object")
    return document
