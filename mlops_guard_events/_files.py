"""File helpers shared by the event log and the spool, which both keep private files."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["make_private_directory", "write_all"]


def make_private_directory(directory: Path) -> None:
    """Create `directory` with mode 0700, and its parents as needed; leave an existing one alone."""
    if directory.is_dir():
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        return
    # mkdir applies the umask; set 0700 exactly on the directory this call created.
    os.chmod(directory, 0o700)


def write_all(descriptor: int, data: bytes) -> None:
    """Write all of `data` to `descriptor`, looping over partial writes."""
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]
