"""The Python examples of the decorator and context-manager pages run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ["decorators.md", "context-managers.md"]
EXAMPLE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def examples() -> list[Any]:
    found = []
    for page in PAGES:
        text = (DOCS / page).read_text(encoding="utf-8")
        for number, code in enumerate(EXAMPLE.findall(text), start=1):
            found.append(pytest.param(f"{page} example {number}", code, id=f"{page}-{number}"))
    return found


@pytest.mark.parametrize(("label", "code"), examples())
def test_doc_example_runs(label: str, code: str) -> None:
    exec(compile(code, label, "exec"), {"__name__": "docs_example"})
