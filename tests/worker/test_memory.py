"""The pool process's memory helpers: RSS readings and the ceiling."""

from __future__ import annotations

import mmap
from pathlib import Path

from batchpress.config import Settings
from batchpress.worker.celery_app import configure, make_celery
from batchpress.worker.memory import ceiling_kib, over_ceiling, peak_rss_bytes, rss_bytes

MIB = 1024 * 1024


def test_rss_readings_are_this_process() -> None:
    before = rss_bytes()
    # A mapping of its own, touched page by page: freed heap pages the test process already holds would not count.
    ballast = mmap.mmap(-1, 64 * MIB)
    for offset in range(0, len(ballast), mmap.PAGESIZE):
        ballast[offset] = 1
    assert rss_bytes() > before + 48 * MIB
    assert peak_rss_bytes() > before + 48 * MIB
    ballast.close()


def test_over_ceiling(tmp_path: Path) -> None:
    assert over_ceiling(Settings(data_dir=tmp_path, worker_max_rss_mb=1))
    assert not over_ceiling(Settings(data_dir=tmp_path, worker_max_rss_mb=0))
    assert not over_ceiling(Settings(data_dir=tmp_path, worker_max_rss_mb=1_000_000))


def test_celery_replaces_a_pool_process_past_the_ceiling(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, worker_max_rss_mb=600)
    assert ceiling_kib(settings) == 600 * 1024
    assert configure(make_celery(settings), settings).conf.worker_max_memory_per_child == 600 * 1024
    off = Settings(data_dir=tmp_path, worker_max_rss_mb=0)
    assert make_celery(off).conf.worker_max_memory_per_child is None
