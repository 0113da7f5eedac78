"""The `mlops-guard-events` command line: demo, receiver, report, spool, doctor and events.

Exit status: 0 on success and 1 when an operation fails, which includes an invalid setting in
the environment or the DataRobot config file. Invalid usage exits with 2: an unknown option, an
invalid option value, or an event field that the explicit call rejects.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import json
import logging
import math
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, Final

from ._version import __version__
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    import requests

    from ._config import Settings
    from ._receiver import Faults, RecordedRequest, RemoteEventsReceiver
    from ._spool import Spool, SpoolSummary
    from .exceptions import EventDeliveryError

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "build_parser",
    "describe_event",
    "format_table",
    "main",
]

logger = logging.getLogger(__name__)

PROG: Final = "mlops-guard-events"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
# The shell's status for a command stopped by Ctrl-C (128 + SIGINT), for commands where an
# interruption means the work is unfinished.
EXIT_INTERRUPTED: Final = 130

EVENT_TYPES: Final = (
    "moderationMetricCreationError",
    "moderationMetricReportingError",
    "moderationModelConfigError",
    "moderationModelRuntimeError",
    "moderationModelScoringError",
)


class CommandError(Exception):
    """A command failed; `main` prints the message and exits with `status`.

    Args:
        message: What failed, on which value, and what to do next.
        status: The exit status, `EXIT_FAILED` or `EXIT_USAGE`.
    """

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the command and return its exit status.

    Args:
        argv: The arguments after the program name; None reads `sys.argv`.

    Returns:
        0 on success, 1 when the operation failed, 2 on invalid usage.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        # argparse exits 0 after --help and --version, and 2 on invalid usage.
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_USAGE

    _configure_logging(_verbosity(args))
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CommandError as error:
        _print_error(args.command, str(error))
        return error.status
    except KeyboardInterrupt:
        _print_error(args.command, "interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away, as `events | head` does; that is not an error.
        _silence_stdout()
        return EXIT_OK
    except ConfigurationError as error:
        _print_error(
            args.command,
            f"invalid configuration: {error}. Run `{PROG} doctor` to see the environment"
            " variables and the config file in use.",
        )
        return EXIT_FAILED


def _print_error(command: str, message: str) -> None:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr, flush=True)


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would report the broken pipe a second time.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _verbosity(args: argparse.Namespace) -> int:
    """Return how many times `-v` was given, counted over every level of the command line."""
    return sum(getattr(args, dest, 0) for dest in _VERBOSE_DESTS)


def _configure_logging(verbosity: int) -> None:
    if verbosity == 0:
        level = logging.WARNING
    elif verbosity == 1:
        level = logging.INFO
    else:
        level = logging.DEBUG
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


# The parser


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one subcommand per command.

    Returns:
        The parser; each subcommand sets `handler` to the function that runs it.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Report DataRobot moderation events from the shell, run a local receiver of"
            " remoteEvents, check the configuration, and inspect the spool and the local event"
            " log."
        ),
        epilog=f"Run `{PROG} COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_common_options(parser, level=0)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", required=True
    )
    _add_demo_parser(commands)
    _add_receiver_parser(commands)
    _add_report_parser(commands)
    _add_spool_parser(commands)
    _add_doctor_parser(commands)
    _add_events_parser(commands)
    return parser


# The `-v` count of the program, of its command and of the command's action, such as
# `spool replay`. Each level stores its count under its own name, because argparse copies a
# subcommand's values over its parent's where the names are the same, and that would lose the
# count of `-v` given before the subcommand.
_VERBOSE_DESTS: Final = ("verbose", "command_verbose", "action_verbose")


def _add_common_options(parser: argparse.ArgumentParser, *, level: int) -> None:
    """Add the options that the program, every command and every action accept.

    Args:
        parser: The parser of the program (level 0), of a command (1) or of an action (2).
        level: The depth of `parser`, which picks where `-v` is counted.
    """
    parser.add_argument(
        "-v",
        "--verbose",
        dest=_VERBOSE_DESTS[level],
        action="count",
        default=0,
        help="log more to stderr: -v for INFO, -vv for DEBUG (default: warnings and errors only)",
    )


def _add_subparser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    level: int,
    summary: str,
    description: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """Add a command (level 1) or a command's action (level 2) with the common options."""
    parser = subparsers.add_parser(name, help=summary, description=description)
    _add_common_options(parser, level=level)
    parser.set_defaults(handler=handler)
    return parser


def _add_demo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = _add_subparser(
        commands,
        "demo",
        level=1,
        summary="run a small moderation pipeline that reports events to a local receiver",
        description=(
            "Run a moderation pipeline over about 50 bundled prompts and responses: PII,"
            " toxicity and prompt-injection guards, two guards calling a slow backend that"
            " times out, a misconfigured guard, custom-metric creation and upload failures, and"
            " a score function that fails on one input. Events go over HTTP to a receiver"
            " started on 127.0.0.1. The demo ends with a table of the events received and"
            " the decision for each prompt."
        ),
        handler=_run_demo,
    )
    command.add_argument(
        "--seed",
        type=_non_negative_int,
        default=7,
        help="seed that picks which backend calls are slow (default: 7)",
    )
    command.add_argument(
        "--events-file",
        type=Path,
        metavar="PATH",
        help=(
            "JSON Lines file the receiver appends every event to (default: a new temporary"
            " directory, printed at the end)"
        ),
    )


def _add_receiver_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = _add_subparser(
        commands,
        "receiver",
        level=1,
        summary="run a local endpoint that accepts remoteEvents, for development and tests",
        description=(
            "Run an HTTP server on a loopback address that speaks DataRobot's remoteEvents"
            " contract: POST {endpoint}/remoteEvents/ with a JSON event. It responds 201 and"
            " stores valid events, 422 for a missing or invalid field, 401 for a wrong token"
            " when --token is set, 400 for malformed JSON and 413 for a body over"
            " --max-body-bytes. Each accepted event is printed as it arrives. Fault options"
            " rehearse outages. Stop it with Ctrl-C or SIGTERM (exit status 0)."
        ),
        handler=_run_receiver,
    )
    command.add_argument(
        "--host",
        type=_loopback_host,
        default="127.0.0.1",
        help="loopback address to bind: 127.0.0.1 (default) or ::1",
    )
    command.add_argument(
        "--port",
        type=_port,
        default=8765,
        help="TCP port to bind; 0 picks a free port (default: 8765)",
    )
    token = command.add_mutually_exclusive_group()
    token.add_argument(
        "--token",
        help=(
            "API token that clients must send as 'Bearer TOKEN' or 'Token TOKEN' (default:"
            " accept any request). Other local users can see it in the process list; prefer"
            " --token-file"
        ),
    )
    token.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="read the required API token from the first line of this file",
    )
    _add_receiver_storage_options(command)
    _add_receiver_validation_options(command)
    _add_receiver_output_options(command)
    _add_fault_options(command)


def _add_receiver_storage_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--output",
        type=Path,
        default=Path("received-events.jsonl"),
        metavar="PATH",
        help=(
            "file that accepted events are appended to (default: received-events.jsonl in"
            " the current directory)"
        ),
    )
    command.add_argument(
        "--format",
        choices=("auto", "jsonl", "sqlite"),
        default="auto",
        help=(
            "storage format of --output: jsonl (one JSON object a line) or sqlite (table"
            " events); auto picks sqlite for a .db, .sqlite or .sqlite3 file (default: auto)"
        ),
    )


def _add_receiver_validation_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--max-body-bytes",
        type=_non_negative_int,
        default=1024 * 1024,
        metavar="BYTES",
        help="largest request body accepted, in bytes; larger bodies get 413 (default: 1048576)",
    )
    command.add_argument(
        "--allow-none-deployment-id",
        action="store_true",
        help=(
            "accept a deploymentId that is the text 'None', which the official datarobot"
            " client sends when it has no ID (default: reject it with 422)"
        ),
    )


def _add_receiver_output_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--quiet",
        action="store_true",
        help="print only the start and stop lines, not each request",
    )
    command.add_argument(
        "--json",
        action="store_true",
        help="print each accepted event as its full JSON body instead of a summary line",
    )


def _add_fault_options(command: argparse.ArgumentParser) -> None:
    faults = command.add_argument_group(
        "fault injection",
        "Options that rehearse outages. Latency applies first, then dropped connections,"
        " then --fail-first, then --status.",
    )
    faults.add_argument(
        "--status",
        type=_http_status,
        metavar="CODE",
        help="respond to every request with this HTTP status instead of serving it, such as 503",
    )
    faults.add_argument(
        "--retry-after",
        type=_non_negative_int,
        metavar="SECONDS",
        help="send 'Retry-After: SECONDS' with every injected status, such as --status 429",
    )
    faults.add_argument(
        "--fail-first",
        type=_non_negative_int,
        default=0,
        metavar="COUNT",
        help="respond to the first COUNT requests with --fail-first-status, then recover",
    )
    faults.add_argument(
        "--fail-first-status",
        type=_http_status,
        default=503,
        metavar="CODE",
        help="HTTP status of the responses to the first --fail-first requests (default: 503)",
    )
    faults.add_argument(
        "--latency",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait this many seconds before handling each request (default: 0)",
    )
    faults.add_argument(
        "--drop-fraction",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help=(
            "share of requests, from 0 to 1, whose connection is closed without a response"
            " (default: 0)"
        ),
    )
    faults.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the random choice of dropped requests (default: 0)",
    )


def _add_report_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = _add_subparser(
        commands,
        "report",
        level=1,
        summary="send one moderation event from the shell",
        description=(
            "Send one moderation event with the explicit call, report_moderation_event. It"
            " goes to the configured endpoint (DATAROBOT_ENDPOINT and DATAROBOT_API_TOKEN, or"
            " the DataRobot config file), or to the local event log when no endpoint is set."
            " Exit status: 0 delivered, 1 delivery failed, 2 invalid usage or field."
        ),
        handler=_run_report,
    )
    command.add_argument(
        "--event-type",
        required=True,
        metavar="TYPE",
        help=f"the moderation event type, one of: {', '.join(EVENT_TYPES)}",
    )
    command.add_argument(
        "--timestamp",
        help=(
            "when it happened, as RFC 3339 such as 2026-01-31T12:00:00Z; without an offset"
            " it is UTC (default: now)"
        ),
    )
    command.add_argument("--title", help="one-line summary, at most 512 characters")
    command.add_argument("--message", help="details, at most 16384 characters")
    command.add_argument(
        "--deployment-id",
        metavar="ID",
        help="DataRobot deployment ID (default: MLOPS_DEPLOYMENT_ID, or none)",
    )
    command.add_argument("--org-id", metavar="ID", help="DataRobot organization ID (default: none)")
    command.add_argument(
        "--guard-name", metavar="NAME", help="guard the event is about, at most 512 characters"
    )
    command.add_argument(
        "--metric-name",
        metavar="NAME",
        help="custom metric the event is about, at most 512 characters",
    )


def _add_spool_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = _add_subparser(
        commands,
        "spool",
        level=1,
        summary="show, replay or purge the spool of events not yet delivered",
        description=(
            "The spool keeps events that could not be delivered, on disk under the state"
            " directory, until a later process sends them. Without an action, show it."
        ),
        handler=_run_spool_show,
    )
    actions = command.add_subparsers(dest="action", metavar="ACTION", title="actions")
    _add_subparser(
        actions,
        "show",
        level=2,
        summary="show how many events are spooled, their size and the oldest one (the default)",
        description="Show the spool directory, its event count, size on disk and oldest event.",
        handler=_run_spool_show,
    )
    replay = _add_subparser(
        actions,
        "replay",
        level=2,
        summary="send the spooled events to the configured endpoint now",
        description=(
            "Send every spooled event to the configured endpoint, printing progress. Events"
            " that are delivered or finally rejected leave the spool; the rest stay for a"
            " later replay. Exit status 1 when some events remain."
        ),
        handler=_run_spool_replay,
    )
    replay.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help=(
            "stop starting new requests after this many seconds (default: 60). A request"
            " already started is not cut off, so the replay can run past the limit by up to"
            " the connect and read timeouts (2 s and 5 s by default)"
        ),
    )
    replay.add_argument(
        "--to-event-log",
        action="store_true",
        help=(
            "allow the replay when no endpoint is configured, which moves the events to the"
            " local event log"
        ),
    )
    purge = _add_subparser(
        actions,
        "purge",
        level=2,
        summary="delete every spooled event without sending it",
        description=(
            "Delete every spooled event without sending it. Asks for confirmation on a"
            " terminal; give --yes to skip the question, as scripts must."
        ),
        handler=_run_spool_purge,
    )
    purge.add_argument("--yes", action="store_true", help="delete without asking")


def _add_doctor_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_subparser(
        commands,
        "doctor",
        level=1,
        summary="show the configuration, check the endpoint, and report the spool and event log",
        description=(
            "Show the effective configuration and where each value came from (the API token"
            " masked), check the endpoint with one GET request to {endpoint}/version/, and"
            " report the spool and the local event log. Exit status 1 when a check fails."
        ),
        handler=_run_doctor,
    )


def _add_events_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = _add_subparser(
        commands,
        "events",
        level=1,
        summary="print the local event log, newest last",
        description=(
            "Print the local event log, where events go when no endpoint is configured,"
            " oldest first and newest last. With --follow, keep printing events as they are"
            " appended until Ctrl-C, --max-events or --timeout."
        ),
        handler=_run_events,
    )
    command.add_argument(
        "-n",
        "--last",
        type=_non_negative_int,
        metavar="COUNT",
        help="print only the newest COUNT events that are already in the log",
    )
    command.add_argument(
        "-f", "--follow", action="store_true", help="keep printing events as they are appended"
    )
    command.add_argument(
        "--max-events",
        type=_positive_int,
        metavar="COUNT",
        help="stop after printing COUNT events in all",
    )
    command.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="with --follow, stop following after this many seconds (exit status 0)",
    )
    command.add_argument(
        "--json", action="store_true", help="print each event as its JSON line from the log"
    )
    command.add_argument(
        "--path",
        type=Path,
        metavar="PATH",
        help="read this event log instead of the configured one",
    )


# Option value types. Each raises ArgumentTypeError, which argparse reports with exit status 2.


def _non_negative_int(text: str) -> int:
    value = _parse_int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected an integer, 0 or more")
    return value


def _positive_int(text: str) -> int:
    value = _parse_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected an integer, 1 or more")
    return value


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected an integer") from None


def _port(text: str) -> int:
    value = _parse_int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"invalid port {text!r}: expected 0 (any free port) to 65535"
        )
    return value


def _http_status(text: str) -> int:
    value = _parse_int(text)
    # 1xx responses are interim, so a client would keep waiting for a final one.
    if not 200 <= value <= 599:
        raise argparse.ArgumentTypeError(
            f"invalid HTTP status {text!r}: expected 200 to 599, such as 429 or 503"
        )
    return value


def _seconds(text: str) -> float:
    value = _parse_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid seconds {text!r}: expected 0 or more")
    return value


def _positive_seconds(text: str) -> float:
    value = _parse_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid seconds {text!r}: expected more than 0")
    return value


def _fraction(text: str) -> float:
    value = _parse_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid fraction {text!r}: expected 0 to 1, such as 0.2")
    return value


def _parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: expected a finite number")
    return value


def _loopback_host(text: str) -> str:
    host = "127.0.0.1" if text == "localhost" else text.strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise argparse.ArgumentTypeError(
            f"invalid host {text!r}: the receiver binds only a loopback address, 127.0.0.1 or"
            " ::1, because it is a development tool without TLS"
        )
    return host


# Output helpers


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Format rows as left-aligned text columns under a header line and a rule.

    Args:
        headers: The column titles.
        rows: The rows, each with one value per column; values are shown with `str`.

    Returns:
        The lines of the table, without line endings.
    """
    cells = [[str(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.ljust(width) for value, width in zip(values, widths, strict=True)
        ).rstrip()

    return [line(headers), line(["-" * width for width in widths]), *(line(row) for row in cells)]


def describe_event(event: Mapping[str, Any]) -> str:
    """Summarize one event body in a line: time, type, names, deployment and title.

    The message is left out: it can be long, and it is what `--json` is for.
    """
    data = event.get("moderationData")
    names = data if isinstance(data, Mapping) else {}
    parts = [str(event.get("timestamp", "?")), str(event.get("eventType", "?"))]
    for label, value in (
        ("guard", names.get("guardName")),
        ("metric", names.get("metricName")),
        ("deployment", event.get("deploymentId")),
    ):
        if value:
            parts.append(f"{label}={value}")
    title = event.get("title")
    if title:
        parts.append(repr(_shorten(str(title), 100)))
    return " ".join(parts)


def _quantity(number: int, singular: str, plural: str | None = None) -> str:
    """Return `number` and the form of the noun that agrees with it, as "1 event" or "2 events".

    Args:
        number: The count.
        singular: The noun for one, such as "segment file".
        plural: The noun for any other count; None adds "s" to `singular`.
    """
    noun = singular if number == 1 else (plural or singular + "s")
    return f"{number} {noun}"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _print(text: str = "", *, stream: IO[str] | None = None) -> None:
    print(text, file=stream or sys.stdout, flush=True)


# demo


def _run_demo(args: argparse.Namespace) -> int:
    events_file: Path | None = args.events_file
    if events_file is not None:
        if events_file.exists():
            raise CommandError(
                f"--events-file {str(events_file)!r} exists already, and the demo's counts"
                " cover only its own events: give a new path, or delete the file",
                EXIT_USAGE,
            )
        if not events_file.parent.is_dir():
            raise CommandError(
                f"--events-file {str(events_file)!r}: the directory {str(events_file.parent)!r}"
                " does not exist; create it or give another path",
                EXIT_USAGE,
            )

    from ._demo import run_demo

    return run_demo(seed=args.seed, events_file=events_file, out=sys.stdout)


# receiver


_SQLITE_SUFFIXES: Final = (".db", ".sqlite", ".sqlite3")
RECEIVER_POLL_SECONDS: Final = 0.2


class _SqliteEventStore:
    """A SQLite file with one row per accepted event, safe to use from handler threads.

    The table `events` keeps the names the receiver's console shows in columns, and the whole
    stored body, with the receiver's `id`, as JSON in `body`.
    """

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS events ("
            " id TEXT PRIMARY KEY, received_at TEXT NOT NULL, event_type TEXT NOT NULL,"
            " timestamp TEXT NOT NULL, deployment_id TEXT, org_id TEXT, guard_name TEXT,"
            " metric_name TEXT, title TEXT, message TEXT, body TEXT NOT NULL)"
        )

    def append(self, event: Mapping[str, Any]) -> None:
        """Insert `event`, a body the receiver accepted, with the time it arrived."""
        names = event.get("moderationData") or {}
        row = (
            event["id"],
            datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            event["eventType"],
            event["timestamp"],
            event.get("deploymentId"),
            event.get("orgId"),
            names.get("guardName"),
            names.get("metricName"),
            event.get("title"),
            event.get("message"),
            json.dumps(event, ensure_ascii=False),
        )
        with self._lock:
            self._connection.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row
            )

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._connection.close()


class _ReceiverConsole:
    """The receiver's console output: each accepted event, and each request it rejected."""

    def __init__(self, *, show_json: bool, quiet: bool) -> None:
        self._show_json = show_json
        self._quiet = quiet
        self._lock = threading.Lock()
        self._next_request = 0
        self.accepted = 0

    def print_event(self, event: Mapping[str, Any]) -> None:
        """Print an accepted event; the receiver calls this from its handler thread."""
        with self._lock:
            self.accepted += 1
            if self._quiet:
                return
            text = (
                json.dumps(event, ensure_ascii=False) if self._show_json else describe_event(event)
            )
            _print(f"201 {text}" if not self._show_json else text)

    def print_rejections(self, requests: Sequence[RecordedRequest], grace_seconds: float) -> None:
        """Print the requests not yet shown that got an error status or no response.

        A request still waiting for its response is shown later, unless it has waited longer
        than `grace_seconds`, which means it was dropped or its client disconnected.
        """
        now = time.monotonic()
        with self._lock:
            for request in requests[self._next_request :]:
                if request.status is None and now - request.arrived_at < grace_seconds:
                    break
                self._next_request += 1
                if self._quiet or request.status == 201:
                    continue
                if request.status is None:
                    _print(
                        f"--- {request.method} {request.path} (no response: the connection was"
                        " dropped, or the client disconnected)"
                    )
                elif request.message:
                    _print(f"{request.status} {request.method} {request.path}: {request.message}")
                else:
                    _print(f"{request.status} {request.method} {request.path}")


def _run_receiver(args: argparse.Namespace) -> int:
    from ._receiver import RemoteEventsReceiver

    faults = _receiver_faults(args)
    token = _receiver_token(args)
    console = _ReceiverConsole(show_json=args.json, quiet=args.quiet)
    use_sqlite = args.format == "sqlite" or (
        args.format == "auto" and args.output.suffix.lower() in _SQLITE_SUFFIXES
    )
    store = _open_sqlite_store(args.output) if use_sqlite else None

    receiver = RemoteEventsReceiver(
        host=args.host,
        port=args.port,
        token=token,
        max_body_bytes=args.max_body_bytes,
        reject_none_deployment_id=not args.allow_none_deployment_id,
        faults=faults,
        jsonl_path=None if use_sqlite else args.output,
        on_event=console.print_event,
        storage=store.append if store is not None else None,
    )
    grace_seconds = faults.latency_seconds + 2.0
    try:
        with _stop_on_signals() as stop:
            _start_receiver(receiver, args)
            _print_receiver_banner(
                receiver, args, token=token, faults=faults, use_sqlite=use_sqlite
            )
            while not stop.wait(RECEIVER_POLL_SECONDS):
                if not args.quiet:
                    console.print_rejections(receiver.requests(), grace_seconds)
    finally:
        receiver.stop()
        if store is not None:
            store.close()
    _print(f"receiver stopped: {_quantity(console.accepted, 'event')} accepted")
    return EXIT_OK


def _receiver_faults(args: argparse.Namespace) -> Faults:
    from ._receiver import Faults

    if args.retry_after is not None and args.status is None and args.fail_first == 0:
        raise CommandError(
            "--retry-after needs an injected status: add --status 429 (or --fail-first COUNT)",
            EXIT_USAGE,
        )
    return Faults(
        status=args.status,
        retry_after=args.retry_after,
        latency_seconds=args.latency,
        fail_first=args.fail_first,
        fail_first_status=args.fail_first_status,
        drop_fraction=args.drop_fraction,
        seed=args.seed,
    )


def _receiver_token(args: argparse.Namespace) -> str | None:
    if args.token_file is None:
        token: str | None = args.token
    else:
        try:
            lines = args.token_file.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise CommandError(
                f"cannot read --token-file {str(args.token_file)!r}: {error.strerror}", EXIT_USAGE
            ) from None
        token = lines[0].strip() if lines else ""
    if token is not None and (not token or not token.isprintable() or not token.isascii()):
        source = "--token" if args.token_file is None else f"--token-file {args.token_file}"
        raise CommandError(
            f"invalid token from {source}: expected a non-empty line of printable ASCII",
            EXIT_USAGE,
        )
    return token


def _open_sqlite_store(path: Path) -> _SqliteEventStore:
    try:
        return _SqliteEventStore(path)
    except sqlite3.Error as error:
        raise CommandError(
            f"cannot open SQLite file {str(path)!r}: {error}; choose another --output"
        ) from None


def _start_receiver(receiver: RemoteEventsReceiver, args: argparse.Namespace) -> None:
    try:
        receiver.start()
    except OSError as error:
        if receiver.jsonl_path is not None and getattr(error, "filename", None) is not None:
            raise CommandError(
                f"cannot open --output {str(args.output)!r}: {error.strerror}; choose a"
                " writable path"
            ) from None
        raise CommandError(
            f"cannot listen on {args.host} port {args.port}: {error.strerror or error}; choose"
            " another --port, or 0 for a free one"
        ) from None


def _print_receiver_banner(
    receiver: RemoteEventsReceiver,
    args: argparse.Namespace,
    *,
    token: str | None,
    faults: Faults,
    use_sqlite: bool,
) -> None:
    storage = "SQLite table events" if use_sqlite else "JSON Lines"
    lines = [
        f"{PROG} receiver listening on {receiver.endpoint}",
        f"  events are posted to {receiver.events_url}",
        f"  accepted events are appended to {args.output.resolve()} ({storage})",
        "  token: " + ("required (Bearer or Token scheme)" if token else "not checked"),
        f"  faults: {_describe_faults(faults)}",
        f"  to send events here: export DATAROBOT_ENDPOINT={receiver.endpoint}",
        "Press Ctrl-C to stop.",
    ]
    for line in lines:
        _print(line)


def _describe_faults(faults: Faults) -> str:
    parts = []
    if faults.latency_seconds:
        parts.append(f"{faults.latency_seconds:g} s latency")
    if faults.drop_fraction:
        parts.append(f"{faults.drop_fraction:.0%} of connections dropped (seed {faults.seed})")
    if faults.fail_first:
        if faults.fail_first == 1:
            parts.append(f"first request gets {faults.fail_first_status}")
        else:
            parts.append(f"first {faults.fail_first} requests get {faults.fail_first_status}")
    if faults.status is not None:
        parts.append(f"every request gets {faults.status}")
    if faults.retry_after is not None:
        parts.append(f"Retry-After: {faults.retry_after}")
    return ", ".join(parts) or "none"


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Set the yielded event when SIGINT or SIGTERM arrives, while the block runs.

    Both signals end a long-running command cleanly, so a receiver or a follower stopped by
    Ctrl-C or by a process manager exits with status 0. Install this before printing anything
    a caller may wait for, so that a signal sent right after that output is not lost.
    """
    stop = threading.Event()

    def request_stop(signal_number: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        number: _install_signal_handler(number, request_stop)
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            if handler is not None:
                signal.signal(number, handler)


def _install_signal_handler(
    number: int, handler: Callable[[int, FrameType | None], None]
) -> Callable[[int, FrameType | None], Any] | int | None:
    try:
        return signal.signal(number, handler)
    except ValueError:
        # Only the main thread can set handlers; elsewhere Ctrl-C still raises KeyboardInterrupt.
        return None


# report


def _run_report(args: argparse.Namespace) -> int:
    from ._config import current_settings
    from ._report import report_moderation_event
    from .exceptions import EventDeliveryError, SpoolError

    settings = current_settings()
    try:
        report_moderation_event(
            args.event_type,
            timestamp=args.timestamp,
            title=args.title,
            message=args.message,
            deployment_id=args.deployment_id,
            org_id=args.org_id,
            guard_name=args.guard_name,
            metric_name=args.metric_name,
        )
    except EventDeliveryError as error:
        raise CommandError(_describe_delivery_failure(error)) from None
    except SpoolError as error:
        raise CommandError(str(error)) from None
    except ConfigurationError:
        raise  # a ValueError too, but main reports it as a failed operation
    except ValueError as error:
        raise CommandError(str(error), EXIT_USAGE) from None

    if settings.events_url is None:
        _print(
            f"appended {args.event_type} to the local event log {settings.event_log_path}"
            " (no endpoint is configured)"
        )
    else:
        _print(f"delivered {args.event_type} to {settings.events_url}")
    return EXIT_OK


def _describe_delivery_failure(error: EventDeliveryError) -> str:
    status = error.status_code
    outcome = "no HTTP status: no response" if status is None else f"HTTP status {status}"
    # The error's text names the URL and the server's message. For 401, 403 and 404 it also
    # contains what to check, so advice is added only for the other cases.
    advice = _delivery_advice(status)
    return f"delivery failed ({outcome}): {error}" + (f". {advice}" if advice else "")


def _delivery_advice(status: int | None) -> str | None:
    if status is None:
        return (
            f"Check that the endpoint is reachable and correct: `{PROG} doctor` checks it with"
            " one request"
        )
    if status in (401, 403, 404) or 300 <= status < 400:
        return None
    if status in (400, 413, 422):
        return "The server rejected the event's fields: correct them as its message says"
    if status in (429, 502, 503, 504):
        return "The server is overloaded or unavailable: send the event again later"
    return f"Run `{PROG} doctor` to check the configuration and the endpoint"


# spool


def _open_spool(settings: Settings) -> Spool:
    from ._spool import Spool

    return Spool(settings.spool_dir, settings.spool_max_bytes)


def _spool_summary(settings: Settings) -> SpoolSummary:
    from .exceptions import SpoolError

    try:
        return _open_spool(settings).summary()
    except SpoolError as error:
        raise CommandError(str(error)) from None


def _describe_spool(summary: SpoolSummary) -> list[str]:
    lines = [f"directory: {summary.directory}"]
    if summary.segments == 0:
        lines.append("empty: no events are waiting to be delivered")
        return lines
    lines.append(
        f"{_quantity(summary.events, 'event')} in {_quantity(summary.segments, 'segment file')},"
        f" {_format_size(summary.size_bytes)}"
    )
    if summary.oldest_timestamp is not None:
        lines.append(f"oldest event: {summary.oldest_timestamp}")
    if summary.unreadable_segments:
        lines.append(
            f"{_quantity(summary.unreadable_segments, 'segment file')} with an unknown format"
            " left alone: a newer version of this library wrote them, or they are not spool files"
        )
    return lines


def _run_spool_show(args: argparse.Namespace) -> int:
    from ._config import current_settings

    for line in _describe_spool(_spool_summary(current_settings())):
        _print(line)
    return EXIT_OK


def _run_spool_purge(args: argparse.Namespace) -> int:
    from ._config import current_settings
    from .exceptions import SpoolError

    settings = current_settings()
    summary = _spool_summary(settings)
    if summary.events == 0 and summary.segments == 0:
        _print(f"the spool at {summary.directory} is empty; nothing to purge")
        return EXIT_OK
    if not args.yes:
        _confirm_purge(summary)
    try:
        deleted = _open_spool(settings).purge()
    except SpoolError as error:
        raise CommandError(str(error)) from None
    _print(f"purged {_quantity(deleted, 'event')} from {summary.directory}")
    remaining = _spool_summary(settings)
    if remaining.segments:
        _print(
            f"{_quantity(remaining.segments, 'segment file')}"
            f" {'remains' if remaining.segments == 1 else 'remain'}: another process is writing"
            " to the spool or replaying it, or a segment file's format is unknown"
        )
    return EXIT_OK


def _confirm_purge(summary: SpoolSummary) -> None:
    if not sys.stdin.isatty():
        raise CommandError(
            f"purging deletes {_quantity(summary.events, 'undelivered event')}; add --yes to"
            " confirm when not running on a terminal",
            EXIT_USAGE,
        )
    answer = input(
        f"Delete {_quantity(summary.events, 'undelivered event')} without sending them? [y/N] "
    )
    if answer.strip().lower() not in ("y", "yes"):
        raise CommandError("purge cancelled; the spool is unchanged")


REPLAY_POLL_SECONDS: Final = 0.2


def _run_spool_replay(args: argparse.Namespace) -> int:
    from ._config import current_settings
    from ._stats import stats

    settings = current_settings()
    if settings.events_url is None and not args.to_event_log:
        raise CommandError(
            "no endpoint is configured, so a replay would only move the spooled events to the"
            " local event log: set DATAROBOT_ENDPOINT and DATAROBOT_API_TOKEN first, or add"
            " --to-event-log to do that on purpose"
        )
    before = _spool_summary(settings)
    if before.events == 0:
        _print(f"the spool at {before.directory} is empty; nothing to replay")
        return EXIT_OK

    target = settings.events_url or f"the local event log {settings.event_log_path}"
    _print(f"replaying {_quantity(before.events, 'spooled event')} to {target}")
    counters_before = stats()
    delivered = _replay_with_progress(before.events, timeout_seconds=args.timeout)
    counters_after = stats()

    after = _spool_summary(settings)
    rejected = counters_after["rejected"] - counters_before["rejected"]
    corrupt = counters_after["dropped_spool_corrupt"] - counters_before["dropped_spool_corrupt"]
    summary = f"delivered {delivered}; dropped {rejected} that the server rejected for good"
    if corrupt:
        summary += f" and {corrupt} corrupt spool {'line' if corrupt == 1 else 'lines'}"
    _print(f"{summary}; {after.events} left in the spool")
    if after.events:
        # The replay does not say why it stopped, and it logs a warning only when the retries
        # of one event ran out, so the message names every cause.
        verb = "remains" if after.events == 1 else "remain"
        raise CommandError(
            f"{_quantity(after.events, 'event')} {verb} in the spool: delivery failed, the"
            f" --timeout of {args.timeout:g} s was reached, or another process is replaying"
            f" the spool too. Run `{PROG} doctor` to check the endpoint, then `{PROG} spool"
            " replay` again, with a larger --timeout if the endpoint is slow"
        )
    return EXIT_OK


def _replay_with_progress(total: int, *, timeout_seconds: float) -> int:
    """Replay the spool on a thread while this one prints how many events are done.

    Returns:
        How many events were delivered.

    Raises:
        CommandError: The spool cannot be read.
    """
    from ._worker import replay_spool
    from .exceptions import SpoolError

    result: dict[str, Any] = {}
    finished = [0]

    def record_progress(count: int) -> None:
        finished[0] = count

    def replay() -> None:
        try:
            result["delivered"] = replay_spool(timeout_seconds, progress=record_progress)
        except BaseException as error:  # handed to the main thread, which raises it
            result["error"] = error

    # The replay runs on a thread so that this one can redraw the progress line and still
    # take Ctrl-C at once.
    progress = _Progress(total)
    thread = threading.Thread(target=replay, name="mlops-guard-events-replay", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(REPLAY_POLL_SECONDS)
        progress.update(finished[0])
    progress.finish(finished[0])

    error = result.get("error")
    if isinstance(error, SpoolError):
        raise CommandError(str(error)) from None
    if error is not None:
        raise error
    delivered: int = result["delivered"]
    return delivered


class _Progress:
    """A progress indicator for `total` events.

    On a terminal it rewrites one line. Elsewhere it prints a line when the count changes, at
    most once a second, and the final count.
    """

    def __init__(self, total: int) -> None:
        self._total = total
        self._terminal = sys.stdout.isatty()
        self._shown_count = -1
        self._shown_at = 0.0

    def update(self, done: int) -> None:
        """Show `done` if it changed, rate-limited when the output is not a terminal."""
        now = time.monotonic()
        if done == self._shown_count or (not self._terminal and now - self._shown_at < 1.0):
            return
        self._show(done)
        self._shown_at = now

    def finish(self, done: int) -> None:
        """Show the final count and end the line."""
        if done != self._shown_count:
            self._show(done)
        if self._terminal:
            _print()

    def _show(self, done: int) -> None:
        self._shown_count = done
        text = f"replayed {done} of {_quantity(self._total, 'event')}"
        if self._terminal:
            print(f"\r{text}", end="", flush=True)
        else:
            _print(text)


# doctor

# The endpoint check is one GET of `{endpoint}/version/`, the route the official `datarobot`
# client (3.20.0, `datarobot.client._is_compatible_client`) requests to check that an endpoint
# and token work before it does anything else. It reads and changes nothing on the server, and
# unlike a POST to remoteEvents it creates no event in the deployment.
VERSION_ROUTE: Final = "version/"
# The `Server` header of the local receiver (mlops_guard_events._receiver).
RECEIVER_SERVER_HEADER: Final = "mlops-guard-events-receiver"


@dataclasses.dataclass(frozen=True)
class _Check:
    """The outcome of one doctor check: whether it passed, and lines that explain it."""

    name: str
    passed: bool
    lines: tuple[str, ...]


def _run_doctor(args: argparse.Namespace) -> int:
    from ._config import current_settings

    _print(f"{PROG} {__version__} on Python {sys.version.split()[0]}")
    _print()
    try:
        settings = current_settings()
    except ConfigurationError as error:
        _print_configuration_inputs()
        raise CommandError(f"invalid configuration: {error}") from None

    _print("Configuration (the first source that sets a value wins: configure(), environment,")
    _print("config file, default)")
    for line in format_table(("setting", "value", "source"), _settings_rows(settings)):
        _print(f"  {line}")

    checks = [_check_endpoint(settings), _check_spool(settings), _check_event_log(settings)]
    for check in checks:
        _print()
        _print(f"{check.name}: {'ok' if check.passed else 'FAILED'}")
        for line in check.lines:
            _print(f"  {line}")

    failed = [check.name for check in checks if not check.passed]
    _print()
    if failed:
        _print(f"{_quantity(len(failed), 'check')} failed: {', '.join(failed)}")
        return EXIT_FAILED
    _print("all checks passed")
    return EXIT_OK


def _print_configuration_inputs() -> None:
    """Print the environment variables and the config file that settings are read from."""
    from . import _config

    _print("Configuration inputs (the settings built from them are invalid; see the error)")
    rows = []
    for variable in (
        _config.ENV_ENDPOINT,
        _config.ENV_API_TOKEN,
        _config.ENV_DEPLOYMENT_ID,
        _config.ENV_SSL_VERIFY,
        _config.ENV_MAX_RETRIES,
        _config.ENV_STATE_DIR,
        _config.ENV_CONFIG_FILE,
    ):
        value = os.environ.get(variable)
        if value is None:
            shown = "not set"
        elif variable == _config.ENV_API_TOKEN:
            shown = "*** (set, masked)"
        else:
            shown = repr(value)
        rows.append((variable, shown))
    for line in format_table(("environment variable", "value"), rows):
        _print(f"  {line}")

    named = os.environ.get(_config.ENV_CONFIG_FILE)
    config_file = Path(named or _config.DEFAULT_CONFIG_FILE).expanduser()
    state = "exists" if config_file.exists() else "does not exist"
    _print(f"  config file: {config_file} ({state})")


def _settings_rows(settings: Settings) -> list[tuple[str, str, str]]:
    rows = []
    for field in dataclasses.fields(settings):
        if field.name == "sources":
            continue
        value = getattr(settings, field.name)
        if field.name == "api_token":
            shown = "not set" if value is None else "*** (set, masked)"
        elif value is None:
            shown = "not set"
        else:
            shown = str(value)
        source = settings.sources.get(field.name, "default")
        if field.name == "event_log_path" and source == "default":
            source = "default: <state_dir>/events.jsonl"
        rows.append((field.name, shown, source))
    return rows


def _check_endpoint(settings: Settings) -> _Check:
    if settings.endpoint is None:
        return _Check(
            "Endpoint",
            True,
            (
                "no endpoint is configured, so there is nothing to check: events go to the"
                " local event log (the embedded default)",
                "to send them to DataRobot, set DATAROBOT_ENDPOINT and DATAROBOT_API_TOKEN",
            ),
        )

    url = settings.endpoint.rstrip("/") + "/" + VERSION_ROUTE
    started = time.monotonic()
    try:
        response = _get_version(url, settings)
    except Exception as error:
        failure = [_scrub_token(line, settings) for line in _describe_request_failure(error)]
        return _Check("Endpoint", False, (f"GET {url}", *failure))
    elapsed = time.monotonic() - started
    lines = [f"GET {url} -> HTTP {response.status_code} in {elapsed:.2f} s"]
    passed, verdict = _judge_version_response(response, settings)
    lines.append(_scrub_token(verdict, settings))
    return _Check("Endpoint", passed, tuple(lines))


def _get_version(url: str, settings: Settings) -> requests.Response:
    import requests

    headers = {
        "Accept": "application/json",
        "User-Agent": f"mlops-guard-events/{__version__} (doctor)",
    }
    authorization = settings.authorization()
    if authorization is not None:
        headers["Authorization"] = authorization
    verify = (
        str(Path(settings.ssl_verify).expanduser())
        if isinstance(settings.ssl_verify, str)
        else settings.ssl_verify
    )
    # Redirects are not followed, so the response shows the user which URL to configure.
    return requests.get(
        url,
        headers=headers,
        timeout=(settings.connect_timeout, settings.read_timeout),
        verify=verify,
        allow_redirects=False,
    )


def _describe_request_failure(error: Exception) -> tuple[str, ...]:
    import requests

    text = f"{type(error).__name__}: {error}"
    if isinstance(error, requests.exceptions.SSLError):
        advice = (
            "TLS verification failed: set DATAROBOT_SSL_VERIFY (or ssl_verify in the config"
            " file) to the path of your CA bundle"
        )
    elif isinstance(error, requests.exceptions.Timeout):
        advice = (
            "the request timed out: check that the endpoint is reachable from this machine,"
            " or raise connect_timeout and read_timeout"
        )
    elif isinstance(error, requests.exceptions.ConnectionError):
        advice = (
            "cannot connect: check the endpoint's host and port, and that a proxy or firewall"
            " lets this machine reach it"
        )
    elif isinstance(error, requests.exceptions.RequestException):
        advice = "the request failed: check the endpoint URL"
    else:
        raise error
    return (f"failed: {_shorten(text, 300)}", advice)


def _judge_version_response(response: requests.Response, settings: Settings) -> tuple[bool, str]:
    status = response.status_code
    local_receiver = response.headers.get("Server") == RECEIVER_SERVER_HEADER
    if local_receiver and status in (401, 404):
        return False, _judge_receiver_error(status, settings)
    if 200 <= status < 300:
        version = _version_string(response)
        if local_receiver:
            version_text = f" {version}" if version is not None else ""
            return True, (
                f"the endpoint is a local `{PROG} receiver`{version_text}, which accepts events"
            )
        if version is None:
            return True, "the endpoint responds (the response has no DataRobot version)"
        return True, f"the endpoint responds: DataRobot {version}"
    if 300 <= status < 400:
        location = response.headers.get("Location", "another URL")
        return False, f"the endpoint redirects to {location}; configure that URL as the endpoint"
    if status in (401, 403):
        if settings.api_token is None:
            return False, "the endpoint requires an API token: set DATAROBOT_API_TOKEN"
        return False, (
            "the endpoint rejected the API token: check DATAROBOT_API_TOKEN (or token in the"
            " config file) and token_type"
        )
    if status == 404:
        return False, (
            "no DataRobot API responds at this URL: the endpoint is the API base URL, such as"
            " https://app.datarobot.com/api/v2"
        )
    return False, f"the endpoint responded with an error: {_shorten(response.text.strip(), 200)}"


def _judge_receiver_error(status: int, settings: Settings) -> str:
    """Explain a 401 or 404 from a local `receiver`, which serves the version route itself."""
    if status == 404:
        return (
            f"the local `{PROG} receiver` has no API at this URL: set DATAROBOT_ENDPOINT to the"
            " endpoint its first line prints, which ends in /api/v2"
        )
    if settings.api_token is None:
        return (
            f"the local `{PROG} receiver` requires an API token: set DATAROBOT_API_TOKEN to the"
            " token it was started with (its --token or --token-file)"
        )
    return (
        f"the local `{PROG} receiver` rejected the API token: set DATAROBOT_API_TOKEN to the"
        " token it was started with (its --token or --token-file)"
    )


def _version_string(response: requests.Response) -> str | None:
    try:
        document = response.json()
    except ValueError:
        return None
    version = document.get("versionString") if isinstance(document, dict) else None
    return version if isinstance(version, str) else None


def _scrub_token(text: str, settings: Settings) -> str:
    # The token is sent stripped, as a token file's newline is, so a server quotes it that way.
    token = settings.api_token.strip() if settings.api_token else None
    if token:
        text = text.replace(token, "***")
    return text


def _check_spool(settings: Settings) -> _Check:
    try:
        summary = _spool_summary(settings)
    except CommandError as error:
        return _Check("Spool", False, (str(error),))
    lines = _describe_spool(summary)
    if summary.events:
        lines.append(f"run `{PROG} spool replay` to send them now")
    return _Check("Spool", True, tuple(lines))


def _check_event_log(settings: Settings) -> _Check:
    from ._transport import EventLog
    from .exceptions import SpoolError

    path = settings.event_log_path
    assert path is not None  # Settings fills it from state_dir
    if not path.exists() and not path.is_symlink():
        return _Check("Event log", True, (f"{path}: no events yet (the file does not exist)",))
    log = EventLog(path)
    try:
        count = 0
        newest: Mapping[str, Any] | None = None
        for body in log.read():
            count += 1
            newest = body
    except SpoolError as error:
        return _Check("Event log", False, (str(error),))
    lines = [f"{path}: {_quantity(count, 'event')}, {_format_size(path.stat().st_size)}"]
    if newest is not None:
        lines.append(f"newest: {describe_event(newest)}")
    if log.corrupt_lines:
        verb = "was" if log.corrupt_lines == 1 else "were"
        lines.append(f"{_quantity(log.corrupt_lines, 'corrupt line')} {verb} skipped")
    if settings.endpoint is not None and count:
        lines.append(
            "an endpoint is configured now, so new events go there; these were logged earlier"
        )
    return _Check("Event log", True, tuple(lines))


def _format_size(size: int) -> str:
    if size < 1024:
        return _quantity(size, "byte")
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


# events

FOLLOW_POLL_SECONDS: Final = 0.2


def _run_events(args: argparse.Namespace) -> int:
    from ._config import current_settings

    if args.timeout is not None and not args.follow:
        raise CommandError("--timeout applies only with --follow", EXIT_USAGE)
    path = args.path if args.path is not None else current_settings().event_log_path
    assert isinstance(path, Path)  # Settings fills event_log_path from state_dir
    printer = _EventPrinter(show_json=args.json, max_events=args.max_events)

    if not args.follow:
        _print_existing_events(path, printer, last=args.last, follow=False)
        return EXIT_OK
    with _stop_on_signals() as stop:
        offset = _print_existing_events(path, printer, last=args.last, follow=True)
        if not printer.done:
            _follow_event_log(path, offset, printer, stop=stop, timeout_seconds=args.timeout)
    return EXIT_OK


class _EventPrinter:
    """The output of `events`: one event body a line, counted against `max_events`."""

    def __init__(self, *, show_json: bool, max_events: int | None) -> None:
        self._show_json = show_json
        self._max_events = max_events
        self.printed = 0

    @property
    def done(self) -> bool:
        """Whether `max_events` events have been printed."""
        return self._max_events is not None and self.printed >= self._max_events

    def show(self, body: Mapping[str, Any]) -> None:
        """Print `body` unless `max_events` events have been printed already."""
        if self.done:
            return
        text = json.dumps(body, ensure_ascii=False) if self._show_json else describe_event(body)
        _print(text)
        self.printed += 1


def _print_existing_events(
    path: Path, printer: _EventPrinter, *, last: int | None, follow: bool
) -> int:
    """Print the events already in the log and return the byte offset where they end."""
    lines, offset = _read_complete_lines(path, 0)
    if lines is None and not follow:
        _print(f"no event log at {path} yet: no event has been logged", stream=sys.stderr)
        return 0
    bodies = [body for body in map(_decode_event_line, lines or []) if body is not None]
    if last is not None:
        bodies = bodies[len(bodies) - last :] if last else []
    for body in bodies:
        printer.show(body)
    return offset


def _read_complete_lines(path: Path, offset: int) -> tuple[list[bytes] | None, int]:
    """Read the whole lines after byte `offset` and return them with the new offset.

    A last line without its newline is left for the next read, because a writer may be in
    the middle of appending it. Returns None for the lines when the file does not exist.

    Raises:
        CommandError: The file exists but cannot be read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        return None, offset
    except OSError as error:
        raise CommandError(
            f"cannot read the event log {str(path)!r}: {error.strerror or error}; it must be a"
            " readable regular file, not a symbolic link"
        ) from None
    with os.fdopen(descriptor, "rb") as file:
        if os.fstat(file.fileno()).st_size < offset:
            offset = 0  # The file was truncated or replaced; read it again from the start.
        file.seek(offset)
        data = file.read()
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), offset + end


def _decode_event_line(raw: bytes) -> dict[str, Any] | None:
    """Return the event body on one line of the log, or None for a blank or corrupt line."""
    if not raw.strip():
        return None
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        return body
    global _skipped_lines
    _skipped_lines += 1
    if _skipped_lines == 1:
        logger.warning(
            "skipped a line of the event log that is not a JSON object, probably cut off by a"
            " crash; later ones are skipped without a warning"
        )
    return None


# Lines of the event log that `_decode_event_line` skipped in this process.
_skipped_lines = 0


def _follow_event_log(
    path: Path,
    offset: int,
    printer: _EventPrinter,
    *,
    stop: threading.Event,
    timeout_seconds: float | None,
) -> None:
    """Print events appended to the log until `stop` is set, `max_events` or the timeout."""
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while not stop.wait(FOLLOW_POLL_SECONDS):
        lines, offset = _read_complete_lines(path, offset)
        for body in map(_decode_event_line, lines or []):
            if body is not None:
                printer.show(body)
        if printer.done or (deadline is not None and time.monotonic() >= deadline):
            return
