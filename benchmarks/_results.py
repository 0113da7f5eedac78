"""The results of one benchmark, their JSON form, and the Markdown the runner prints."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = [
    "Section",
    "Table",
    "Verdict",
    "format_bytes",
    "format_duration",
    "format_ns",
    "format_ratio",
]


@dataclasses.dataclass
class Table:
    """A Markdown table: a caption line, column names and rows of formatted cells."""

    caption: str
    columns: list[str]
    rows: list[list[str]]

    def to_markdown(self) -> str:
        """Render the caption and the table."""
        lines = [self.caption, ""] if self.caption else []
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        return "\n".join(lines)


@dataclasses.dataclass
class Verdict:
    """One goal of the issue, the figure measured for it, and whether the figure meets it.

    `met` is None when the figure could not be measured, such as when a peer is not installed.
    """

    goal: str
    measured: str
    met: bool | None

    def to_markdown(self) -> str:
        """Render the verdict as one list item."""
        outcome = {True: "met", False: "**missed**", None: "not measured"}[self.met]
        return f"- {self.goal}: {self.measured}, {outcome}."


@dataclasses.dataclass
class Section:
    """The outcome of one benchmark, as the child process sends it to the runner."""

    key: str
    title: str
    description: str
    tables: list[Table] = dataclasses.field(default_factory=list)
    verdicts: list[Verdict] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    elapsed_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Return the section as a JSON-compatible dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Section:
        """Build a section from the dictionary `to_json` returned."""
        fields = dict(document)
        fields["tables"] = [Table(**table) for table in fields.get("tables", [])]
        fields["verdicts"] = [Verdict(**verdict) for verdict in fields.get("verdicts", [])]
        return cls(**fields)

    def to_markdown(self, heading_level: int = 3) -> str:
        """Render the section: heading, description, tables, goals and notes."""
        parts = [f"{'#' * heading_level} {self.title}", self.description]
        parts.extend(table.to_markdown() for table in self.tables)
        if self.verdicts:
            verdicts = "\n".join(verdict.to_markdown() for verdict in self.verdicts)
            parts.append(f"Goals:\n\n{verdicts}")
        if self.notes:
            notes = "\n".join(f"- {note}" for note in self.notes)
            parts.append(f"Notes:\n\n{notes}")
        parts.append(f"This benchmark took {self.elapsed_seconds:.0f} s.")
        return "\n\n".join(part for part in parts if part)


def format_ns(nanoseconds: float) -> str:
    """Format a duration with a unit that keeps three significant digits, such as "1.23 µs"."""
    magnitude = abs(nanoseconds)
    if magnitude < 1_000:
        return f"{nanoseconds:.0f} ns"
    if magnitude < 1_000_000:
        return f"{nanoseconds / 1_000:.3g} µs"
    if magnitude < 1_000_000_000:
        return f"{nanoseconds / 1_000_000:.3g} ms"
    return f"{nanoseconds / 1_000_000_000:.3g} s"


def format_duration(seconds: float) -> str:
    """Format a long duration in seconds, minutes or hours, such as "17 minutes"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


def format_bytes(size: float) -> str:
    """Format a size in bytes as KiB or MiB, keeping the sign of a growth."""
    magnitude = abs(size)
    if magnitude < 1024:
        return f"{size:.0f} B"
    if magnitude < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def format_ratio(numerator: float, denominator: float) -> str:
    """Format `numerator / denominator` as "0.52x", or "n/a" unless the denominator is positive."""
    if denominator <= 0:
        return "n/a"
    ratio = numerator / denominator
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    return f"{ratio:.2f}x"
