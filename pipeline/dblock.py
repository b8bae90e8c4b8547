"""One `analyze` at a time per database: an exclusive lock file beside it (``<db>.lock``).

`fcntl.flock` on the lock file; the kernel releases it when the holder exits, however it
exits (a SIGKILL included), so a stale lock never needs cleaning. The holder writes its pid,
command line and start time into the file, which a waiting run shows when it gives up. The file
is never deleted (deleting it while another process waits on it would let two runs in).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LOCK_SUFFIX = ".lock"
POLL_S = 0.1


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as written by the holder (fields may be unknown)."""

    pid: int | None
    command: str | None
    started: str | None

    def describe(self) -> str:
        if self.pid is None:
            return "another natlens process (it has not written who it is yet)"
        return f"pid {self.pid} ({self.command or '?'}), started {self.started or '?'}"


class LockedError(Exception):
    """The database is held by another run, and the wait (if any) ran out."""

    def __init__(self, lock_path: Path, holder: Holder, waited_s: float) -> None:
        self.lock_path = lock_path
        self.holder = holder
        self.waited_s = waited_s
        waited = f" after waiting {waited_s:g} s" if waited_s else ""
        super().__init__(
            f"{lock_path}: error: the database is in use by {holder.describe()}{waited}; "
            "hint: pass --wait SECONDS to wait for it"
        )


def lock_path_for(db: Path) -> Path:
    return db.with_name(db.name + LOCK_SUFFIX)


@contextmanager
def exclusive(db: Path, wait_s: float = 0.0, command: str | None = None) -> Iterator[Path]:
    """Hold ``<db>.lock`` for the block; wait up to `wait_s` seconds for another holder."""
    path = lock_path_for(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, wait_s)
        _write_holder(fd, command)
        yield path
    finally:
        os.close(fd)  # releases the lock


def _acquire(fd: int, path: Path, wait_s: float) -> None:
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            waited = time.monotonic() - started
            if waited >= wait_s:
                raise LockedError(path, read_holder(path), wait_s) from None
            time.sleep(min(POLL_S, max(0.0, wait_s - waited)))


def _write_holder(fd: int, command: str | None) -> None:
    info = {
        "pid": os.getpid(),
        "command": command or " ".join(sys.argv),
        "started": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    data = (json.dumps(info) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def read_holder(path: Path) -> Holder:
    """Who wrote the lock file last (best effort: the holder may be writing it right now)."""
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return Holder(None, None, None)
    if not isinstance(info, dict):
        return Holder(None, None, None)
    pid = info.get("pid")
    return Holder(
        pid if isinstance(pid, int) else None,
        str(info["command"]) if info.get("command") is not None else None,
        str(info["started"]) if info.get("started") is not None else None,
    )
