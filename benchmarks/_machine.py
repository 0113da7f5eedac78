"""A description of the machine and the software a benchmark run used."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

__all__ = ["PACKAGES", "describe_machine", "load_average"]

PACKAGES = (
    "mlops-guard-events",
    "wrapt",
    "requests",
    "urllib3",
    "datarobot",
    "prometheus-client",
    "opentelemetry-sdk",
)
"""The distributions whose versions are recorded: the library, its dependencies and the peers."""


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or "unknown"


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 0


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages, as `uptime` shows them, or "unknown"."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(*arguments: str) -> str:
    completed = subprocess.run(
        ["git", *arguments],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return completed.stdout.strip()


def _library_revision() -> str:
    """Return the checkout's commit, and whether the library has uncommitted changes."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        changes = _git("status", "--porcelain", "--", "mlops_guard_events")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    if changes:
        return f"{commit} with uncommitted changes in mlops_guard_events/"
    return commit


def describe_machine() -> dict[str, str]:
    """Return the platform, CPU model, core count, Python version and package versions."""
    description = {
        "platform": platform.platform(),
        "CPU": _cpu_model(),
        "cores usable by this process": str(_usable_cores()),
        "Python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "library source": _library_revision(),
    }
    for distribution in PACKAGES:
        description[distribution] = _version(distribution)
    return description
