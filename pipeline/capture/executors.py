"""Where captures are decoded: in this process, in worker processes, or on a Ray cluster.

Each runner takes CaptureJobs and yields (job, CaptureResult or CaptureFailure) as captures
finish, in any order; the caller records each result in the database as it arrives. A failure
inside one capture (a decoder bug, memory) comes back as that capture's failure; the others go
on. Local workers are plain `python -m natlens.capture` child processes (JSON lines on
stdin/stdout), not forks of this process.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .stage import CaptureJob, CaptureResult, run_capture
from .worker import failure_text, result_from_json, result_to_json

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class CaptureFailure:
    """A capture's stage failed (maybe in another process): the first cause, as text."""

    type_name: str
    message: str

    def describe(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


Done = tuple[CaptureJob, CaptureResult | CaptureFailure]


def _run_safely(job: CaptureJob) -> Done:
    try:
        return job, run_capture(job)
    except Exception as exc:  # reported as this capture's failure
        return job, CaptureFailure(*failure_text(exc))


def default_jobs() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run_inline(jobs: list[CaptureJob]) -> Iterator[Done]:
    for job in jobs:
        yield _run_safely(job)


def _die_with_parent() -> None:
    # why: a parent killed with SIGKILL cannot stop its workers; the kernel does (Linux), so no
    # orphan goes on writing while the next run starts
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class RayUnavailableError(Exception):
    """--ray was given but Ray is not installed."""


def _start_worker() -> subprocess.Popen[str]:
    return subprocess.Popen(
        # why: by this package's own name: `natlens` installed, `pipeline` in the repo
        [sys.executable, "-m", str(__package__)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent,
    )


class PoolRunner:
    """Captures in `workers` worker processes, one capture at a time each. A worker that dies
    (the kernel's OOM killer, a crash in native code) fails its capture and is replaced."""

    def __init__(self, workers: int) -> None:
        self.workers = [_start_worker() for _ in range(workers)]

    def run(self, jobs: list[CaptureJob]) -> Iterator[Done]:
        todo = list(reversed(jobs))
        busy: dict[int, CaptureJob] = {}
        selector = selectors.DefaultSelector()
        for index, worker in enumerate(self.workers):
            assert worker.stdout is not None
            selector.register(worker.stdout, selectors.EVENT_READ, index)
        for index in range(len(self.workers)):
            if todo:
                busy[index] = self._send(index, todo.pop())
        while busy:
            for key, _ in selector.select():
                index = int(key.data)
                line = self.workers[index].stdout.readline()  # type: ignore[union-attr]
                job = busy.pop(index)
                if not line:
                    yield job, self._replace(selector, index)
                else:
                    answer: dict[str, Any] = json.loads(line)
                    if "ok" in answer:
                        yield job, result_from_json(answer["ok"])
                    else:
                        yield job, CaptureFailure(*answer["failed"])
                if todo:
                    busy[index] = self._send(index, todo.pop())
        selector.close()

    def _replace(self, selector: selectors.BaseSelector, index: int) -> CaptureFailure:
        """A worker died on its capture: start another in its place; the capture failed."""
        dead = self.workers[index]
        code = dead.wait()
        assert dead.stdout is not None
        selector.unregister(dead.stdout)
        dead.stdout.close()
        self.workers[index] = _start_worker()
        selector.register(self.workers[index].stdout, selectors.EVENT_READ, index)  # type: ignore[arg-type]
        return CaptureFailure("WorkerDied", f"the capture worker exited with status {code}")

    def _send(self, index: int, job: CaptureJob) -> CaptureJob:
        stdin = self.workers[index].stdin
        assert stdin is not None
        stdin.write(json.dumps(dataclasses.asdict(job)) + "\n")
        stdin.flush()
        return job

    def close(self, *, stop: bool = False) -> None:
        for worker in self.workers:
            if stop:
                worker.kill()
            elif worker.stdin is not None:
                worker.stdin.close()
        for worker in self.workers:
            worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()


class RayRunner:
    """Captures as Ray tasks: `address` is a cluster's address, or `local` to start one here.

    The data directory must be a path every Ray worker sees (shared storage), and natlens must
    be installed on the workers.
    """

    def __init__(self, address: str) -> None:
        try:
            import ray
        except ImportError as exc:
            raise RayUnavailableError("--ray needs Ray: pip install 'natlens[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address == "local":
                ray.init(**kwargs)
            else:
                ray.init(address=address, **kwargs)
        self.task = ray.remote(_ray_task)
        self.pending: dict[Any, CaptureJob] = {}

    def run(self, jobs: list[CaptureJob]) -> Iterator[Done]:
        self.pending = {self.task.remote(job): job for job in jobs}
        while self.pending:
            done, _ = self.ray.wait(list(self.pending), num_returns=1)
            job = self.pending.pop(done[0])
            answer: dict[str, Any] = self.ray.get(done[0])
            if "ok" in answer:
                yield job, result_from_json(answer["ok"])
            else:
                yield job, CaptureFailure(*answer["failed"])

    def close(self, *, stop: bool = False) -> None:
        for ref in list(self.pending) if stop else []:
            self.ray.cancel(ref, force=True)
        self.ray.shutdown()


def _ray_task(job: CaptureJob) -> dict[str, Any]:
    """What a Ray worker runs: plain data back, so no natlens class crosses the wire."""
    try:
        return result_to_json(run_capture(job))
    except Exception as exc:
        return {"failed": failure_text(exc)}
