"""A capture worker process: `python -m natlens.capture` (serve, via __main__.py) reads one
CaptureJob per line (JSON) on stdin and answers each with one line (JSON) on stdout: the
CaptureResult, or the failure's type and first line. It exits at the end of its input.

The parent (pipeline/capture/executors.py) starts these as plain child processes: nothing is
inherited but the file descriptors it passes, so a parent holding DuckDB or Polars threads is
never forked, and the parent stops them by closing their input or killing them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from typing import Any

from ..ingest.records import RecordError
from .stage import CaptureJob, CaptureResult, run_capture


def result_to_json(result: CaptureResult) -> dict[str, Any]:
    return {"ok": dataclasses.asdict(result)}


def result_from_json(data: dict[str, Any]) -> CaptureResult:
    fields = dict(data)
    fields["first_errors"] = [RecordError(**e) for e in fields["first_errors"]]
    return CaptureResult(**fields)


def failure_text(exc: BaseException) -> tuple[str, str]:
    """A failure's type name and first line (InputError: its message without the path)."""
    from ..errors import InputError

    if isinstance(exc, InputError):
        return "InputError", exc.msg
    text = str(exc).strip()
    return type(exc).__name__, text.splitlines()[0] if text else ""


def serve() -> None:
    # why: Ctrl-C reaches the whole process group; the parent decides when workers stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # why: stdout is the answers' channel and nothing else may write to it: a library that
    # prints (DuckDB's progress bar on a long query, from C++) would corrupt the protocol. The
    # answers keep a copy of the pipe; file descriptor 1 (and sys.stdout) become stderr.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        job = CaptureJob(**json.loads(line))
        try:
            answer = result_to_json(run_capture(job))
        except Exception as exc:  # this capture failed; the worker serves the next one
            answer = {"failed": failure_text(exc)}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve()
