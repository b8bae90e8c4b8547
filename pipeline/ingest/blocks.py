"""Read a text input in blocks of whole records, so memory stays bounded whatever the file's size.

A file is read line by line and cut into blocks of about BLOCK_BYTES, each cut made before a
line where the ingestor says a record may start (``block_start(kind)`` in its module; an
ingestor without one, or a kind it cannot cut, gets the whole file as one block). A line longer
than MAX_LINE_BYTES is never held: it is read through in pieces, kept as one rejected record (its
first bytes and its length) and given to the parser as an empty line, so line numbers stay true.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import polars as pl

from .records import MAX_RAW_CHARS, ParsedChunk, RecordError

BLOCK_BYTES = 2 * 1024 * 1024
"""A block is cut at the first record start after this many bytes."""
MAX_LINE_BYTES = 1024 * 1024
"""No input format natlens reads has a line this long; a longer one is one rejected record."""
_READ_PIECE = 1024 * 1024

BlockStart = Callable[[str], bool]
"""Given one line (decoded, not stripped), whether a new record may start there."""


@dataclass
class TextBlock:
    """Consecutive lines of a file; ``first_line`` is the 1-based number of the first one."""

    text: str
    first_line: int
    long_lines: list[RecordError] = field(default_factory=list)


def open_input(path: Path) -> io.BufferedReader:
    """Open a bundle file for reading, refusing what discovery would have refused.

    why: a bundle is untrusted; between the directory walk (which skips links and special
    files) and this open, an entry may be swapped for a symlink to /etc/shadow or a FIFO.
    O_NOFOLLOW refuses a link in the last component, O_NONBLOCK keeps a FIFO from blocking the
    open, and the fstat of the opened descriptor checks what was really opened.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (changed since the bundle was read)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def decode_text(data: bytes) -> str:
    """Decode input text; undecodable bytes become U+FFFD so a line can still be located."""
    text = data.decode("utf-8", errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


def _long_line(handle: BinaryIO, head: bytes, line_no: int) -> RecordError:
    """Read through the rest of a too-long line; keep its first characters and its length."""
    chars = len(head.decode("utf-8", errors="replace"))
    piece = head
    while not piece.endswith(b"\n"):
        piece = handle.readline(_READ_PIECE)
        if not piece:
            break
        chars += len(piece.decode("utf-8", errors="replace"))
    chars -= piece.endswith(b"\n") + piece.endswith(b"\r\n")
    start = decode_text(head)[:MAX_RAW_CHARS]
    return RecordError(
        f"line of {chars} characters is longer than any record ({MAX_LINE_BYTES} bytes): "
        "not parsed",
        f"{start}… [truncated, {chars} chars]",
        line=line_no,
    )


def iter_blocks(
    path: Path, starts: BlockStart | None, block_bytes: int | None = None
) -> Iterator[TextBlock]:
    """Yield the file's blocks in order; the whole file is one block when `starts` is None."""
    block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
    lines: list[str] = []
    size = 0
    first = 1
    long_lines: list[RecordError] = []
    line_no = 0
    with open_input(path) as handle:
        while True:
            raw = handle.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            line_no += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                long_lines.append(_long_line(handle, raw, line_no))
                raw = b"\n"
            text = decode_text(raw) if line_no == 1 else raw.decode("utf-8", errors="replace")
            if starts is not None and size >= block_bytes and lines and starts(text.rstrip("\r\n")):
                yield TextBlock("".join(lines), first, long_lines)
                lines, size, first, long_lines = [], 0, line_no, []
            lines.append(text)
            size += len(raw)
    if lines or long_lines:
        yield TextBlock("".join(lines), first, long_lines)


def read_text(path: Path) -> str:
    """The whole file as text (for small files and formats that cannot be cut)."""
    with open_input(path) as handle:
        return decode_text(handle.read())


def block_start_of(module: ModuleType, kind: str) -> BlockStart | None:
    """The ingestor's record-start test for `kind`, or None when it has none."""
    finder = getattr(module, "block_start", None)
    return None if finder is None else finder(kind)


def parse_blocks(path: Path, module: ModuleType, kind: str) -> Iterator[ParsedChunk]:
    """Parse the file block by block; line numbers in rows and errors are the file's own.

    An ingestor whose checks span the whole file (a summary line that counts every record)
    offers ``parse_stream(blocks, kind)``, which keeps its state across the blocks; any other
    parses each block on its own with ``parse(text, kind)``.
    """
    long_lines: list[RecordError] = []

    def read() -> Iterator[TextBlock]:
        for block in iter_blocks(path, block_start_of(module, kind)):
            long_lines.extend(block.long_lines)
            yield block

    stream = getattr(module, "parse_stream", None)
    chunks = stream(read(), kind) if stream is not None else _each_block(module, read(), kind)
    for chunk in chunks:
        if long_lines:
            chunk.errors.extend(long_lines)
            chunk.records_read += len(long_lines)
            long_lines.clear()
        yield chunk
    if long_lines:
        yield ParsedChunk(errors=list(long_lines), records_read=len(long_lines))


def _each_block(
    module: ModuleType, blocks: Iterator[TextBlock], kind: str
) -> Iterator[ParsedChunk]:
    for block in blocks:
        chunk: ParsedChunk = module.parse(block.text, kind)
        shift = block.first_line - 1
        if shift:
            chunk.frames = {name: _shift_lines(f, shift) for name, f in chunk.frames.items()}
            chunk.errors = [_shift_error(e, shift) for e in chunk.errors]
        yield chunk


def _shift_lines(frame: pl.DataFrame, shift: int) -> pl.DataFrame:
    if "source_line" not in frame.columns:
        return frame
    return frame.with_columns(pl.col("source_line") + shift)


def _shift_error(error: RecordError, shift: int) -> RecordError:
    if error.line is None:
        return error
    return RecordError(
        error.reason, error.raw, error.line + shift, error.offset, error.is_rejection
    )


def starts_matching(pattern: str) -> BlockStart:
    """A BlockStart for lines (leading blanks ignored) that match `pattern`."""
    compiled = re.compile(pattern)
    return lambda line: compiled.match(line.lstrip()) is not None
