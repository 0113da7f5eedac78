"""The public API's docstrings follow the Google style, with the sections that apply.

ruff's pydocstyle rules (configured in pyproject.toml) check the form of every docstring in the
package, but skip the objects of private modules, which is where the public names are defined.
This module checks those objects as the package root, `mlops_guard_events.testing` and the
pytest plugin export them:

- every public function, class and public method has a docstring whose summary line is a
  sentence;
- every parameter of a function or method is listed under `Args:`, and every constructor
  parameter of a class under the class's `Args:` or `Attributes:`;
- a function that returns a value has `Returns:` or `Yields:`, unless its summary starts with
  "Return" or "Yield", which the Google style allows when the summary describes the value;
- a function whose own body raises has `Raises:`.
"""

from __future__ import annotations

import ast
import enum
import inspect
import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import mlops_guard_events
from mlops_guard_events import pytest_plugin, testing

SECTION_HEADER = re.compile(r"^(?P<name>[A-Z][A-Za-z ]*):\s*$")
ENTRY_NAME = re.compile(r"^\s{4}(?P<name>\*{0,2}\w+)\s*(\([^)]*\))?:")
# How the factories refer to the one place where the options they share are documented.
SHARED_OPTIONS = re.compile(r"Options not listed here work as in `(?P<name>\w+)`")

# Public-named methods that are hooks between the library's own modules, not API for users.
INTERNAL_METHODS = {
    "EventReporter": {
        "caught",
        "check_result",
        "checks_results",
        "fallback_for",
        "has_enabled_callable",
        "is_enabled",
        "note_failure",
        "passed_through",
        "report_block",
        "report_failure",
        "report_timeout",
        "reports",
    },
}

# Classes that users get from the library instead of constructing, so their constructor
# arguments are internal.
BUILT_BY_THE_LIBRARY = {"EventReporter", "EventScope"}


def google_sections(docstring: str) -> dict[str, list[str]]:
    """Return the entry names of each section of a Google-style docstring.

    Args:
        docstring: The docstring, as `__doc__` contains it.

    Returns:
        For each section header such as "Args", the names its entries document, without
        leading asterisks. Sections of free text, such as "Returns", map to their first words.
    """
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in inspect.cleandoc(docstring).splitlines():
        header = SECTION_HEADER.match(line)
        if header is not None:
            current = sections.setdefault(header["name"], [])
            continue
        if line and not line[0].isspace():
            current = None
        entry = ENTRY_NAME.match(line)
        if current is not None and entry is not None:
            current.append(entry["name"].lstrip("*"))
        elif current is not None and line.strip() and not current:
            current.append(line.strip())
    return sections


def raises_in_own_body(function: Callable[..., Any]) -> bool:
    """Return whether the function's own source contains a `raise` with an exception."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return False
    tree = ast.parse(source)
    return any(isinstance(node, ast.Raise) and node.exc is not None for node in ast.walk(tree))


def shared_options(docstring: str) -> set[str]:
    """Return the options documented elsewhere: "Options not listed here work as in `NAME`."."""
    reference = SHARED_OPTIONS.search(docstring)
    if reference is None:
        return set()
    documented = inspect.getdoc(getattr(mlops_guard_events, reference["name"])) or ""
    return set(google_sections(documented).get("Args", []))


def function_problems(
    name: str, function: Callable[..., Any], *, fixture: bool = False
) -> list[str]:
    """Return what the docstring of `function` lacks, each as "name: problem"."""
    docstring = inspect.getdoc(function)
    if not docstring:
        return [f"{name}: no docstring"]
    problems = []
    summary = docstring.splitlines()[0]
    if not summary.endswith("."):
        problems.append(f"{name}: the summary line does not end with a period")

    sections = google_sections(docstring)
    signature = inspect.signature(function)
    if not fixture:
        # pytest passes a fixture's arguments, so they are not the user's to document.
        listed = set(sections.get("Args", [])) | shared_options(docstring)
        missing = [
            parameter
            for parameter in signature.parameters
            if parameter not in ("self", "cls") and parameter not in listed
        ]
        if missing:
            problems.append(f"{name}: Args: lacks {', '.join(missing)}")

    returns_value = signature.return_annotation not in (None, "None", inspect.Signature.empty)
    summary_names_value = summary.startswith(("Return", "Yield"))
    if returns_value and not summary_names_value and not {"Returns", "Yields"} & sections.keys():
        problems.append(f"{name}: no Returns or Yields section")
    if raises_in_own_body(function) and "Raises" not in sections:
        problems.append(f"{name}: raises, but has no Raises section")
    return problems


def class_problems(name: str, cls: type) -> list[str]:
    """Return what the docstrings of `cls` and of its public methods lack."""
    docstring = inspect.getdoc(cls)
    if not docstring or cls.__doc__ is None:
        return [f"{name}: no docstring"]
    problems = []
    short_name = cls.__name__
    if short_name not in BUILT_BY_THE_LIBRARY and not issubclass(cls, enum.Enum):
        # A subclass documents only what it adds, as the exceptions do.
        listed: set[str] = set()
        for documented in cls.__mro__:
            if documented.__module__.startswith("mlops_guard_events") and documented.__doc__:
                sections = google_sections(documented.__doc__)
                listed |= set(sections.get("Args", [])) | set(sections.get("Attributes", []))
        try:
            parameters = list(inspect.signature(cls).parameters)
        except ValueError:  # a class without a Python constructor, such as an exception
            parameters = []
        if issubclass(cls, BaseException):
            parameters = [parameter for parameter in parameters if parameter != "message"]
        missing = [parameter for parameter in parameters if parameter not in listed]
        if missing:
            problems.append(f"{name}: Args: or Attributes: lacks {', '.join(missing)}")

    internal = INTERNAL_METHODS.get(short_name, set())
    for attribute, value in vars(cls).items():
        if attribute.startswith("_") or attribute in internal:
            continue
        function = value.__func__ if isinstance(value, classmethod | staticmethod) else value
        if inspect.isfunction(function):
            problems += function_problems(f"{name}.{attribute}", function)
    return problems


def public_objects() -> Iterator[tuple[str, object]]:
    for name in mlops_guard_events.__all__:
        if name != "__version__":
            yield f"mlops_guard_events.{name}", getattr(mlops_guard_events, name)
    for name in testing.__all__:
        yield f"mlops_guard_events.testing.{name}", getattr(testing, name)


def all_problems() -> set[str]:
    problems: list[str] = []
    for name, value in public_objects():
        if isinstance(value, type):
            problems += class_problems(name, value)
        elif inspect.isfunction(value):
            problems += function_problems(name, inspect.unwrap(value))
    for fixture in ("captured_events", "fake_clock", "events_receiver"):
        function = getattr(pytest_plugin, fixture)
        problems += function_problems(f"the {fixture} fixture", function, fixture=True)
    return set(problems)


def test_public_docstrings_have_sections() -> None:
    problems = sorted(all_problems())

    assert problems == [], "docstrings of the public API lack Google sections:\n" + "\n".join(
        problems
    )


@pytest.mark.parametrize(
    ("docstring", "expected"),
    [
        pytest.param(
            "Do it.\n\n    Args:\n        first: One.\n        *rest (int): More.\n"
            "            Still rest.\n\n    Returns:\n        Nothing useful.\n",
            {"Args": ["first", "rest"], "Returns": ["Nothing useful."]},
            id="args-and-returns",
        ),
        pytest.param("Do it.\n\nNo sections here.\n", {}, id="no-sections"),
    ],
)
def test_google_sections_parse(docstring: str, expected: dict[str, list[str]]) -> None:
    assert google_sections(docstring) == expected


def test_function_problems_find_gaps() -> None:
    def undocumented(value: int) -> int:
        """double a value"""
        if value < 0:
            raise ValueError(value)
        return value * 2

    problems = function_problems("undocumented", undocumented)

    assert problems == [
        "undocumented: the summary line does not end with a period",
        "undocumented: Args: lacks value",
        "undocumented: no Returns or Yields section",
        "undocumented: raises, but has no Raises section",
    ]
