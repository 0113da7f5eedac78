"""The durable spool: events kept on local disk until they can be delivered.

Format: JSON Lines segment files. Each segment starts with a header line, `{"format": 1}`, and
contains one event body (the wire JSON) per line. JSON Lines rather than SQLite, because an
append is a single `os.write` to a file opened with `O_APPEND`: microseconds on the calling
thread, with no fsync. A crash leaves at most one truncated last line, a forked child has no
connection to re-open, and a person can read and repair the files with ordinary tools.

Files in the spool directory, named `<time_ns>-<pid>-<seq>.<state>` so that names sort oldest
first:

- `.active`: the segment one process appends to. It holds an exclusive `flock` on it until it
  seals the segment, so no other process takes a segment that is still being written.
- `.jsonl`: a sealed segment, ready to replay.
- `.claimed`: a segment being replayed. The replayer takes it with `flock` and then renames it,
  so two processes never replay the same segment. A `.claimed` or `.active` file whose lock
  is free belongs to a process that died; the next replay takes it over.

Files are created 0600 in a 0700 directory and opened with `O_NOFOLLOW`. The size of the spool
is bounded: when an append would exceed `max_bytes`, the oldest sealed segments are deleted,
and their events are counted as `dropped_spool_full`. A corrupt or truncated line is skipped
and counted as `dropped_spool_corrupt`. A segment with an unknown header, such as one written
by a newer version of this library, is left alone with a warning.

NOTE: the size bound and the locks assume a local file system. Processes sharing the directory
each check the bound against the files they see, so the total can briefly exceed it.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from . import _stats
from ._files import make_private_directory, write_all
from .exceptions import SpoolError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FORMAT_VERSION",
    "ClaimedSegment",
    "Spool",
    "SpoolSummary",
    "encode_body",
]

logger = logging.getLogger("mlops_guard_events")

FORMAT_VERSION: Final = 1
"""The version in the header line of the segments this module writes."""

_HEADER: Final = b'{"format": 1}\n'
_MAX_SEGMENT_BYTES: Final = 1024 * 1024
# A temporary file older than this belongs to a writer that crashed and is deleted.
_STALE_TEMPORARY_SECONDS: Final = 600.0

_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)

_ACTIVE: Final = ".active"
_SEALED: Final = ".jsonl"
_CLAIMED: Final = ".claimed"
_TEMPORARY: Final = ".tmp"

# Shared by every Spool in the process, so that two of them on one directory never pick the
# same file name for segments with the same timestamp.
_sequence = itertools.count()


def encode_body(body: Mapping[str, Any]) -> bytes:
    """Return `body` as one spool line: compact ASCII JSON ending in a newline."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


@dataclasses.dataclass
class ClaimedSegment:
    """A segment this process is replaying; give it back with `Spool.release`.

    Attributes:
        path: The `.claimed` file.
        bodies: The event bodies it holds, oldest first, without corrupt lines.
    """

    path: Path
    bodies: list[dict[str, Any]]
    descriptor: int = dataclasses.field(repr=False)
    corrupt_lines: int = 0


@dataclasses.dataclass(frozen=True)
class SpoolSummary:
    """The contents of the spool, for the `spool` command and `doctor`.

    Attributes:
        directory: The spool directory.
        events: Events in readable segments.
        size_bytes: The size of every segment file, readable or not.
        segments: Segment files, readable or not.
        oldest_timestamp: The `timestamp` of the oldest spooled event, or None.
        unreadable_segments: Segments left alone because their header is unknown.
    """

    directory: Path
    events: int
    size_bytes: int
    segments: int
    oldest_timestamp: str | None
    unreadable_segments: int


@dataclasses.dataclass(frozen=True)
class _Entry:
    path: Path
    size: int

    @property
    def state(self) -> str:
        return self.path.suffix


class Spool:
    """The spool of one process: appends from any thread, claims for replay, eviction.

    Args:
        directory: The spool directory; it and its parent are created with mode 0700.
        max_bytes: The maximum size of the spool's files in bytes; the oldest events go first.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._prepared = False
        self._active_descriptor: int | None = None
        self._active_path: Path | None = None
        self._active_bytes = 0
        self._active_events = 0
        # The spool's size as last scanned, plus what this process wrote since. It only
        # decides when to scan again, so other processes' writes need not be in it.
        self._estimated_bytes: int | None = None
        self._warned_unreadable: set[str] = set()

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r}, max_bytes={self.max_bytes})"

    @property
    def segment_limit(self) -> int:
        """The size at which the active segment is sealed and a new one started."""
        return max(len(_HEADER) + 1, min(_MAX_SEGMENT_BYTES, self.max_bytes // 8))

    # Appending

    def append(self, body: Mapping[str, Any]) -> None:
        """Write `body` to the active segment with one `os.write`, and count it as `spooled`.

        Raises:
            SpoolError: The directory or the segment cannot be created or written, or the event
                does not fit in `max_bytes` even with every other event evicted.
            TypeError, ValueError: `body` cannot be encoded as JSON.
        """
        line = encode_body(body)
        with self._lock:
            if not self._make_room(len(line)):
                raise SpoolError(
                    f"cannot spool an event of {len(line)} bytes: it does not fit in"
                    f" spool_max_bytes={self.max_bytes}, even after evicting older events;"
                    " raise spool_max_bytes"
                )
            descriptor = self._active_segment(len(line))
            try:
                written = os.write(descriptor, line)
            except OSError as error:
                raise _write_error(self._active_path, error) from error
            if written != len(line):
                # A short write leaves a truncated line, which replay skips as corrupt, and
                # the newline keeps the next event on its own line.
                self._finish_short_write(descriptor)
                raise SpoolError(
                    f"cannot write to the spool segment {str(self._active_path)!r}: only"
                    f" {written} of {len(line)} bytes were written; free disk space"
                )
            self._active_bytes += written
            self._active_events += 1
            if self._estimated_bytes is not None:
                self._estimated_bytes += written
        _stats.count("spooled")

    def seal(self) -> None:
        """Close the active segment, so that a replay in any process can take it."""
        with self._lock:
            self._seal_active()

    def close(self) -> None:
        """Seal the active segment; the spool stays usable and opens a new one when needed."""
        self.seal()

    def forget_after_fork(self) -> None:
        """Close this process's copies of the parent's descriptors without touching its files.

        Closing a copy leaves the parent's `flock` in place, because the lock is released
        only when every descriptor of the open file is closed.
        """
        descriptor, self._active_descriptor = self._active_descriptor, None
        self._active_path = None
        self._lock = threading.Lock()
        if descriptor is not None:
            _close_quietly(descriptor)

    def _active_segment(self, incoming: int) -> int:
        if (
            self._active_descriptor is not None
            and self._active_events
            and self._active_bytes + incoming > self.segment_limit
        ):
            self._seal_active()
        if self._active_descriptor is None:
            self._open_active()
        assert self._active_descriptor is not None
        return self._active_descriptor

    def _open_active(self) -> None:
        self._prepare_directory()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
        # Another process may lock a new file between its creation and our lock; then we
        # leave that file to it and try a new name.
        for _attempt in range(3):
            path = self.directory / f"{self._new_stem()}{_ACTIVE}"
            try:
                descriptor = os.open(path, flags, 0o600)
            except FileNotFoundError:
                # The directory was removed after it was prepared: create it again.
                self._prepared = False
                self._prepare_directory()
                continue
            except OSError as error:
                raise _write_error(path, error) from error
            if not _try_lock(descriptor):
                os.close(descriptor)
                continue
            try:
                os.write(descriptor, _HEADER)
            except OSError as error:
                os.close(descriptor)
                raise _write_error(path, error) from error
            self._active_descriptor = descriptor
            self._active_path = path
            self._active_bytes = len(_HEADER)
            self._active_events = 0
            if self._estimated_bytes is not None:
                self._estimated_bytes += len(_HEADER)
            return
        raise SpoolError(
            f"cannot create a spool segment in {str(self.directory)!r}: the directory keeps"
            " disappearing, or another process locked each new file first; check that only"
            " this library writes there"
        )

    def _seal_active(self) -> None:
        descriptor, path = self._active_descriptor, self._active_path
        self._active_descriptor = None
        self._active_path = None
        if descriptor is None or path is None:
            return
        try:
            if self._active_events:
                os.rename(path, path.with_suffix(_SEALED))
            else:
                os.unlink(path)
                if self._estimated_bytes is not None:
                    self._estimated_bytes -= self._active_bytes
        except OSError as error:
            # The file stays `.active`; once this process has closed it, a replay takes it
            # over as the segment of a writer that is gone.
            logger.warning("cannot seal the spool segment %s: %s", path, error)
        finally:
            _close_quietly(descriptor)
            self._active_bytes = 0
            self._active_events = 0

    def _finish_short_write(self, descriptor: int) -> None:
        try:
            os.write(descriptor, b"\n")
        except OSError:
            logger.debug("cannot end a short write in %s", self._active_path, exc_info=True)
        self._seal_active()

    def _new_stem(self, timestamp_ns: int | None = None) -> str:
        when = time.time_ns() if timestamp_ns is None else timestamp_ns
        return f"{when:020d}-{os.getpid()}-{next(_sequence):06d}"

    # Size bound

    def _make_room(self, incoming: int) -> bool:
        """Delete the oldest sealed segments until `incoming` more bytes fit; False if never."""
        if incoming + len(_HEADER) > self.max_bytes:
            return False
        if self._estimated_bytes is not None and (
            self._estimated_bytes + incoming + len(_HEADER) <= self.max_bytes
        ):
            return True

        self._prepare_directory()
        entries = self._scan()
        total = sum(entry.size for entry in entries)
        self._estimated_bytes = total
        if total + incoming + len(_HEADER) <= self.max_bytes:
            return True

        for entry in entries:
            if entry.state != _SEALED:
                continue
            freed = self._evict(entry)
            total -= freed
            if total + incoming + len(_HEADER) <= self.max_bytes:
                break
        if total + incoming + len(_HEADER) > self.max_bytes and self._active_events:
            # Only this process's own segment is left: its events are the oldest it can drop.
            active = self._active_path
            active_bytes = self._active_bytes
            self._seal_active()
            if active is not None:
                total -= self._evict(_Entry(active.with_suffix(_SEALED), active_bytes))
        self._estimated_bytes = total
        return total + incoming + len(_HEADER) <= self.max_bytes

    def _evict(self, entry: _Entry) -> int:
        """Delete one sealed segment, count its events as dropped, and return bytes freed."""
        descriptor = _open_locked(entry.path)
        if descriptor is None:
            return 0
        try:
            data = _read_all(descriptor)
            if not data.startswith(_HEADER):
                return 0
            os.unlink(entry.path)
        except OSError as error:
            logger.warning("cannot delete the spool segment %s: %s", entry.path, error)
            return 0
        finally:
            os.close(descriptor)
        events = data.count(b"\n") - 1 + (0 if data.endswith(b"\n") else 1)
        if events:
            _stats.count_drop(
                "spool_full", events, detail=f"the spool reached spool_max_bytes={self.max_bytes}"
            )
        return len(data)

    # Replay

    def claim(self) -> ClaimedSegment | None:
        """Take the oldest segment no other process holds, for replay.

        This process's active segment is sealed first, so that its events can be replayed.
        Empty segments found on the way are deleted.

        Returns:
            The claimed segment, or None when nothing is left to replay.

        Raises:
            SpoolError: The spool directory cannot be read.
        """
        self.seal()
        if not self.directory.is_dir():
            return None
        with self._lock:
            self._prepare_directory()
        for entry in self._scan():
            claimed = self._claim_entry(entry)
            if claimed is not None:
                return claimed
        return None

    def release(self, claimed: ClaimedSegment, finished: int) -> None:
        """Give back a claimed segment whose first `finished` events are done with.

        A fully finished segment is deleted. An untouched one is sealed again as it is. Else
        the remaining events are written to a new sealed segment that sorts where the claimed
        one did, and the claimed file is deleted. If they cannot be written, the whole claimed
        segment is sealed again instead, so no event is lost, though finished ones in it will
        be sent again.
        """
        remaining = claimed.bodies[finished:]
        try:
            if remaining and finished == 0 and not claimed.corrupt_lines:
                os.rename(claimed.path, claimed.path.with_suffix(_SEALED))
            else:
                if remaining:
                    self._write_sealed(remaining, timestamp_ns=_timestamp_of(claimed.path))
                os.unlink(claimed.path)
        except (OSError, SpoolError) as error:
            logger.warning(
                "cannot give back the spool segment %s (%s); it will be replayed whole",
                claimed.path,
                error,
            )
            try:
                os.rename(claimed.path, claimed.path.with_suffix(_SEALED))
            except OSError:
                logger.debug("cannot rename %s back", claimed.path, exc_info=True)
        finally:
            _close_quietly(claimed.descriptor)
        with self._lock:
            self._estimated_bytes = None

    def _claim_entry(self, entry: _Entry) -> ClaimedSegment | None:
        if entry.state not in (_SEALED, _CLAIMED, _ACTIVE) or entry.path.name in (
            self._warned_unreadable
        ):
            return None
        descriptor = _open_locked(entry.path)
        if descriptor is None:
            return None
        try:
            data = _read_all(descriptor)
            if not data:
                os.unlink(entry.path)
                os.close(descriptor)
                return None
            if not self._has_known_header(entry.path, data):
                os.close(descriptor)
                return None
            claimed_path = entry.path.with_suffix(_CLAIMED)
            if entry.path != claimed_path:
                os.rename(entry.path, claimed_path)
        except OSError as error:
            logger.warning("cannot claim the spool segment %s: %s", entry.path, error)
            _close_quietly(descriptor)
            return None
        bodies, corrupt = _parse_bodies(data, claimed_path)
        return ClaimedSegment(claimed_path, bodies, descriptor, corrupt_lines=corrupt)

    def _has_known_header(self, path: Path, data: bytes) -> bool:
        first_line = data.split(b"\n", 1)[0]
        try:
            header = json.loads(first_line)
        except ValueError:
            header = None
        version = header.get("format") if isinstance(header, dict) else None
        if version == FORMAT_VERSION:
            return True
        if path.name not in self._warned_unreadable:
            self._warned_unreadable.add(path.name)
            if isinstance(version, int) and version > FORMAT_VERSION:
                reason = (
                    f"it has format {version}, newer than this library's {FORMAT_VERSION};"
                    " upgrade mlops_guard_events in the process that replays the spool"
                )
            else:
                reason = "its first line is not a spool header; move the file out of the spool"
            logger.warning("left the spool segment %s alone: %s", path, reason)
        return False

    def _write_sealed(self, bodies: list[dict[str, Any]], *, timestamp_ns: int) -> None:
        self._prepare_directory()
        stem = self._new_stem(timestamp_ns)
        temporary = self.directory / f"{stem}{_TEMPORARY}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
        data = _HEADER + b"".join(encode_body(body) for body in bodies)
        try:
            descriptor = os.open(temporary, flags, 0o600)
        except OSError as error:
            raise _write_error(temporary, error) from error
        try:
            write_all(descriptor, data)
        except OSError as error:
            os.close(descriptor)
            os.unlink(temporary)
            raise _write_error(temporary, error) from error
        os.close(descriptor)
        os.rename(temporary, self.directory / f"{stem}{_SEALED}")

    # Inspection

    def summary(self) -> SpoolSummary:
        """Count the spooled events and bytes, and find the oldest event's timestamp.

        Raises:
            SpoolError: The spool directory cannot be read.
        """
        if not self.directory.exists():
            return SpoolSummary(self.directory, 0, 0, 0, None, 0)
        entries = self._scan(include_unreadable=True)
        events = 0
        unreadable = 0
        oldest: str | None = None
        for entry in entries:
            try:
                data = entry.path.read_bytes()
            except OSError:
                continue  # replayed and deleted since the scan
            if data and not data.startswith(_HEADER):
                unreadable += 1
                continue
            lines = [line for line in data.split(b"\n")[1:] if line.strip()]
            events += len(lines)
            if oldest is None and lines:
                oldest = _timestamp_field(lines[0])
        return SpoolSummary(
            directory=self.directory,
            events=events,
            size_bytes=sum(entry.size for entry in entries),
            segments=len(entries),
            oldest_timestamp=oldest,
            unreadable_segments=unreadable,
        )

    def purge(self) -> int:
        """Delete every segment no other process holds, without sending it.

        Returns:
            The number of events deleted.

        Raises:
            SpoolError: The spool directory cannot be read.
        """
        self.seal()
        if not self.directory.exists():
            return 0
        deleted = 0
        for entry in self._scan():
            descriptor = _open_locked(entry.path)
            if descriptor is None:
                continue
            try:
                data = _read_all(descriptor)
                if data and not data.startswith(_HEADER):
                    continue
                os.unlink(entry.path)
                deleted += len([line for line in data.split(b"\n")[1:] if line.strip()])
            except OSError as error:
                logger.warning("cannot delete the spool segment %s: %s", entry.path, error)
            finally:
                os.close(descriptor)
        with self._lock:
            self._estimated_bytes = None
        return deleted

    # The directory

    def _prepare_directory(self) -> None:
        if self._prepared:
            return
        try:
            make_private_directory(self.directory.parent)
            make_private_directory(self.directory)
            info = os.lstat(self.directory)
        except OSError as error:
            raise SpoolError(
                f"cannot create the spool directory {str(self.directory)!r}:"
                f" {error.strerror or error}; make it writable, or set"
                " MLOPS_GUARD_EVENTS_STATE_DIR to a writable directory"
            ) from error
        if not stat.S_ISDIR(info.st_mode):
            raise SpoolError(
                f"the spool directory {str(self.directory)!r} is not a directory (a symbolic"
                " link is not followed); remove it, or set MLOPS_GUARD_EVENTS_STATE_DIR"
                " elsewhere"
            )
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise SpoolError(
                f"the spool directory {str(self.directory)!r} belongs to another user (uid"
                f" {info.st_uid}); set MLOPS_GUARD_EVENTS_STATE_DIR to a directory of your own"
            )
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(self.directory, 0o700)
        self._prepared = True

    def _scan(self, *, include_unreadable: bool = False) -> list[_Entry]:
        """List the spool's segments, oldest first, and delete stale temporary files.

        Segments this process found unreadable are left out unless `include_unreadable`.
        """
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        except OSError as error:
            raise SpoolError(
                f"cannot read the spool directory {str(self.directory)!r}:"
                f" {error.strerror or error}"
            ) from error
        entries: list[_Entry] = []
        now = time.time()
        for name in names:
            path = self.directory / name
            if path.suffix not in (_ACTIVE, _SEALED, _CLAIMED, _TEMPORARY):
                continue
            try:
                info = os.lstat(path)
            except OSError:
                continue  # deleted or renamed by another process since the listing
            if not stat.S_ISREG(info.st_mode):
                continue
            if path.suffix == _TEMPORARY:
                if now - info.st_mtime > _STALE_TEMPORARY_SECONDS:
                    _unlink_quietly(path)
                continue
            if name in self._warned_unreadable and not include_unreadable:
                continue
            entries.append(_Entry(path, info.st_size))
        return entries


# File helpers


def _try_lock(descriptor: int) -> bool:
    if fcntl is None:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _open_locked(path: Path) -> int | None:
    """Open `path` for reading with an exclusive lock; None if it is gone or held elsewhere."""
    try:
        descriptor = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    except OSError:
        return None
    try:
        if not _try_lock(descriptor):
            os.close(descriptor)
            return None
        # The holder may have renamed or deleted the file before we got the lock.
        if os.stat(path, follow_symlinks=False).st_ino != os.fstat(descriptor).st_ino:
            os.close(descriptor)
            return None
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


def _read_all(descriptor: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(descriptor, 1024 * 1024)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _close_quietly(descriptor: int) -> None:
    try:
        os.close(descriptor)
    except OSError:
        logger.debug("closing spool descriptor %d failed", descriptor, exc_info=True)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        logger.debug("cannot delete %s", path, exc_info=True)


def _write_error(path: Path | None, error: OSError) -> SpoolError:
    what = "is a symbolic link" if error.errno == errno.ELOOP else (error.strerror or str(error))
    return SpoolError(
        f"cannot write the spool segment {str(path)!r}: {what}; free disk space or set"
        " MLOPS_GUARD_EVENTS_STATE_DIR to a writable directory"
    )


def _parse_bodies(data: bytes, path: Path) -> tuple[list[dict[str, Any]], int]:
    """Return the event bodies after the header and the number of corrupt lines skipped.

    The corrupt and truncated lines are counted as dropped.
    """
    lines = data.split(b"\n")[1:]
    # A file that does not end in a newline ends in a line cut off by a crash.
    truncated = lines.pop() if lines else b""
    bodies: list[dict[str, Any]] = []
    corrupt = 1 if truncated.strip() else 0
    for line in lines:
        if not line.strip():
            continue
        body = _decode(line)
        if body is None:
            corrupt += 1
        else:
            bodies.append(body)
    if corrupt:
        _stats.count_drop(
            "spool_corrupt", corrupt, detail=f"corrupt or truncated lines in {path.name}"
        )
    return bodies, corrupt


def _decode(line: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("eventType"), str):
        return None
    return body


def _timestamp_of(path: Path) -> int:
    try:
        return int(path.name.split("-", 1)[0])
    except ValueError:
        return time.time_ns()


def _timestamp_field(line: bytes) -> str | None:
    body = _decode(line)
    value = body.get("timestamp") if body is not None else None
    return value if isinstance(value, str) else None
