"""Downloads that run ahead of the compressor, so the CPU rarely waits on the network.

Two policies, each with its number here and its measurements in docs/performance.md:
- a window refilled in bursts: once fewer than ``refill_at`` items are queued (the one about to be compressed
  included), enough are started to make ``ahead``, because downloads started together cost less CPU each than
  one started per image compressed;
- a chunk's first download runs alone for up to ``first_alone_seconds``: nothing is compressing yet, so the core
  waits for that image only, and it arrives sooner without three others beside it. Bounded, so a slow origin does
  not hold the rest of the chunk back.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

THREADS = 4
REFILL_AT = 4
AHEAD = 8
FIRST_ALONE_SECONDS = 0.05

Item = TypeVar("Item")
Result = TypeVar("Result")


class DownloadWindow(Generic[Item, Result]):
    """``fetch`` run on a pool of threads kept across chunks (a pool per chunk started four threads a task)."""

    def __init__(
        self,
        fetch: Callable[[Item], Result],
        *,
        threads: int = THREADS,
        refill_at: int = REFILL_AT,
        ahead: int = AHEAD,
        first_alone_seconds: float = FIRST_ALONE_SECONDS,
    ) -> None:
        self._fetch = fetch
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="download")
        self.refill_at = refill_at
        self.ahead = ahead
        self.first_alone_seconds = first_alone_seconds

    def over(self, items: list[Item]) -> Iterator[tuple[Item, Future[Result]]]:
        """Each item in order with its download, started ahead as the policies above say."""
        waiting = iter(items)
        window: deque[tuple[Item, Future[Result]]] = deque()
        if (first := next(waiting, None)) is not None:
            download = self._pool.submit(self._fetch, first)
            window.append((first, download))
            wait([download], timeout=self.first_alone_seconds)
        while True:
            if len(window) < self.refill_at:
                for item in itertools.islice(waiting, self.ahead - len(window)):
                    window.append((item, self._pool.submit(self._fetch, item)))
            if not window:
                return
            yield window.popleft()
