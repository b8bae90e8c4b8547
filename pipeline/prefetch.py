"""Run an iterator in a background thread, a few items ahead of its consumer.

The loader decodes a capture's next chunks while DuckDB inserts the current one: numpy and
DuckDB release the GIL for most of their work, so on two cores the two overlap.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield what `items` yields, produced in another thread at most `depth` items ahead.

    An exception raised by `items` is raised here, in the consumer, at the same position.
    Stopping early (closing this generator) stops the producer at its next item.
    """
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            buffer.put(_Failure(exc))

    worker = threading.Thread(target=produce, name="natlens-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():
            try:
                buffer.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)
