"""Delivery of event bodies: HTTP to the DataRobot API, or the local event log.

`requests` is imported only when the first event is sent, through `load_requests`, so that
`import mlops_guard_events` stays cheap. Every `requests` failure is turned into a library
exception in one place, `_delivery_error`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import urllib.parse
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, NoReturn

from . import _stats
from ._files import make_private_directory, write_all
from ._retry import RetryPolicy, parse_retry_after
from ._scrub import redact_text
from ._version import __version__
from .exceptions import (
    EventDeliveryError,
    EventRejectedError,
    EventRetryableError,
    SpoolError,
)

if TYPE_CHECKING:
    import requests

    from ._config import Settings

__all__ = [
    "RETRYABLE_STATUS_CODES",
    "EventLog",
    "HttpTransport",
    "load_requests",
]

logger = logging.getLogger("mlops_guard_events")

RETRYABLE_STATUS_CODES: Final = frozenset({429, 502, 503, 504})
"""Statuses after which the same event may be sent again; every other non-2xx is final."""

# The response body is read up to this many bytes: enough for any error message, and a broken
# server cannot make the caller buffer an endless body.
_MAX_RESPONSE_BYTES: Final = 64 * 1024
_MAX_SERVER_MESSAGE_CHARS: Final = 500


# The lazy, fork-safe import of requests.

_import_lock = threading.RLock()
_requests: ModuleType | None = None


def load_requests() -> ModuleType:
    """Import `requests` on first use and return the module.

    A fork while another thread is inside this import would leave the child with a
    half-initialized module. The fork handlers registered below hold the lock across
    `os.fork()`, so in the child the import is either complete or not started.

    Raises:
        ImportError: `requests` is not installed.
    """
    global _requests
    module = _requests
    if module is not None:
        return module
    with _import_lock:
        if _requests is None:
            import requests

            _requests = requests
        return _requests


def _before_fork() -> None:
    _import_lock.acquire()


def _after_fork_in_parent() -> None:
    _import_lock.release()


def _after_fork_in_child() -> None:
    global _import_lock, _event_log_warning_lock
    # The parent's locks may have been held by threads that do not exist in the child.
    _import_lock = threading.RLock()
    _event_log_warning_lock = threading.Lock()
    _warned_event_log_paths.clear()
    for transport in list(_live_transports):
        transport._forget_inherited_sessions()
    for event_log in list(_live_event_logs):
        event_log._lock = threading.Lock()


# The HTTP transport.


class HttpTransport:
    """Post event bodies to `{endpoint}/remoteEvents/` over pooled `requests` sessions.

    Any thread may call `post` and `send` at the same time: each call borrows a session from
    a pool and returns it afterwards, so connections are reused across calls without two
    threads sharing one session. A forked child starts with an empty pool, because the
    parent's connections must not be used from two processes.

    Args:
        settings: The endpoint, token, timeouts and TLS verification to use.
        retry_policy: The policy `send` follows by default; None builds one with the
            settings' `max_retries`.

    Raises:
        ValueError: `settings.endpoint` is None, which means the local event log; use
            `EventLog(settings.event_log_path)` for that.
    """

    def __init__(self, settings: Settings, *, retry_policy: RetryPolicy | None = None) -> None:
        url = settings.events_url
        if url is None:
            raise ValueError(
                "HttpTransport needs an endpoint, but settings.endpoint is None; configure an"
                " endpoint, or write to EventLog(settings.event_log_path) instead"
            )
        self.url = url
        self.retry_policy = retry_policy or RetryPolicy(max_retries=settings.max_retries)
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._verify: bool | str = (
            str(Path(settings.ssl_verify).expanduser())
            if isinstance(settings.ssl_verify, str)
            else settings.ssl_verify
        )
        if self._verify is True:
            # Sessions do not read the environment (see _new_session), so honour the CA bundle
            # variables that requests itself would read.
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                self._verify = bundle
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        authorization = settings.authorization()
        if authorization is not None:
            self._headers["Authorization"] = authorization
        # Kept only to scrub secrets from server text quoted in error messages.
        self._settings = settings
        self._secret = settings.api_token.strip() if settings.api_token else None
        self._display_url = _display_url(url)

        self._lock = threading.Lock()
        self._idle: list[requests.Session] = []
        self._sessions: list[requests.Session] = []
        self._closed = False
        _live_transports.add(self)

    def __repr__(self) -> str:
        return f"HttpTransport({self._display_url!r})"

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def post(self, body: Mapping[str, Any]) -> None:
        """Make one attempt to deliver `body`, the JSON object of one event.

        Args:
            body: The wire form of the event, as `ModerationEvent.to_wire()` returns it.

        Raises:
            EventRetryableError: A connection error, a timeout, or HTTP 429, 502, 503 or 504;
                `retry_after` contains the seconds from the server's `Retry-After` header, with
                a date measured against `retry_policy.clock`.
            EventRejectedError: Any other response that is not 2xx, or a failure that sending
                again cannot fix, such as an invalid TLS certificate.
            TypeError, ValueError: `body` cannot be encoded as JSON.
        """
        data = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
        session = self._acquire()
        try:
            status, reason, headers, content = self._exchange(session, data)
        finally:
            self._release(session)

        if not 200 <= status < 300:
            self._raise_for_status(status, reason, headers, content)
        logger.debug(
            "moderation event %s delivered to %s: HTTP %d",
            body.get("eventType"),
            self._display_url,
            status,
        )

    def send(self, body: Mapping[str, Any], policy: RetryPolicy | None = None) -> None:
        """Deliver `body`, retrying retryable failures as `policy` allows.

        Each retry is logged at WARNING, without the body or the headers, and counted as
        `retried`. The call blocks during the waits between attempts.

        Args:
            body: The wire form of the event.
            policy: The retry policy; None uses `retry_policy`.

        Raises:
            EventRetryableError: Every attempt failed in a retryable way. The message states
                how many attempts were made, and `__cause__` is the `requests` exception
                of the last attempt, if any.
            EventRejectedError: An attempt failed for good, so it is not retried.
            TypeError, ValueError: `body` cannot be encoded as JSON.
        """
        policy = policy or self.retry_policy
        retry = 0
        previous_delay: float | None = None
        while True:
            try:
                self.post(body)
                return
            except EventRetryableError as error:
                retry += 1
                if not policy.should_retry(retry):
                    raise _gave_up(error, attempts=retry) from error.__cause__
                delay = policy.delay(retry, retry_after=error.retry_after, previous=previous_delay)
                logger.warning(
                    "moderation event delivery failed: %s; retry %d of %d in %.2f s",
                    error,
                    retry,
                    policy.max_retries,
                    delay,
                )
                _stats.count("retried")
                previous_delay = delay
                policy.sleep(delay)

    def close(self) -> None:
        """Close the pooled connections.

        Sessions in use close when their call ends. Calls after `close` still work, each
        over a new connection that is closed afterwards, so a thread that still uses the
        transport finishes its retries.
        """
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            for session in idle:
                self._sessions.remove(session)
        for session in idle:
            session.close()

    def _acquire(self) -> requests.Session:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        session = self._new_session()
        with self._lock:
            self._sessions.append(session)
        return session

    def _release(self, session: requests.Session) -> None:
        with self._lock:
            keep = not self._closed and session in self._sessions
            if keep:
                self._idle.append(session)
            elif session in self._sessions:
                self._sessions.remove(session)
        if not keep:
            session.close()

    def _new_session(self) -> requests.Session:
        load_requests()
        import requests  # already imported by load_requests, under its fork-safe lock

        session = requests.Session()
        # With trust_env on, requests reads the proxy variables on every request, about a
        # quarter of its time per event, and lets a ~/.netrc entry for the host replace the
        # Authorization header. So the environment's proxies are read once, here.
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self.url))
        session.headers.update(self._headers)
        session.headers["User-Agent"] = (
            f"mlops-guard-events/{__version__} python-requests/{requests.__version__}"
        )
        return session

    def _forget_inherited_sessions(self) -> None:
        # Runs in a forked child. Closing the parent's sessions here could block on a urllib3
        # lock that a parent thread held at the fork, so they are dropped instead. The garbage
        # collector then closes the child's copies of their sockets, which leaves the parent's
        # connections usable.
        self._lock = threading.Lock()
        self._sessions = []
        self._idle = []

    def _exchange(
        self, session: requests.Session, data: bytes
    ) -> tuple[int, str, Mapping[str, str], bytes]:
        """Post `data` and return the status, reason, headers and the first bytes of the body.

        Raises:
            EventRetryableError: The request failed in a way that may pass on a retry.
            EventRejectedError: The request failed in a way that a retry cannot fix.
        """
        try:
            response = session.post(
                self.url,
                data=data,
                timeout=self._timeout,
                verify=self._verify,
                allow_redirects=False,
                stream=True,
            )
            with response:
                content = _read_limited(response)
        except Exception as error:
            mapped = self._delivery_error(error)
            if mapped is None:
                raise
            raise mapped from error
        return response.status_code, response.reason or "", response.headers, content

    def _delivery_error(self, error: Exception) -> EventDeliveryError | None:
        """Map an exception from `requests` to the library's error, or None if it is not one.

        This is the one place where `requests` and `urllib3` failures are classified.
        """
        entry = _classify(error)
        if entry is None:
            return None
        retryable, description = entry
        text = self._scrub(_shorten(f"{type(error).__name__}: {error}"))
        message = f"POST {self._display_url} failed: {description} ({text})"
        if retryable:
            return EventRetryableError(message)
        return EventRejectedError(message)

    def _raise_for_status(
        self, status: int, reason: str, headers: Mapping[str, str], content: bytes
    ) -> NoReturn:
        """Raise the library's error for a response that is not 2xx.

        The error is chained to a `requests.HTTPError`, as a failed connection is chained to
        the `requests` exception that reported it.
        """
        import requests  # the response came through requests, so it is imported

        server_message = self._scrub_optional(_server_message(content))
        text = f"POST {self._display_url} failed with HTTP {status}"
        if reason:
            text += f" {reason}"
        text += f": {server_message}" if server_message else ": the response has no message"
        hint = _status_hint(status, headers)
        if hint:
            text += f"; {hint}"

        cause = requests.HTTPError(f"HTTP {status} {reason}".strip())
        error: EventDeliveryError
        if status in RETRYABLE_STATUS_CODES:
            retry_after = parse_retry_after(headers.get("Retry-After"), self.retry_policy.clock())
            error = EventRetryableError(
                text, status_code=status, server_message=server_message, retry_after=retry_after
            )
        else:
            error = EventRejectedError(text, status_code=status, server_message=server_message)
        raise error from cause

    def _scrub(self, text: str) -> str:
        # Server text quoted in an error may echo the token or other credentials.
        return redact_text(
            text,
            token=self._secret,
            patterns=self._settings.redact_patterns,
            builtin=self._settings.redact_secrets,
        )

    def _scrub_optional(self, text: str | None) -> str | None:
        return None if text is None else self._scrub(text)


_live_transports: weakref.WeakSet[HttpTransport] = weakref.WeakSet()


def _read_limited(response: requests.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=8192):
        chunks.append(chunk)
        size += len(chunk)
        if size >= _MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)[:_MAX_RESPONSE_BYTES]


def _server_message(content: bytes) -> str | None:
    """Return the server's explanation: the JSON `message` field, else the body text."""
    text = content.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        text = document["message"]
    return _shorten(" ".join(text.split()), _MAX_SERVER_MESSAGE_CHARS) or None


def _status_hint(status: int, headers: Mapping[str, str]) -> str | None:
    if status in (401, 403):
        return "check the API token and token_type (Bearer or Token)"
    if status == 404:
        return (
            "check that the endpoint is the API base URL, such as https://app.datarobot.com/api/v2"
        )
    if 300 <= status < 400:
        location = headers.get("Location")
        target = f" to {_shorten(location)}" if location else ""
        return f"the endpoint redirects{target}; configure the URL it redirects to"
    return None


def _gave_up(error: EventRetryableError, *, attempts: int) -> EventRetryableError:
    noun = "attempt" if attempts == 1 else "attempts"
    return EventRetryableError(
        f"{error} (gave up after {attempts} {noun})",
        status_code=error.status_code,
        server_message=error.server_message,
        retry_after=error.retry_after,
    )


def _display_url(url: str) -> str:
    """Return `url` without credentials or query, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _shorten(text: str, width: int = 300) -> str:
    return text if len(text) <= width else f"{text[: width - 3]}..."


# The classification of requests failures, as (class name in requests.exceptions, whether a
# retry may succeed, description). Subclasses come before their bases, and an exception takes
# the entry of the nearest class in its MRO.
REQUESTS_FAILURES: Final = (
    ("ConnectTimeout", True, "timed out connecting to the server"),
    ("ReadTimeout", True, "timed out waiting for the response; the server may have the event"),
    ("Timeout", True, "timed out"),
    ("SSLError", False, "the TLS handshake failed; check ssl_verify and the CA bundle"),
    ("ProxyError", True, "the proxy failed"),
    ("ConnectionError", True, "the connection failed"),
    ("ChunkedEncodingError", True, "the response was cut off"),
    ("ContentDecodingError", True, "the response could not be decoded"),
    ("RetryError", True, "the connection failed"),
    ("TooManyRedirects", False, "the endpoint redirects in a loop; check the endpoint"),
    ("InvalidHeader", False, "a request header is invalid; check the API token"),
    ("InvalidProxyURL", False, "the proxy URL is invalid; check the HTTPS_PROXY variable"),
    ("InvalidURL", False, "the endpoint URL is invalid; check the endpoint"),
    ("InvalidSchema", False, "the endpoint URL has an unsupported scheme; use https"),
    ("MissingSchema", False, "the endpoint URL has no scheme; use https://..."),
    ("URLRequired", False, "no endpoint URL; check the endpoint"),
    ("JSONDecodeError", False, "a JSON document is invalid"),
    ("InvalidJSONError", False, "the event body is not valid JSON"),
    ("StreamConsumedError", False, "the response was already read"),
    ("UnrewindableBodyError", False, "the request body cannot be sent again"),
    ("HTTPError", False, "the server responded with an error"),
    ("RequestException", True, "the request failed"),
)

_classes: dict[type[BaseException], tuple[bool, str]] | None = None


def _failure_classes() -> dict[type[BaseException], tuple[bool, str]]:
    global _classes
    if _classes is None:
        requests = load_requests()
        import urllib3.exceptions

        classes: dict[type[BaseException], tuple[bool, str]] = {
            getattr(requests.exceptions, name): (retryable, description)
            for name, retryable, description in REQUESTS_FAILURES
        }
        # requests re-raises some urllib3 errors as they are, such as a protocol error
        # while reading the response.
        classes.setdefault(urllib3.exceptions.HTTPError, (True, "the HTTP exchange failed"))
        _classes = classes
    return _classes


def _classify(error: BaseException) -> tuple[bool, str] | None:
    """Return whether a retry may help and a description, or None for a foreign exception."""
    classes = _failure_classes()
    for cls in type(error).__mro__:
        entry = classes.get(cls)
        if entry is not None:
            return entry
    # requests raises a bare OSError for a CA bundle path that does not exist.
    if type(error) is OSError:
        return False, "TLS could not be set up; check ssl_verify and the CA bundle path"
    return None


# The local event log.

_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)

_event_log_warning_lock = threading.Lock()
_warned_event_log_paths: set[str] = set()


class EventLog:
    """A JSON Lines file of event bodies: the embedded default when no endpoint is set.

    Each `append` writes one line with a single `os.write` to a file opened with `O_APPEND`,
    so lines from concurrent threads and processes do not interleave. The file is created
    with mode 0600 in a directory created with mode 0700. A symbolic link at the file's path
    is not followed, so a planted link cannot redirect events elsewhere.

    Args:
        path: The file to append to; its directory is created on first append.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._corrupt_lines = 0
        self._warned_corrupt = False
        _live_event_logs.add(self)

    def __repr__(self) -> str:
        return f"EventLog({str(self.path)!r})"

    @property
    def corrupt_lines(self) -> int:
        """The number of corrupt or truncated lines that `read` has skipped so far."""
        with self._lock:
            return self._corrupt_lines

    def append(self, body: Mapping[str, Any]) -> None:
        """Append `body` as one JSON line.

        The first append to a path in a process logs one WARNING that events go to this file
        because no DataRobot endpoint is configured.

        Args:
            body: The wire form of an event.

        Raises:
            SpoolError: The directory or the file cannot be created or written, or the path
                is a symbolic link.
            TypeError, ValueError: `body` cannot be encoded as JSON.
        """
        line = _encode_line(body)
        with self._lock:
            descriptor = self._open_for_append()
            try:
                write_all(descriptor, line)
            except OSError as error:
                raise SpoolError(
                    f"cannot write to the event log {str(self.path)!r}: {error.strerror or error};"
                    " free disk space or set event_log_path to a writable file"
                ) from error
            finally:
                os.close(descriptor)
        _warn_first_use(self.path)

    def read(self) -> Iterator[dict[str, Any]]:
        """Yield the event bodies in the file, oldest first.

        A line that is not a JSON object, such as one cut off by a crash, is skipped and
        counted in `corrupt_lines`. The first one logs a WARNING; later ones are only counted.
        A missing file yields nothing.

        Raises:
            SpoolError: The file cannot be read, or the path is a symbolic link.
        """
        try:
            descriptor = os.open(self.path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as error:
            raise self._open_error(error) from error

        with os.fdopen(descriptor, "rb") as file:
            for number, raw in enumerate(file, start=1):
                if not raw.strip():
                    continue
                body = _decode_line(raw)
                if body is None:
                    self._note_corrupt_line(number)
                    continue
                yield body

    def _open_for_append(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC
        try:
            make_private_directory(self.path.parent)
            try:
                descriptor = os.open(self.path, flags | os.O_EXCL, 0o600)
            except FileExistsError:
                return os.open(self.path, flags, 0o600)
        except OSError as error:
            raise self._open_error(error) from error

        # The umask may have removed bits from 0600, and the owner must be able to read and
        # write the file, so set the mode of the file this call created exactly.
        try:
            os.fchmod(descriptor, 0o600)
        except OSError as error:
            os.close(descriptor)
            raise self._open_error(error) from error
        return descriptor

    def _open_error(self, error: OSError) -> SpoolError:
        if error.errno == errno.ELOOP:
            return SpoolError(
                f"the event log {str(self.path)!r} is a symbolic link, which is not followed so"
                " that a planted link cannot redirect events; remove the link, or set"
                " event_log_path to a regular file"
            )
        return SpoolError(
            f"cannot open the event log {str(self.path)!r}: {error.strerror or error}; make its"
            " directory writable, or set event_log_path or MLOPS_GUARD_EVENTS_STATE_DIR"
        )

    def _note_corrupt_line(self, number: int) -> None:
        with self._lock:
            self._corrupt_lines += 1
            first = not self._warned_corrupt
            self._warned_corrupt = True
        if first:
            logger.warning(
                "skipped line %d of the event log %s: it is not a JSON object, probably cut off"
                " by a crash; later corrupt lines are skipped without a warning",
                number,
                self.path,
            )


_live_event_logs: weakref.WeakSet[EventLog] = weakref.WeakSet()


def _encode_line(body: Mapping[str, Any]) -> bytes:
    text = json.dumps(body, ensure_ascii=False, allow_nan=False)
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate cannot be UTF-8; JSON's \u escapes can still carry it.
        return (json.dumps(body, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")


def _decode_line(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def _warn_first_use(path: Path) -> None:
    key = str(path)
    with _event_log_warning_lock:
        if key in _warned_event_log_paths:
            return
        _warned_event_log_paths.add(key)
    logger.warning(
        "moderation events are written to the local event log at %s because no DataRobot"
        " endpoint is configured; set DATAROBOT_ENDPOINT and DATAROBOT_API_TOKEN, or call"
        " mlops_guard_events.configure(endpoint=..., api_token=...), to send them to DataRobot",
        path,
    )


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
