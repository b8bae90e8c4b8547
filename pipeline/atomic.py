"""Write an output file whole or not at all: a full disk or a crash leaves the previous one."""

from __future__ import annotations

import os
import secrets
from contextlib import suppress
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file beside it, fsynced, then renamed.

    A link at `path` is written through (its target is replaced). A new file gets the usual
    permissions (0666 less the umask), a replaced one keeps its own. Raises OSError (e.g. ENOSPC)
    with `path` as it was and no temporary file left behind.
    """
    target = Path(os.path.realpath(path))
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    # why: O_EXCL never writes through a file or link that someone put at this name
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        with suppress(FileNotFoundError):
            os.chmod(temporary, os.stat(target).st_mode & 0o7777)
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; some filesystems cannot fsync a folder, which is no error."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temporary_beside(path: Path) -> tuple[Path, Path]:
    """(target, temporary): the file a link at `path` points to, and an unused name beside it."""
    target = Path(os.path.realpath(path))
    return target, target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")


def replace_with(temporary: Path, target: Path) -> None:
    """Make a finished `temporary` file `target`: fsynced, permissions of the file it replaces
    (a new one keeps the usual 0666 less the umask), renamed over it, the rename made durable.
    On failure `temporary` is removed and `target` is left as it was."""
    try:
        fd = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        with suppress(FileNotFoundError):
            os.chmod(temporary, os.stat(target).st_mode & 0o7777)
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(target.parent)
