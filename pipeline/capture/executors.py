"""Where captures are decoded: in this process, a local process pool, or a Ray cluster.

Each executor takes CaptureJobs and yields (job, result or error) as captures finish, in any
order; the caller records each result in the database as it arrives. A failure inside one
capture (a decoder bug, memory) comes back as that capture's error; the others go on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.pool import Pool
from typing import Any

from pipeline.capture.stage import CaptureJob, CaptureResult, run_capture

Outcome = tuple[CaptureJob, CaptureResult | BaseException]


@dataclass(frozen=True)
class CaptureFailure:
    """A capture's stage failed (maybe in another process): the first cause, as text."""

    type_name: str
    message: str

    def describe(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


def _describe(exc: BaseException) -> CaptureFailure:
    from pipeline.errors import InputError

    if isinstance(exc, InputError):
        return CaptureFailure("InputError", exc.msg)
    text = str(exc).strip()
    return CaptureFailure(type(exc).__name__, text.splitlines()[0] if text else "")


def _run_safely(job: CaptureJob) -> tuple[CaptureJob, CaptureResult | CaptureFailure]:
    try:
        return job, run_capture(job)
    except Exception as exc:  # reported as this capture's failure, in the parent
        return job, _describe(exc)


def _ignore_interrupts() -> None:
    # why: Ctrl-C reaches the whole process group; the parent stops the workers itself, so
    # they must not print tracebacks of their own
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_inline(jobs: list[CaptureJob]) -> Iterator[tuple[CaptureJob, Any]]:
    for job in jobs:
        yield _run_safely(job)


class PoolRunner:
    """Captures in a pool of `workers` processes (forkserver: clean processes, no inherited
    DuckDB connection or threads)."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["pipeline.capture.stage"])
        self.pool: Pool = context.Pool(workers, initializer=_ignore_interrupts)

    def run(self, jobs: list[CaptureJob]) -> Iterator[tuple[CaptureJob, Any]]:
        yield from self.pool.imap_unordered(_run_safely, jobs)

    def close(self, *, stop: bool = False) -> None:
        if stop:
            self.pool.terminate()
        else:
            self.pool.close()
        self.pool.join()


class RayRunner:
    """Captures as Ray tasks: `address` is a cluster's address, or `local` to start one here.

    The data directory must be a path every Ray worker sees (shared storage), and natlens must
    be installed on the workers.
    """

    def __init__(self, address: str) -> None:
        try:
            import ray
        except ImportError as exc:
            raise RuntimeError("--ray needs Ray: pip install 'natlens[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address == "local":
                ray.init(**kwargs)
            else:
                ray.init(address=address, **kwargs)
        self.task = ray.remote(_run_safely)
        self.pending: list[Any] = []

    def run(self, jobs: list[CaptureJob]) -> Iterator[tuple[CaptureJob, Any]]:
        self.pending = [self.task.remote(job) for job in jobs]
        while self.pending:
            done, self.pending = self.ray.wait(self.pending, num_returns=1)
            yield self.ray.get(done[0])

    def close(self, *, stop: bool = False) -> None:
        for ref in self.pending if stop else []:
            self.ray.cancel(ref, force=True)
        self.ray.shutdown()
