"""The codec limit: the service's own ``compress_image`` over files already in memory, one process per core.

No network, database, queue or disk: what is left is decoding and encoding, the most any deployment of the
service could reach on this machine. Call before any thread is started, since the pool forks.
"""

from __future__ import annotations

import multiprocessing
import time

from batchpress.processing.compress import compress_image
from benchmarks.corpus import Corpus

_FILES: list[bytes] = []


def _load(files: list[bytes]) -> None:
    _FILES[:] = files


def _compress(index: int) -> int:
    return len(compress_image(_FILES[index], quality=50).data)


def codec_runs(corpus: Corpus, processes: int, repeats: int) -> list[float]:
    """Seconds to compress the whole corpus, once per repeat, after one warm-up image per process."""
    files = [p.data for p in corpus.photos]
    with multiprocessing.get_context("fork").Pool(processes, initializer=_load, initargs=(files,)) as pool:
        pool.map(_compress, range(min(processes, len(files))), chunksize=1)
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in pool.imap_unordered(_compress, range(len(files)), chunksize=1):
                pass
            runs.append(time.perf_counter() - started)
    return runs
