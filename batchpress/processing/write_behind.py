"""Results written behind the compressor: one thread writes while the next image compresses.

A write is several round trips to the database (~5 ms on PostgreSQL with both cores busy), and the compressor used
to wait through each one, and at every chunk's end through the request's finish as well (docs/performance.md).
Writes run one at a time, in order, and the compressor never gets more than one write ahead. They are spaced
``every_seconds`` apart, counted across chunks: progress moves twice a second per process, a crash redoes at most
that much work, and a result after a pause (a new batch's first) is written at once.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

EVERY_SECONDS = 0.5

Write = TypeVar("Write")


class WriteBehind(Generic[Write]):
    """Runs ``write`` for each submitted item on a thread of its own."""

    def __init__(
        self,
        write: Callable[[Write], None],
        *,
        every_seconds: float = EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self.every_seconds = every_seconds
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="record")
        self._writing: Future[None] | None = None
        self._queued_at = -math.inf

    def due(self) -> bool:
        """Whether a write queued now would keep the spacing."""
        return self._clock() - self._queued_at >= self.every_seconds

    def submit(self, item: Write) -> None:
        """Queue ``item`` after the write in flight, waiting for that one first."""
        self.drain()
        context = contextvars.copy_context()  # log lines keep naming the request
        self._writing = self._pool.submit(context.run, self._write, item)
        self._queued_at = self._clock()

    def drain(self) -> None:
        """Wait for the write in flight, if any (a pool process that exits calls this first)."""
        if self._writing is not None:
            wait([self._writing])
