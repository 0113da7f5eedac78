"""The demo's bundled prompts and responses, written for this project.

`prompts.jsonl` contains 50 chat turns, one JSON object a line, with the keys `id`, `kind`
(`benign`, `pii`, `toxic` or `injection`), `prompt` and `response`. The response is null for
the one prompt the demo's model fails on. The personal data in it is made up: e-mail
addresses use the reserved example domains, phone numbers the fictional 555-01xx range, and the
card number is a well-known test number.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from typing import Final

__all__ = ["KINDS", "DemoPrompt", "load_prompts"]

KINDS: Final = ("benign", "pii", "toxic", "injection")


@dataclasses.dataclass(frozen=True)
class DemoPrompt:
    """One chat turn of the demo.

    Attributes:
        id: A short identifier such as `p07`.
        kind: What the prompt tests: `benign`, `pii`, `toxic` or `injection`.
        prompt: The user's text.
        response: The text the demo's model returns, or None when it fails on the prompt.
    """

    id: str
    kind: str
    prompt: str
    response: str | None


def load_prompts() -> list[DemoPrompt]:
    """Read the bundled prompts in file order.

    Raises:
        ValueError: A line of the data file is not a valid prompt; the file ships with the
            package, so this means the installation is damaged.
    """
    text = resources.files(__package__).joinpath("prompts.jsonl").read_text(encoding="utf-8")
    prompts = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt = DemoPrompt(
                id=row["id"], kind=row["kind"], prompt=row["prompt"], response=row["response"]
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"invalid line {number} of the demo's prompts.jsonl: {error}; reinstall the package"
            ) from None
        if prompt.kind not in KINDS:
            raise ValueError(
                f"invalid kind {prompt.kind!r} on line {number} of the demo's prompts.jsonl:"
                f" expected one of {', '.join(KINDS)}"
            )
        prompts.append(prompt)
    return prompts
