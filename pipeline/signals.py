"""SIGINT and SIGTERM as exceptions in the main thread, with the signal remembered.

SIGINT raises KeyboardInterrupt (as Python does), SIGTERM raises Terminated; the CLI catches
both, lets the transaction in progress roll back, prints one line and exits 130 or 143.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType


class Terminated(Exception):  # noqa: N818 (named like KeyboardInterrupt)
    """SIGTERM arrived."""


@dataclass
class Caught:
    signum: int | None = None


_ACTIVE: list[Caught] = []


def interrupted() -> bool:
    """Has SIGINT or SIGTERM arrived while `interrupts()` is active? (DuckDB turns a signal
    during a query into its own error, `Query interrupted`: that is this interrupt, not a
    database failure.)"""
    return any(c.signum is not None for c in _ACTIVE)


@contextmanager
def interrupts() -> Iterator[Caught]:
    caught = Caught()
    _ACTIVE.append(caught)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        first = caught.signum is None
        caught.signum = signum
        if first:
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        _ACTIVE.remove(caught)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
