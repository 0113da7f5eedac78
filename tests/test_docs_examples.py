"""Run every Python example of the README and the documentation, so that none can go stale.

How a page is run:

- Every fenced block whose language is `python` or `py` runs, in page order, in one fresh
  Python process per page. Blocks of a page share one namespace, whose `__name__` is
  `"__main__"`, so a block can use what an earlier block of the same page defined. Blocks of
  other languages (`console`, `text`, `yaml`, ...) are not run.
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

A failure names the page and the line where the failing block starts. Tracebacks of visible
and hidden code give the page's own line numbers.
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
    """

    page: str
    line: int
    source: str
    hidden: bool = False
    file_name: str | None = None


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
    if language not in RUNNABLE_LANGUAGES:
        return None, end + 1

    indent = opening["indent"]
    body = [_strip_indent(line, indent) for line in lines[start + 1 : end]]
    source = "\n".join(body) + "\n"
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


def run_blocks(listing: str) -> None:
    """Run the blocks listed as JSON in the file `listing`; exit 1 at the first that fails."""
    import json
    import runpy
    import subprocess
    import sys
    import traceback
    from pathlib import Path

    failure_marker = "DOCS EXAMPLE FAILED AT "
    pytest_timeout_seconds = 90

    def fail(block: dict[str, Any], detail: str) -> None:
        kind = "hidden setup" if block["hidden"] else "block"
        where = f"{block['page']}:{block['line']} ({kind})"
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

    blocks = json.loads(Path(listing).read_text(encoding="utf-8"))
    sys.path.insert(0, str(Path.cwd()))
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    replacements: dict[str, str] = {}
    for block in blocks:
        source = block["source"]
        if not block["hidden"]:
            for old, new in replacements.items():
                if old not in source:
                    fail(block, f"EXAMPLE_REPLACE names {old!r}, which the block does not contain")
                source = source.replace(old, new)
            replacements = {}

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
    driver.write_text(program_source([run_blocks], "run_blocks(__import__('sys').argv[1])"))
    listing = root / "blocks.json"
    listing.write_text(json.dumps([dataclasses.asdict(block) for block in blocks]))

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
    """Return the pages that have a Python block, relative to the repository."""
    pages = []
    for path in documentation_pages():
        text = path.read_text(encoding="utf-8")
        if re.search(r"^[ \t]*(`{3,}|~{3,})[ \t]*(python|py)\b", text, re.MULTILINE):
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

    assert [(block.line, block.hidden, block.file_name) for block in blocks] == [
        (4, True, None),
        (8, False, None),
        (16, False, "custom.py"),
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
