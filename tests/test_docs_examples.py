"""Run every Python and console example of the README and the documentation, so none goes stale.

How a page is run:

- Every fenced block whose language is `python` or `py` runs, in page order, in one fresh
  Python process per page. Blocks of a page share one namespace, whose `__name__` is
  `"__main__"`, so a block can use what an earlier block of the same page defined. Blocks of
  other languages (`text`, `yaml`, ...) are not run, except the console blocks below.
- A block with a `title="NAME.py"` attribute, which the site shows as a file name, is written
  to NAME.py in the page's working directory, where later blocks can import it. A file named
  `test_*.py` is then run with pytest in a process of its own, as a reader would run it. Any
  other file is run once as a script, with `__name__` set to `"__main__"`.
- Hidden code runs where it appears: an HTML comment whose first line is `<!-- example-setup`
  and whose last line is `-->`. The site and GitHub do not show it. Use it for names that an
  example takes from the reader's own code (`toxicity_model`), to start a local receiver, and
  to check what an example did. Hidden code may set `EXAMPLE_REPLACE = {"old": "new"}`: the
  next visible block then runs with each `old` replaced by `new`, such as a documented
  endpoint replaced by the endpoint of a receiver that the hidden code started. Neither text
  may contain a line break.

How a console block (`console`, `bash`, `shell` or `sh`) is run, in page order with the rest:

- A line starting with `$ ` is a command, and the lines after it up to the next `$ ` are its
  output. In a block without `$ `, each line that is neither blank nor a `#` comment is a
  command without output. A line ending in a backslash continues on the next line, and a
  `# comment` ends the command, as in a POSIX shell. There is no variable expansion, and shell
  operators such as `|`, `>` and `&&` are rejected.
- Every command must match exactly one rule of `classify_command`, or the page fails, and so
  does `test_console_commands_classified`. A new kind of command therefore needs a rule.
- Commands that are run: `mlops-guard-events ...`, `python -m mlops_guard_events ...`,
  `python NAME.py` and `python -m benchmarks ...`. `mlops-guard-events` is the console script
  next to the test's Python interpreter, else on `PATH`, and `python` is that interpreter.
  `NAME.py` is a file that a titled block of the page wrote. `python -m benchmarks` gets
  `--quick` appended unless the command has it, and the repository on `PYTHONPATH`.
  `export NAME=VALUE` sets the variable for the later commands of the page. A command runs in
  the page's working directory and environment, with warnings turned into errors, and must
  finish within 90 s.
- Commands that are not run, because another check runs them: `make demo` (tests/test_demo.py
  runs `python -m mlops_guard_events demo`), `make test` and `make docs` (.ci/run),
  `make bench` (tests/test_benchmarks_smoke.py runs `python -m benchmarks --quick`),
  `pip install` (`make test` installs the clone with pip) and `git clone` (.ci/run runs on a
  clean clone).
- A command exits with status 0, unless its comment ends with `exit status N`, such as
  `$ mlops-guard-events report --event-type nope  # exit status 2`.
- Every output line shown, other than blank lines and `...`, must match a whole line of the
  command's stdout and stderr, in the order shown. Other lines may come between them, so a
  `...` line only shows the reader that lines are left out. Inside a line, `...` matches any
  text, such as a temporary path, an ISO 8601 time matches any time, and a port of 127.0.0.1
  matches any port.
- `mlops-guard-events receiver` and `mlops-guard-events events --follow`, which run until
  stopped, get up to 15 s to print their first line, which must match the first line shown.
  With no output shown, they get 2 s. Then they receive SIGINT and must exit with status 0
  within 10 s.
- Hidden code before a console block can prepare it: write a file that a command reads, or
  start a `RemoteEventsReceiver` and point the commands at it with `EXAMPLE_REPLACE`, which
  rewrites the commands and the output shown alike.

The environment of a page: no `DATAROBOT_*`, `MLOPS_*`, `PYTEST_*` or proxy variables, `HOME`
and `MLOPS_GUARD_EVENTS_STATE_DIR` in a new temporary directory, its `work` subdirectory as
the working directory, and warnings turned into errors. With no endpoint configured, events go
to the local event log there.

No example may reach a host other than the local one. A `sitecustomize` module, on the
`PYTHONPATH` of the page's process and of every Python process it starts, makes lookups of
other host names, and connections and datagrams to addresses that are not loopback, raise
`PermissionError`, and records each attempt. A page fails when it made any, even when the
example caught the error. So an example that shows a real DataRobot endpoint needs hidden code
that points it at a local receiver (with `EXAMPLE_REPLACE`) or captures its events.

A failure names the page and the line where the failing block starts, or, in a console
block, the line of the failing command. Tracebacks of visible and hidden code give the page's
own line numbers.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

# Generous, because a page may start a receiver, run pytest and wait for delivery. A page
# takes one to three seconds on an idle machine with two cores.
PAGE_TIMEOUT_SECONDS = 120.0

FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>.*)$")
RUNNABLE_LANGUAGES = frozenset({"python", "py"})
CONSOLE_LANGUAGES = frozenset({"console", "bash", "shell", "sh"})
TITLE_ATTRIBUTE = re.compile(r"""\btitle=(?:"(?P<double>[^"]*)"|'(?P<single>[^']*)')""")
FILE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*\.py$")
HIDDEN_START = "<!-- example-setup"
HIDDEN_END = "-->"

FAILURE_MARKER = "DOCS EXAMPLE FAILED AT "
REMOVED_VARIABLE_PREFIXES = ("DATAROBOT_", "MLOPS_", "PYTEST_")
PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})


# Collecting the blocks of a page


@dataclasses.dataclass(frozen=True)
class Block:
    """One piece of code of a page, in the order the page's process runs it.

    Attributes:
        page: The page's path relative to the repository, such as `docs/decorators.md`.
        line: The page's 1-based line number of the code's first line.
        source: The code, without the indentation of its fence.
        hidden: Whether the code comes from an `example-setup` comment.
        file_name: The `title` of a block that is written to a file, or None.
        console: Whether the block is a shell transcript whose commands are run, not Python.
    """

    page: str
    line: int
    source: str
    hidden: bool = False
    file_name: str | None = None
    console: bool = False


class PageFormatError(ValueError):
    """A page's examples cannot be collected, such as a fence that is never closed."""


def collect_blocks(text: str, page: str) -> list[Block]:
    """Collect the runnable blocks and the hidden code of one Markdown page, in page order.

    Args:
        text: The page's Markdown.
        page: The page's name for messages and tracebacks.

    Returns:
        The blocks to run.

    Raises:
        PageFormatError: A fence or an `example-setup` comment is not closed, or a `title` is
            not a plain `.py` file name.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if lines[index].strip().startswith(HIDDEN_START):
            hidden, index = _read_hidden(lines, index, page)
            blocks.append(hidden)
            continue

        opening = FENCE_OPEN.match(lines[index])
        if opening is None:
            index += 1
            continue
        block, index = _read_fence(lines, index, opening, page)
        if block is not None:
            blocks.append(block)
    return blocks


def _read_hidden(lines: list[str], start: int, page: str) -> tuple[Block, int]:
    """Read the comment opening at index `start`; return it and the index after it."""
    if lines[start].strip() != HIDDEN_START:
        raise PageFormatError(
            f"{page}:{start + 1}: put the code of {HIDDEN_START} on the lines after it"
        )
    for end in range(start + 1, len(lines)):
        if lines[end].strip() == HIDDEN_END:
            source = textwrap.dedent("\n".join(lines[start + 1 : end]))
            return Block(page, start + 2, source + "\n", hidden=True), end + 1
    raise PageFormatError(
        f"{page}:{start + 1}: {HIDDEN_START} is not closed: end it with a line that contains"
        f" only {HIDDEN_END}"
    )


def _read_fence(
    lines: list[str], start: int, opening: re.Match[str], page: str
) -> tuple[Block | None, int]:
    """Read the fence opening at `start`; return its block (None unless runnable) and next index."""
    fence = opening["fence"]
    closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
    end = next((i for i in range(start + 1, len(lines)) if closing.match(lines[i])), None)
    if end is None:
        raise PageFormatError(
            f"{page}:{start + 1}: the code fence {fence} opened here is not closed"
        )

    info = opening["info"].strip()
    language = info.split(maxsplit=1)[0].strip("{}.") if info else ""
    if language not in RUNNABLE_LANGUAGES | CONSOLE_LANGUAGES:
        return None, end + 1

    indent = opening["indent"]
    body = [_strip_indent(line, indent) for line in lines[start + 1 : end]]
    source = "\n".join(body) + "\n"
    if language in CONSOLE_LANGUAGES:
        try:
            parse_console(source)
        except ValueError as error:
            raise PageFormatError(f"{page}:{start + 1}: {error}") from None
        return Block(page, start + 2, source, console=True), end + 1
    return Block(page, start + 2, source, file_name=_file_name(info, page, start)), end + 1


def _strip_indent(line: str, indent: str) -> str:
    return line[len(indent) :] if line.startswith(indent) else line.lstrip(" \t")


def _file_name(info: str, page: str, start: int) -> str | None:
    match = TITLE_ATTRIBUTE.search(info)
    if match is None:
        return None
    name = match["double"] if match["double"] is not None else match["single"]
    if not FILE_NAME.match(name):
        raise PageFormatError(
            f"{page}:{start + 1}: invalid title {name!r}: a runnable block's title is the name"
            ' of the .py file it is written to, such as title="custom.py"'
        )
    return name


def documentation_pages() -> list[Path]:
    """Return the README and every Markdown page under docs/, sorted."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


# Code that runs in a page's processes. Each function is copied into a file there by its
# source, so it may use only the standard library, imported inside it, and the functions
# listed beside it.


def is_local_host(host: object) -> bool:
    """Return whether `host`, a name or an address, is this machine's loopback."""
    import ipaddress

    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    name = str(host).strip("[]").split("%", 1)[0].lower()
    if name in ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


def is_ip_address(host: object) -> bool:
    """Return whether `host` is an IP address, which needs no lookup."""
    import ipaddress

    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def install_network_guard() -> None:
    """Make lookups of other hosts and connections to non-loopback addresses raise.

    Each attempt is appended to the file named by `DOCS_EXAMPLES_BLOCKED_LOG`.
    """
    import os
    import socket

    blocked_log = os.environ.get("DOCS_EXAMPLES_BLOCKED_LOG")

    def reject(action: str, host: object, port: object) -> None:
        attempt = f"{action} {host!r} port {port!r}"
        if blocked_log:
            with open(blocked_log, "a", encoding="utf-8") as log:
                log.write(attempt + "\n")
        raise PermissionError(
            f"blocked by the documentation example runner: {attempt}. Examples may reach only"
            " 127.0.0.1, ::1 or localhost; point the example at a local receiver in hidden code"
        )

    def check_address(sock: socket.socket, address: object, action: str) -> None:
        internet = sock.family in (socket.AF_INET, socket.AF_INET6)
        if internet and isinstance(address, tuple) and not is_local_host(address[0]):
            reject(action, address[0], address[1])

    def check_name(host: object, port: object) -> None:
        if not (is_local_host(host) or is_ip_address(host)):
            reject("look up", host, port)

    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto
    original_getaddrinfo = socket.getaddrinfo
    original_gethostbyname = socket.gethostbyname
    original_gethostbyname_ex = socket.gethostbyname_ex

    def connect(self: socket.socket, address: Any) -> None:
        check_address(self, address, "connect to")
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check_address(self, address, "connect to")
        return original_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *flags_and_address: Any) -> int:
        check_address(self, flags_and_address[-1], "send a datagram to")
        return original_sendto(self, data, *flags_and_address)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        check_name(host, port)
        return original_getaddrinfo(host, port, *args, **kwargs)

    def gethostbyname(host: str) -> str:
        check_name(host, None)
        return original_gethostbyname(host)

    def gethostbyname_ex(host: str) -> Any:
        check_name(host, None)
        return original_gethostbyname_ex(host)

    methods: dict[str, object] = {"connect": connect, "connect_ex": connect_ex, "sendto": sendto}
    functions: dict[str, object] = {
        "getaddrinfo": getaddrinfo,
        "gethostbyname": gethostbyname,
        "gethostbyname_ex": gethostbyname_ex,
        "docs_examples_guard": True,
    }
    for name, replacement in methods.items():
        setattr(socket.socket, name, replacement)
    for name, replacement in functions.items():
        setattr(socket, name, replacement)


def parse_console(source: str) -> list[dict[str, Any]]:
    """Split a console block into its commands, each with the output the page shows for it.

    Returns one dictionary per command: `offset`, the 0-based line of the command in the block,
    `text`, `argv`, as a POSIX shell splits it without its comment, `expected`, the output lines,
    and `exit_status`.

    Raises:
        ValueError: A line that a command is split over cannot be parsed, or a block with `$ `
            prompts has output before its first command.
    """
    import re
    import shlex

    lines = source.splitlines()
    prompted = any(line.startswith("$ ") for line in lines)
    commands: list[dict[str, Any]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if prompted:
            is_command = line.startswith("$ ")
        else:
            is_command = bool(line.strip()) and not line.lstrip().startswith("#")
        if not is_command:
            if prompted and commands:
                commands[-1]["expected"].append(line)
            elif prompted and line.strip():
                raise ValueError(f"output line {line!r} comes before the block's first $ command")
            index += 1
            continue

        offset = index
        text = line[2:] if prompted else line
        while text.endswith("\\") and index + 1 < len(lines):
            index += 1
            text = text[:-1].rstrip() + " " + lines[index].strip()
        index += 1
        try:
            argv = shlex.split(text, comments=True)
        except ValueError as error:
            raise ValueError(f"invalid command {text.strip()!r}: {error}") from None
        status = re.search(r"#[^'\"]*\bexit status (\d+)\s*$", text)
        commands.append(
            {
                "offset": offset,
                "text": text.strip(),
                "argv": argv,
                "expected": [],
                "exit_status": int(status[1]) if status else 0,
            }
        )
    return commands


def classify_command(argv: list[str]) -> tuple[str, str]:
    """Return how the runner treats a console command, as a class and a detail.

    The class is "run", with the detail "export", "cli", "until-stopped", "benchmarks" or
    "script", or "covered", with the detail naming what runs the command instead, or
    "unclassified", with the reason, for a command that matches no rule or more than one.
    """
    import re

    python = r"python3?"
    rules: list[tuple[list[str], str, str]] = [
        (["export"], "run", "export"),
        (["mlops-guard-events"], "run", "cli"),
        ([python, "-m", "mlops_guard_events"], "run", "cli"),
        ([python, "-m", "benchmarks"], "run", "benchmarks"),
        ([python, r"[A-Za-z_][A-Za-z0-9_.-]*\.py"], "run", "script"),
        (["make", "demo"], "covered", "tests/test_demo.py runs python -m mlops_guard_events demo"),
        (["make", "test"], "covered", ".ci/run runs make test"),
        (["make", "docs"], "covered", ".ci/run runs make docs"),
        (
            ["make", "bench"],
            "covered",
            "tests/test_benchmarks_smoke.py runs python -m benchmarks --quick",
        ),
        # NOTE: no test installs the package from a package index, only from the clone.
        (["pip", "install"], "covered", "make test in .ci/run installs the clone with pip"),
        (["git", "clone"], "covered", ".ci/run runs on a clean clone"),
    ]
    matches = [
        (kind, detail)
        for prefix, kind, detail in rules
        if len(argv) >= len(prefix) and all(map(re.fullmatch, prefix, argv[: len(prefix)]))
    ]
    if len(matches) != 1:
        return "unclassified", f"it matches {len(matches)} of the runner's rules, not 1"
    kind, detail = matches[0]
    if kind == "run" and {"|", "||", "&&", ";", ">", ">>", "<", "&"} & set(argv):
        return "unclassified", "the runner does not support shell operators"
    if detail == "cli":
        words = argv[1:] if argv[0] == "mlops-guard-events" else argv[3:]
        names = [word for word in words if not word.startswith("-")]
        subcommand = names[0] if names else ""
        if subcommand == "receiver" or (subcommand == "events" and {"-f", "--follow"} & set(argv)):
            return "run", "until-stopped"
    return kind, detail


def output_line_pattern(expected: str) -> str:
    """Return a regular expression for one shown output line.

    `...` matches any text, an ISO 8601 time any time, and a port of 127.0.0.1 any port.
    """
    import re

    timestamp = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2}|Z)?"
    loopback = r"127\.0\.0\.1:\d+"
    pieces = re.split(rf"({timestamp}|\.\.\.|{loopback})", expected.rstrip())
    pattern = []
    for piece in pieces:
        if piece == "...":
            pattern.append(".*")
        elif re.fullmatch(timestamp, piece):
            pattern.append(timestamp)
        elif re.fullmatch(loopback, piece):
            pattern.append(loopback)
        else:
            pattern.append(re.escape(piece))
    return "".join(pattern)


def find_missing_output(expected: list[str], output: str) -> str | None:
    """Return the first shown line that the output lacks, in order, or None when it has all."""
    import re

    actual = [line.rstrip() for line in output.splitlines()]
    position = 0
    for line in expected:
        if not line.strip() or line.strip() == "...":
            continue
        pattern = output_line_pattern(line)
        found = next(
            (i for i in range(position, len(actual)) if re.fullmatch(pattern, actual[i])), None
        )
        if found is None:
            return line
        position = found + 1
    return None


def run_until_stopped(
    argv: list[str], environment: dict[str, str], wait_seconds: float, stop_timeout_seconds: float
) -> tuple[int | None, int | None, str]:
    """Start a command, wait for its first output line or `wait_seconds`, then send SIGINT.

    Returns the exit status if the command exited before SIGINT (else None), the exit status
    after SIGINT (None when it did not stop within `stop_timeout_seconds` and was killed), and
    its output.
    """
    import signal
    import subprocess
    import threading

    printed: list[str] = []
    first_line = threading.Event()

    def read_output(stream: Any) -> None:
        for text in stream:
            printed.append(text)
            first_line.set()
        first_line.set()

    with subprocess.Popen(
        argv, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        reader = threading.Thread(target=read_output, args=(process.stdout,), daemon=True)
        reader.start()
        first_line.wait(wait_seconds)
        exited_early = process.poll()
        process.send_signal(signal.SIGINT)
        try:
            status: int | None = process.wait(timeout=stop_timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            status = None
        reader.join(timeout=stop_timeout_seconds)
    return exited_early, status, "".join(printed)


def run_console_block(
    block: dict[str, Any], source: str, exports: dict[str, str], repository: str
) -> tuple[int, str] | None:
    """Run the commands of a console block in the working directory, in order.

    `exports` contains the variables that the page's `export` commands set so far, and this adds
    to it. Returns the page's line of the first command that failed and why, or None.
    """
    import os
    import shutil
    import subprocess
    import sys

    command_timeout_seconds = 90.0
    start_timeout_seconds = 15.0
    quiet_seconds = 2.0
    stop_timeout_seconds = 10.0

    for command in parse_console(source):
        line = block["line"] + command["offset"]
        kind, detail = classify_command(command["argv"])
        if kind == "covered":
            continue
        if kind != "run":
            return line, f"unclassified command {command['text']!r}: {detail}"

        argv = list(command["argv"])
        if detail == "export":
            for assignment in argv[1:]:
                name, equals, value = assignment.partition("=")
                if not equals:
                    return line, f"export needs NAME=VALUE, not {assignment!r}"
                exports[name] = value
            continue

        # As the page's own process, the command turns warnings into errors.
        environment = {**os.environ, **exports, "PYTHONWARNINGS": "error"}
        if argv[0] == "mlops-guard-events":
            search_path = os.path.dirname(sys.executable) + os.pathsep + environment["PATH"]
            program = shutil.which(argv[0], path=search_path)
            if program is None:
                return line, f"{argv[0]} is not installed next to {sys.executable}"
            argv[0] = program
        else:
            argv[0] = sys.executable
        if detail == "benchmarks":
            environment["PYTHONPATH"] += os.pathsep + repository
            if "--quick" not in argv:
                argv.append("--quick")

        command_line = f"$ {command['text']}"
        if detail != "until-stopped":
            try:
                completed = subprocess.run(
                    argv,
                    env=environment,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=command_timeout_seconds,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return line, f"{command_line} did not finish within {command_timeout_seconds:g} s"
            output = completed.stdout
            if completed.returncode != command["exit_status"]:
                return line, (
                    f"{command_line} exited with status {completed.returncode}, expected"
                    f" {command['exit_status']}; output:\n{output}"
                )
            missing = find_missing_output(command["expected"], output)
            if missing is not None:
                return line, f"{command_line} did not print {missing!r}; output:\n{output}"
            continue

        # A command that runs until stopped: wait for its first line, then press Ctrl-C.
        shown_lines = [text for text in command["expected"] if text.strip() not in ("", "...")]
        wait_seconds = start_timeout_seconds if shown_lines else quiet_seconds
        exited_early, status, output = run_until_stopped(
            argv, environment, wait_seconds, stop_timeout_seconds
        )
        if status is None:
            return line, f"{command_line} did not stop within {stop_timeout_seconds:g} s of SIGINT"
        if exited_early is not None:
            return (
                line,
                f"{command_line} exited with status {exited_early} by itself; output:\n{output}",
            )
        if status != command["exit_status"]:
            return line, (
                f"{command_line} exited with status {status} after SIGINT, expected"
                f" {command['exit_status']}; output:\n{output}"
            )
        if shown_lines and find_missing_output(shown_lines[:1], output.split("\n", 1)[0]):
            return line, (
                f"{command_line} printed first {output.splitlines()[:1]}, expected"
                f" {shown_lines[0]!r}; output:\n{output}"
            )
    return None


def run_blocks(listing: str) -> None:
    """Run the blocks of the page listed as JSON in the file `listing`; exit 1 at the first failure.

    The listing is an object with the page's `blocks` and the `repository` directory.
    """
    import json
    import runpy
    import subprocess
    import sys
    import traceback
    from pathlib import Path

    failure_marker = "DOCS EXAMPLE FAILED AT "
    pytest_timeout_seconds = 90

    def fail(block: dict[str, Any], detail: str, line: int | None = None) -> None:
        kind = "block"
        if block["hidden"]:
            kind = "hidden setup"
        elif block["console"]:
            kind = "console"
        where = f"{block['page']}:{line or block['line']} ({kind})"
        sys.stderr.write(f"\n{failure_marker}{where}: {detail}\n")
        sys.stderr.flush()
        sys.exit(1)

    def run(block: dict[str, Any], source: str, namespace: dict[str, Any]) -> None:
        if block["file_name"] is None:
            # Blank lines in front give tracebacks the page's own line numbers.
            padded = "\n" * (block["line"] - 1) + source
            exec(compile(padded, block["page"], "exec"), namespace)
            return

        path = Path.cwd() / block["file_name"]
        path.write_text(source, encoding="utf-8")
        if not path.name.startswith("test_"):
            runpy.run_path(str(path), run_name="__main__")
            return
        command = [sys.executable, "-m", "pytest", path.name, "-q", "-p", "no:cacheprovider"]
        command += ["--strict-markers", "-W", "error"]
        status = subprocess.run(command, check=False, timeout=pytest_timeout_seconds).returncode
        if status != 0:
            raise AssertionError(f"pytest exited with status {status} for {path.name}")

    page = json.loads(Path(listing).read_text(encoding="utf-8"))
    sys.path.insert(0, str(Path.cwd()))
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    replacements: dict[str, str] = {}
    exports: dict[str, str] = {}
    for block in page["blocks"]:
        source = block["source"]
        if not block["hidden"]:
            for old, new in replacements.items():
                if old not in source:
                    fail(block, f"EXAMPLE_REPLACE names {old!r}, which the block does not contain")
                source = source.replace(old, new)
            replacements = {}

        if block["console"]:
            failure = run_console_block(block, source, exports, page["repository"])
            if failure is not None:
                fail(block, failure[1], line=failure[0])
            continue

        try:
            run(block, source, namespace)
        except SystemExit as error:
            if error.code not in (None, 0):
                traceback.print_exc()
                fail(block, f"SystemExit({error.code!r})")
        except BaseException as error:
            traceback.print_exc()
            fail(block, f"{type(error).__name__}: {error}")

        if block["hidden"]:
            for old, new in dict(namespace.pop("EXAMPLE_REPLACE", {})).items():
                if "\n" in f"{old}{new}":
                    fail(block, "EXAMPLE_REPLACE texts must not contain a line break")
                replacements[str(old)] = str(new)


def program_source(functions: list[Callable[..., Any]], call: str) -> str:
    """Return a program made of the sources of `functions`, followed by the statement `call`."""
    parts = ["from __future__ import annotations", "from typing import Any"]
    parts += [inspect.getsource(function) for function in functions]
    return "\n\n".join([*parts, call]) + "\n"


# Running a page


@dataclasses.dataclass(frozen=True)
class PageRun:
    """The outcome of running one page's blocks in their own process."""

    returncode: int
    stdout: str
    stderr: str
    blocked: list[str]


def page_environment(root: Path) -> dict[str, str]:
    """Return the environment of a page's process, isolated in the directory `root`."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(REMOVED_VARIABLE_PREFIXES) and name.lower() not in PROXY_VARIABLES
    }
    for name in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "PYTHONSTARTUP", "PYTHONHOME"):
        environment.pop(name, None)
    environment.update(
        {
            "HOME": str(root / "home"),
            "MLOPS_GUARD_EVENTS_STATE_DIR": str(root / "state"),
            "PYTHONPATH": str(root / "guard"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "DOCS_EXAMPLES_BLOCKED_LOG": str(root / "blocked.log"),
        }
    )
    return environment


def run_page(blocks: list[Block], root: Path) -> PageRun:
    """Run `blocks` in a new Python process, isolated in the empty directory `root`.

    Args:
        blocks: The blocks of one page, in order.
        root: An empty directory for the process's home, state, working directory and files.

    Returns:
        The exit status, the output and the blocked network attempts.
    """
    for name in ("home", "state", "guard", "work"):
        (root / name).mkdir()
    guard = program_source(
        [is_local_host, is_ip_address, install_network_guard], "install_network_guard()"
    )
    (root / "guard" / "sitecustomize.py").write_text(guard, encoding="utf-8")
    driver = root / "run_blocks.py"
    driver_functions: list[Callable[..., Any]] = [
        parse_console,
        classify_command,
        output_line_pattern,
        find_missing_output,
        run_until_stopped,
        run_console_block,
        run_blocks,
    ]
    driver.write_text(program_source(driver_functions, "run_blocks(__import__('sys').argv[1])"))
    listing = root / "blocks.json"
    page = {"repository": str(REPO), "blocks": [dataclasses.asdict(block) for block in blocks]}
    listing.write_text(json.dumps(page))

    try:
        completed = subprocess.run(
            [sys.executable, "-W", "error", str(driver), str(listing)],
            cwd=root / "work",
            env=page_environment(root),
            capture_output=True,
            text=True,
            timeout=PAGE_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(
            f"the examples of {blocks[0].page} did not finish within {PAGE_TIMEOUT_SECONDS:g} s;"
            f" output so far:\n{_text(error.stdout)}\n{_text(error.stderr)}"
        )

    log = root / "blocked.log"
    blocked = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return PageRun(completed.returncode, completed.stdout, completed.stderr, blocked)


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", "replace")
    return output or ""


def describe_failure(run: PageRun) -> str:
    """Return the failing block's location first, then the process's output."""
    location = next(
        (line for line in run.stderr.splitlines() if line.startswith(FAILURE_MARKER)),
        f"the page's process exited with status {run.returncode} outside any block",
    )
    return f"{location}\n--- stdout ---\n{run.stdout}\n--- stderr ---\n{run.stderr}"


def pages_with_examples() -> list[str]:
    """Return the pages that have a Python or console block, relative to the repository."""
    languages = "|".join(sorted(RUNNABLE_LANGUAGES | CONSOLE_LANGUAGES))
    fence = re.compile(rf"^[ \t]*(`{{3,}}|~{{3,}})[ \t]*\{{?\.?({languages})\b", re.MULTILINE)
    pages = []
    for path in documentation_pages():
        if fence.search(path.read_text(encoding="utf-8")):
            pages.append(path.relative_to(REPO).as_posix())
    return pages


def page_params() -> list[Any]:
    return [pytest.param(page, id=page) for page in pages_with_examples()]


# The documentation


@pytest.mark.parametrize("page", page_params())
def test_page_examples_run(page: str, tmp_path: Path) -> None:
    blocks = collect_blocks((REPO / page).read_text(encoding="utf-8"), page)

    run = run_page(blocks, tmp_path)

    assert run.returncode == 0, describe_failure(run)
    assert run.blocked == [], (
        f"the examples of {page} tried to reach other hosts: {run.blocked}. An example that"
        " shows a real endpoint needs hidden code that points it at a local receiver."
    )


def test_console_commands_classified() -> None:
    counts = {"run": 0, "covered": 0}
    for path in documentation_pages():
        page = path.relative_to(REPO).as_posix()
        blocks = collect_blocks(path.read_text(encoding="utf-8"), page)
        for block in (block for block in blocks if block.console):
            for command in parse_console(block.source):
                kind, detail = classify_command(command["argv"])
                where = f"{page}:{block.line + command['offset']}"
                assert kind in counts, (
                    f"{where}: {command['text']!r} is {kind}: {detail}. Add a rule to"
                    " classify_command that runs it or names the test that covers it."
                )
                counts[kind] += 1

    assert counts["run"] > 0
    assert counts["covered"] > 0


def test_guide_pages_have_examples() -> None:
    pages = pages_with_examples()

    for page in (
        "docs/getting-started.md",
        "docs/outcomes.md",
        "docs/recipes/datarobot-custom-model.md",
        "docs/recipes/asyncio-service.md",
        "docs/recipes/gunicorn-uvicorn.md",
        "docs/recipes/migrating.md",
    ):
        assert page in pages, page


# The runner itself


def test_collect_keeps_page_order() -> None:
    text = (
        "# Page\n\n<!-- example-setup\nx = 1\n-->\n\n```python\nprint(x)\n```\n\n"
        '```console\n$ ls\n```\n\n```py title="custom.py"\ny = 2\n```\n'
    )

    blocks = collect_blocks(text, "page.md")

    assert [(block.line, block.hidden, block.file_name, block.console) for block in blocks] == [
        (4, True, None, False),
        (8, False, None, False),
        (12, False, None, True),
        (16, False, "custom.py", False),
    ]


def test_collect_strips_list_indent() -> None:
    text = "1. Step:\n\n    ```python\n    if True:\n        pass\n    ```\n"

    blocks = collect_blocks(text, "page.md")

    assert blocks[0].source == "if True:\n    pass\n"


def test_collect_skips_longer_fence_content() -> None:
    text = "````markdown\n```python\nraise SystemExit(1)\n```\n````\n"

    assert collect_blocks(text, "page.md") == []


def test_collect_rejects_unclosed_fence() -> None:
    with pytest.raises(
        PageFormatError, match=r"page\.md:1: the code fence ``` opened here is not closed"
    ):
        collect_blocks("```python\nx = 1\n", "page.md")


def test_collect_rejects_unclosed_setup() -> None:
    with pytest.raises(PageFormatError, match=r"page\.md:2: <!-- example-setup is not closed"):
        collect_blocks("\n<!-- example-setup\nx = 1\n", "page.md")


def test_collect_rejects_path_title() -> None:
    with pytest.raises(PageFormatError, match=r"invalid title '\.\./x\.py'"):
        collect_blocks('```python title="../x.py"\nx = 1\n```\n', "page.md")


def test_failure_names_page_and_line(tmp_path: Path) -> None:
    text = "# Page\n\n```python\nvalue = 1\n```\n\n```python\n\nraise ValueError('stale')\n```\n"

    run = run_page(collect_blocks(text, "docs/page.md"), tmp_path)

    assert run.returncode == 1
    assert f"{FAILURE_MARKER}docs/page.md:8 (block): ValueError: stale" in run.stderr
    assert 'File "docs/page.md", line 9' in run.stderr


def test_failing_hidden_code_fails_page(tmp_path: Path) -> None:
    text = "```python\nvalue = 1\n```\n\n<!-- example-setup\nassert value == 2\n-->\n"

    run = run_page(collect_blocks(text, "docs/page.md"), tmp_path)

    assert run.returncode == 1
    assert f"{FAILURE_MARKER}docs/page.md:6 (hidden setup): AssertionError" in run.stderr


def test_failing_test_file_fails_page(tmp_path: Path) -> None:
    text = '```python title="test_example.py"\ndef test_fails():\n    assert 1 == 2\n```\n'

    run = run_page(collect_blocks(text, "docs/page.md"), tmp_path)

    assert run.returncode == 1
    assert f"{FAILURE_MARKER}docs/page.md:2 (block): AssertionError: pytest exited" in run.stderr


def test_replacement_applies_to_next_block(tmp_path: Path) -> None:
    text = (
        "<!-- example-setup\nEXAMPLE_REPLACE = {'8765': '4321'}\n-->\n\n"
        "```python\nport = 8765\n```\n\n"
        "```python\nassert port == 4321\nassert '8765' != '4321'\n```\n"
    )

    run = run_page(collect_blocks(text, "docs/page.md"), tmp_path)

    assert run.returncode == 0, describe_failure(run)


def test_environment_is_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAROBOT_API_TOKEN", "not-for-examples")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    text = (
        "```python\nimport os\nimport socket\nfrom pathlib import Path\n\n"
        "assert 'DATAROBOT_API_TOKEN' not in os.environ\n"
        "assert 'HTTPS_PROXY' not in os.environ\n"
        "assert Path.home() == Path.cwd().parent / 'home'\n"
        "assert os.environ['MLOPS_GUARD_EVENTS_STATE_DIR'] == str(Path.cwd().parent / 'state')\n"
        "assert socket.docs_examples_guard\n```\n"
    )

    run = run_page(collect_blocks(text, "docs/page.md"), tmp_path)

    assert run.returncode == 0, describe_failure(run)


def test_guard_recognizes_loopback_hosts() -> None:
    # Only the guard's decision is checked: nothing is looked up or connected to.
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"):
        assert is_local_host(host), host
    for host in ("app.datarobot.com", "192.0.2.1", "10.0.0.1", "0.0.0.0", "169.254.169.254"):
        assert not is_local_host(host), host


def test_console_parse_output_and_status() -> None:
    source = (
        "$ mlops-guard-events report --event-type x \\\n"
        "      --title 'a # b'  # exit status 2\n"
        "error line\n"
        "...\n"
        "$ mlops-guard-events spool   # show the spool\n"
    )

    commands = parse_console(source)

    assert [command["offset"] for command in commands] == [0, 4]
    assert commands[0]["argv"] == [
        "mlops-guard-events",
        "report",
        "--event-type",
        "x",
        "--title",
        "a # b",
    ]
    assert commands[0]["expected"] == ["error line", "..."]
    assert commands[0]["exit_status"] == 2
    assert commands[1]["argv"] == ["mlops-guard-events", "spool"]
    assert commands[1]["exit_status"] == 0


def test_console_parse_lines_without_prompt() -> None:
    commands = parse_console("# comment\nmake demo    # run the demo\n\npip install -e .\n")

    assert [(command["offset"], command["argv"]) for command in commands] == [
        (1, ["make", "demo"]),
        (3, ["pip", "install", "-e", "."]),
    ]
    assert all(command["expected"] == [] for command in commands)


def test_console_rejects_output_first() -> None:
    with pytest.raises(PageFormatError, match=r"page\.md:1: output line 'hello' comes before"):
        collect_blocks("```console\nhello\n$ mlops-guard-events spool\n```\n", "page.md")


def test_classify_console_commands() -> None:
    cases = {
        "export DATAROBOT_ENDPOINT=http://127.0.0.1:8765/api/v2": ("run", "export"),
        "mlops-guard-events spool replay": ("run", "cli"),
        "python -m mlops_guard_events doctor": ("run", "cli"),
        "mlops-guard-events -v receiver --port 0": ("run", "until-stopped"),
        "mlops-guard-events events --follow": ("run", "until-stopped"),
        "mlops-guard-events events -n 3": ("run", "cli"),
        "python -m benchmarks --only storm": ("run", "benchmarks"),
        "python3 service.py": ("run", "script"),
        "make test": ("covered", ".ci/run runs make test"),
    }
    for text, expected in cases.items():
        assert classify_command(text.split()) == expected, text

    for text in ("ls", "make clean", "mlops-guard-events events > log.txt", "python"):
        assert classify_command(text.split())[0] == "unclassified", text


def test_output_pattern_loose_parts() -> None:
    shown = "201 2026-01-31T12:00:00.000000+00:00 sent to http://127.0.0.1:8765/x from .../a.db"
    printed = "201 2026-12-04T22:00:14.718554+00:00 sent to http://127.0.0.1:40417/x from /t/a.db"

    assert find_missing_output([shown], printed) is None
    assert find_missing_output(["...", "first", "", "second"], "first\nsecond\n") is None
    assert find_missing_output(["second", "first"], "first\nsecond\n") == "first"
    assert find_missing_output(["first"], "the first line\n") == "first"


def test_console_export_and_output(tmp_path: Path) -> None:
    text = (
        "```console\n$ export MLOPS_GUARD_EVENTS_STATE_DIR=other\n```\n\n"
        "```console\n$ mlops-guard-events spool\ndirectory: other/spool\n...\n```\n"
    )

    run = run_page(collect_blocks(text, "docs/page.md"), tmp_path)

    assert run.returncode == 0, describe_failure(run)


def test_console_failure_names_line(tmp_path: Path) -> None:
    text = "# Page\n\n```console\n$ make test\n\n$ mlops-guard-events spool\nno such line\n```\n"

    run = run_page(collect_blocks(text, "docs/page.md"), tmp_path)

    assert run.returncode == 1
    assert f"{FAILURE_MARKER}docs/page.md:6 (console): $ mlops-guard-events spool" in run.stderr
    assert "did not print 'no such line'" in run.stderr


def test_console_checks_exit_status(tmp_path: Path) -> None:
    command = "$ mlops-guard-events report --event-type nope"
    shown = "mlops-guard-events report: error: invalid event_type 'nope': ..."
    passing = f"```console\n{command}  # exit status 2\n{shown}\n```\n"
    failing = f"```console\n{command}\n```\n"
    (tmp_path / "passing").mkdir()
    (tmp_path / "failing").mkdir()

    passed = run_page(collect_blocks(passing, "docs/page.md"), tmp_path / "passing")
    failed = run_page(collect_blocks(failing, "docs/page.md"), tmp_path / "failing")

    assert passed.returncode == 0, describe_failure(passed)
    assert failed.returncode == 1
    assert "exited with status 2, expected 0" in failed.stderr


def test_console_stops_receiver(tmp_path: Path) -> None:
    text = (
        "```console\n$ mlops-guard-events receiver --port 0\n"
        "mlops-guard-events receiver listening on http://127.0.0.1:8765/api/v2\n...\n```\n"
    )

    run = run_page(collect_blocks(text, "docs/page.md"), tmp_path)

    assert run.returncode == 0, describe_failure(run)


def test_console_rejects_unclassified(tmp_path: Path) -> None:
    run = run_page(collect_blocks("```console\n$ ls -l\n```\n", "docs/page.md"), tmp_path)

    assert run.returncode == 1
    assert f"{FAILURE_MARKER}docs/page.md:2 (console): unclassified command 'ls -l'" in run.stderr
