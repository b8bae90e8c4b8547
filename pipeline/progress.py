"""Progress of an `analyze` run on stderr: files (bytes, packets, rate, ETA), then named steps.

On a terminal: a bar over the run's bytes with the file at hand, packets done, rate and ETA, and
one line per later step with its time. Without a terminal (cron, a pipe): a plain status line
every few seconds (`NATLENS_PROGRESS_SECONDS`, default 5) and one line per finished step.
With `--quiet`: nothing. Bytes are counted when a file is recorded (a capture when its worker
is done with it), so the rate is that of whole files.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .bundle import InputFile
from .loader import FileOutcome

DEFAULT_INTERVAL_S = 5.0
INTERVAL_ENV = "NATLENS_PROGRESS_SECONDS"


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _interval() -> float:
    try:
        return max(0.1, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


class RunProgress:
    """What an analyze has done so far, shown as `mode` says: bar, lines or off."""

    def __init__(self, console: Console, *, quiet: bool) -> None:
        self.console = console
        self.mode = "off" if quiet else ("bar" if console.is_terminal else "lines")
        self.interval = _interval()
        self.files_total = 0
        self.files_done = 0
        self.bytes_total = 0
        self.bytes_done = 0
        self.packets_done = 0
        self.current = ""
        self.step_name = ""
        self.started_at = time.monotonic()
        self._sizes: dict[str, int] = {}
        self._loading = False

    # -- the load step ------------------------------------------------------------------------

    @contextmanager
    def loading(
        self, files: list[InputFile]
    ) -> Iterator[tuple[Callable[[str], None], Callable[[FileOutcome], None]]]:
        """Yields the (started, done) callbacks for load_all."""
        for f in files:
            try:
                self._sizes[f.display] = f.path.stat().st_size
            except OSError:
                self._sizes[f.display] = 0
        self.files_total, self.bytes_total = len(files), sum(self._sizes.values())
        self._loading, t0 = True, time.monotonic()
        self.started_at = t0
        if self.mode == "bar":
            with self._bar() as (started, done):
                yield started, done
        else:
            with self._ticker("loading"):
                yield self._started, self._done
        self._loading = False
        self._said(f"loading done in {time.monotonic() - t0:.1f}s: {self._counts()}")

    def _started(self, name: str) -> None:
        self.current = name

    def _done(self, outcome: FileOutcome) -> None:
        self.files_done += 1
        self.bytes_done += self._sizes.get(outcome.file.display, 0)
        if outcome.engine is not None:  # a capture: its records are packets
            self.packets_done += outcome.records_read

    @contextmanager
    def _bar(
        self,
    ) -> Iterator[tuple[Callable[[str], None], Callable[[FileOutcome], None]]]:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[packets]} packets"),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        ) as bar:
            task = bar.add_task("loading", total=self.bytes_total or None, packets=0)

            def started(name: str) -> None:
                self._started(name)
                bar.update(task, description=f"loading {name}")

            def done(outcome: FileOutcome) -> None:
                self._done(outcome)
                bar.update(task, completed=self.bytes_done, packets=self.packets_done)

            yield started, done

    def _counts(self) -> str:
        return (
            f"{self.files_done}/{self.files_total} files, {human_bytes(self.bytes_done)} of "
            f"{human_bytes(self.bytes_total)}, {self.packets_done} packets"
        )

    def status_line(self) -> str:
        """One plain line: the load's counts, rate and ETA, or the step at hand and its time."""
        elapsed = time.monotonic() - self.started_at
        if not self._loading:
            return f"natlens: {self.step_name} ({elapsed:.0f}s)"
        rate = self.bytes_done / elapsed if elapsed > 0 else 0.0
        eta = (
            f"ETA {(self.bytes_total - self.bytes_done) / rate:.0f}s" if rate > 0 else "ETA unknown"
        )
        at = f"; at {self.current}" if self.current else ""
        return f"natlens: loading: {self._counts()}, {human_bytes(rate)}/s, {eta}{at}"

    # -- later steps --------------------------------------------------------------------------

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A named step; its time is said when it ends (not when it fails)."""
        self.step_name, t0 = name, time.monotonic()
        self.started_at = t0
        if self.mode == "bar":
            with self.console.status(name):
                yield
        else:
            with self._ticker(name):
                yield
        self._said(f"{name} done in {time.monotonic() - t0:.1f}s")

    def _said(self, text: str) -> None:
        if self.mode != "off":
            self.console.print(f"natlens: {text}", markup=False, highlight=False)

    @contextmanager
    def _ticker(self, name: str) -> Iterator[None]:
        """Lines mode: a status line every `interval` seconds while the block runs."""
        if self.mode != "lines":
            yield
            return
        self._said(f"{name} ...")
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(self.interval):
                self.console.print(self.status_line(), markup=False, highlight=False)

        thread = threading.Thread(target=tick, name="natlens-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
