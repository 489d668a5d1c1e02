"""The codec limit: the service's own ``compress_image`` over files already in memory, one process per core.

No network, database, queue or disk: what is left is decoding and encoding, the most any deployment of the
service could reach on this machine. The pool is forked once, before any thread starts, and kept for the whole
benchmark: the limit is then measured again right before each end-to-end run, so that a machine whose speed
drifts between minutes (seen on shared VMs) moves both sides of the ratio together.
"""

from __future__ import annotations

import multiprocessing
import time

from batchpress.processing.compress import compress_image
from benchmarks.corpus import Corpus

_FILES: dict[str, list[bytes]] = {}


def _load(files: dict[str, list[bytes]]) -> None:
    _FILES.update(files)


def _compress(job: tuple[str, int]) -> int:
    name, index = job
    return len(compress_image(_FILES[name][index], quality=50).data)


class CodecPool:
    """``processes`` processes holding every set's files; ``run(name)`` times one pass over a set."""

    def __init__(self, sets: list[Corpus], processes: int) -> None:
        self.sizes = {c.name: len(c.photos) for c in sets}
        files = {c.name: [p.data for p in c.photos] for c in sets}
        self._pool = multiprocessing.get_context("fork").Pool(processes, initializer=_load, initargs=(files,))
        # One image per process first, so imports and the codecs' first-call set-up are not timed.
        first = next(iter(self.sizes))
        self._pool.map(_compress, [(first, i % self.sizes[first]) for i in range(processes)], chunksize=1)

    def run(self, name: str) -> float:
        """Seconds to compress the whole set once."""
        started = time.perf_counter()
        for _ in self._pool.imap_unordered(_compress, [(name, i) for i in range(self.sizes[name])], chunksize=1):
            pass
        return time.perf_counter() - started

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()

    def __enter__(self) -> CodecPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
