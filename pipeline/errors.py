"""Errors that name their input, and the process exit codes the CLI maps them to."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented exit codes of the `natlens` command (see README, 'Exit codes')."""

    OK = 0
    RECORD_ERRORS = 1  # some records were rejected and --strict was given
    USAGE = 2  # bad command line (Typer/Click also uses 2)
    INPUT = 3  # an input file or path could not be read at all
    DATABASE = 4  # the DuckDB file could not be opened, a query failed, a report not written
    CHECKS = 5  # a data check (queries/checks) returned offending rows under --strict
    LOCKED = 6  # another analyze holds the database (and --wait, if given, ran out)
    FINDINGS = 7  # --fail-on LEVEL and the findings view holds a finding of that severity or worse
    INTERNAL = 70  # a bug: one line on stderr, the full trace in a file (sysexits EX_SOFTWARE)


class InputError(Exception):
    """A whole input that cannot be used: names the file and, where known, line or byte offset."""

    def __init__(
        self,
        path: str,
        msg: str,
        *,
        line: int | None = None,
        offset: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(msg)
        self.path = path
        self.msg = msg
        self.line = line
        self.offset = offset
        self.hint = hint

    def location(self) -> str:
        if self.line is not None:
            return f"{self.path}:{self.line}"
        if self.offset is not None:
            return f"{self.path}:@{self.offset}"
        return self.path

    def __str__(self) -> str:
        text = f"{self.location()}: error: {self.msg}"
        if self.hint:
            text += f" hint: {self.hint}"
        return text


class QueryError(Exception):
    """A SQL file or a user query failed; names the file (or 'query') and DuckDB's message."""

    def __init__(self, where: str, msg: str) -> None:
        super().__init__(f"{where}: error: {msg}")
        self.where = where
        self.msg = msg
