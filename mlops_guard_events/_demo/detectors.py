"""The text checks behind the demo's guards: personal data, toxic words, prompt injection.

They are deliberately small heuristics, enough to make the demo's guards act on its bundled
prompts; they are not meant for production moderation.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "INJECTION_THRESHOLD",
    "find_personal_data",
    "find_toxic_words",
    "injection_score",
    "redact_personal_data",
]

_EMAIL: Final = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# North American numbers with or without the country code, such as +1 202-555-0147 and 555-0199.
_PHONE: Final = re.compile(r"(?<![\d-])(?:\+1[ -]?)?(?:\d{3}[ -])?\d{3}-\d{4}\b")
_CARD_CANDIDATE: Final = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")

_TOXIC_WORDS: Final = frozenset(
    {
        "clown",
        "garbage",
        "hate",
        "idiot",
        "loser",
        "moron",
        "pathetic",
        "stupid",
        "trash",
        "useless",
        "worthless",
    }
)
_TOXIC_PHRASES: Final = ("shut up",)
_WORD: Final = re.compile(r"[a-z']+")

# Phrases of known prompt-injection attempts, with how strongly each one indicates an attack.
_INJECTION_PATTERNS: Final = (
    (re.compile(r"\b(?:ignore|disregard|forget)\b.{0,30}\b(?:instructions|above|rules)\b"), 1.0),
    (re.compile(r"\b(?:system prompt|hidden configuration|admin password)\b"), 0.6),
    (re.compile(r"\byou are now\b|\bpretend you have no\b|\bwithout rules\b"), 0.8),
    (re.compile(r"\b(?:developer mode|system override|no restrictions)\b"), 0.8),
    (re.compile(r"\b(?:reveal|print|output)\b.{0,30}\b(?:prompt|password|configuration)\b"), 0.5),
    (re.compile(r"\bnew instructions\b|\bfrom now on\b"), 0.4),
)
INJECTION_THRESHOLD: Final = 1.0
"""The score from which `injection_score` marks a prompt as an injection attempt."""


def find_personal_data(text: str) -> list[str]:
    """Return the kinds of personal data found in `text`: `email`, `phone` and `card`.

    Each kind is listed once, in that order. A card number counts only when it passes the
    Luhn checksum, which real and test card numbers do and most other digit runs do not.
    """
    kinds = []
    if _EMAIL.search(text):
        kinds.append("email")
    if _PHONE.search(text):
        kinds.append("phone")
    if any(_passes_luhn(match.group()) for match in _CARD_CANDIDATE.finditer(text)):
        kinds.append("card")
    return kinds


def redact_personal_data(text: str) -> str:
    """Replace each e-mail address, phone number and card number in `text` with a placeholder."""
    text = _CARD_CANDIDATE.sub(
        lambda match: "[CARD]" if _passes_luhn(match.group()) else match.group(), text
    )
    text = _EMAIL.sub("[EMAIL]", text)
    return _PHONE.sub("[PHONE]", text)


def _passes_luhn(candidate: str) -> bool:
    digits = [int(character) for character in candidate if character.isdigit()]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def find_toxic_words(text: str) -> list[str]:
    """Return the words and phrases of the toxicity list found in `text`, sorted."""
    lowered = text.lower()
    found = {word for word in _WORD.findall(lowered) if word in _TOXIC_WORDS}
    found.update(phrase for phrase in _TOXIC_PHRASES if phrase in lowered)
    return sorted(found)


def injection_score(text: str) -> float:
    """Return how strongly `text` looks like a prompt injection.

    The score is 0 for none, and 1 or more for an attempt (see `INJECTION_THRESHOLD`).
    """
    lowered = " ".join(text.lower().split())
    return sum(weight for pattern, weight in _INJECTION_PATTERNS if pattern.search(lowered))
