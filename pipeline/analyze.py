"""The load step of `natlens analyze`: every file of the run into the database, in order.

Text files are parsed here; captures go to an executor (this process, a process pool or Ray)
and are recorded as they finish. Interrupts (KeyboardInterrupt, or the CLI's Terminated for
SIGTERM) pass through: everything recorded before them stays, the rest is redone next time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .bundle import InputFile, bundle_ids_in
from .capture.executors import (
    CaptureFailure,
    PoolRunner,
    RayRunner,
    default_jobs,
    run_inline,
)
from .capture.stage import CaptureJob, CaptureResult
from .db import refresh_parquet_views
from .loader import (
    FileOutcome,
    PlannedFile,
    load_text,
    memory_limit_given,
    plan_file,
    prepare,
    prune_missing,
    record_capture,
    record_failure,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LoadOptions:
    engine: str = "fast"
    jobs: int | None = None  # None: one per core
    ray: str | None = None  # a Ray address, or "local"


def bundle_ids_of(paths: list[Path], files: list[InputFile], bundle_id: str | None) -> set[str]:
    """The bundles given as directories: their files that are gone from disk are dropped."""
    ids: set[str] = set()
    for path in paths:
        if path.is_dir():
            ids.update(bundle_ids_in(path, bundle_id))  # a folder of bundles: one id each
    return ids


def load_all(
    con: duckdb.DuckDBPyConnection,
    files: list[InputFile],
    *,
    options: LoadOptions,
    bundle_ids: set[str],
    started: Progress = lambda _: None,
    finished: Progress = lambda _: None,
    done: Callable[[FileOutcome], None] = lambda _: None,
) -> list[FileOutcome]:
    """Load the files; `started`/`finished` are called with each file's display name, `done`
    with each file's outcome as it is recorded (for progress: bytes and packets done)."""

    def finish(outcome: FileOutcome) -> None:
        done(outcome)
        finished(outcome.file.display)

    prepare(con)
    outcomes = prune_missing(con, bundle_ids, files)
    workers = options.jobs or default_jobs()
    threads = max(1, default_jobs() // max(workers, 1))
    if options.jobs is not None:
        # why: --jobs N is the number of cores the run uses (like make -j): N captures at once,
        # and DuckDB's threads here (the cross-capture step) capped at N too
        con.execute(f"SET threads = {max(options.jobs, 1)}")
    limit = memory_limit_given(con)
    planned: list[PlannedFile] = []
    for f in files:
        started(f.display)
        planned.append(plan_file(con, f, options.engine, threads, limit))
    captures: dict[str, PlannedFile] = {}
    for p in planned:
        if p.outcome is not None:
            if p.outcome.status == "failed":  # unreadable: stored, tried again next run
                p.outcome = record_failure(con, p, None, p.outcome.reason or "cannot read")
            outcomes.append(p.outcome)
            finish(p.outcome)
        elif p.job is None:
            started(p.file.display)
            outcomes.append(load_text(con, p))
            finish(outcomes[-1])
        else:
            captures[p.job.capture_id] = p
    if captures:
        started(f"{len(captures)} capture(s) in {min(workers, len(captures))} worker(s)")
    outcomes.extend(_load_captures(con, captures, options, workers, finish))
    refresh_parquet_views(con)
    return outcomes


def _load_captures(
    con: duckdb.DuckDBPyConnection,
    captures: dict[str, PlannedFile],
    options: LoadOptions,
    workers: int,
    finish: Callable[[FileOutcome], None],
) -> list[FileOutcome]:
    jobs: list[CaptureJob] = [p.job for p in captures.values() if p.job is not None]
    if not jobs:
        return []
    # why: the cores (--jobs, default all) are shared by the captures that run at once; one
    # capture alone gets all of them
    cores = options.jobs or default_jobs()
    threads = max(1, cores // min(max(workers, 1), len(jobs)))
    jobs = [dataclasses.replace(job, threads=threads) for job in jobs]
    runner: PoolRunner | RayRunner | None = None
    if options.ray is not None:
        runner = RayRunner(options.ray)
    elif workers > 1 and len(jobs) > 1:
        runner = PoolRunner(min(workers, len(jobs)))
    outcomes: list[FileOutcome] = []
    stopped = True
    try:
        results = run_inline(jobs) if runner is None else runner.run(jobs)
        for job, result in results:
            p = captures[job.capture_id]
            kind = p.sniffed.kind if p.sniffed else None
            if isinstance(result, CaptureResult):
                outcomes.append(record_capture(con, p, result))
            else:
                why = result.describe() if isinstance(result, CaptureFailure) else str(result)
                outcomes.append(record_failure(con, p, kind, why, options.engine))
            finish(outcomes[-1])
        stopped = False
    finally:
        if runner is not None:
            runner.close(stop=stopped)
    return outcomes


def load_file(con: duckdb.DuckDBPyConnection, f: InputFile, engine: str = "fast") -> FileOutcome:
    """Load one file in this process (for the API and tests); see load_all."""
    outcomes = load_all(con, [f], options=LoadOptions(engine, jobs=1), bundle_ids=set())
    [outcome] = [o for o in outcomes if o.file == f]
    return outcome
