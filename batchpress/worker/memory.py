"""A pool process's memory: an allocator that gives big buffers back, and a ceiling past which the process is replaced.

A 50 MP image is a few 200 MB buffers that live for one image. glibc serves them from its heap once a freed buffer
has raised its dynamic mmap threshold (up to 32 MB), and a heap fragmented by the download threads' allocations
keeps them: a pool process then sits on the memory of its largest image and grows with each new mix of sizes.
Fixing the threshold puts every big buffer in its own mapping, returned to the system when freed; figures in
docs/security.md ("Memory per worker process"), measured with ``make bench-memory``.

The ceiling (``BATCHPRESS_WORKER_MAX_RSS_MB``) catches what the budget did not foresee: Celery replaces a pool
process whose peak passed it once its task ends (``worker_max_memory_per_child``), and ``over_ceiling`` lets the
chunk loop stop between images.
"""

from __future__ import annotations

import ctypes
import os
import resource

from batchpress.config import Settings

# mallopt parameters (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Buffers above this get a mapping of their own: every image buffer and download, none of the small objects.
MMAP_THRESHOLD_BYTES = 1024 * 1024
# The compressing thread and the download threads need no arena each; two keep lock contention negligible.
ARENA_MAX = 2

MIB = 1024 * 1024
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _glibc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None  # musl and macOS have neither


def tune_allocator() -> bool:
    """Set glibc's allocator up for a process that handles a few huge buffers at a time; False where not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and libc.mallopt(_M_ARENA_MAX, ARENA_MAX))


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system, so the RSS read next is what the process really holds."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def rss_bytes() -> int:
    """This process's resident memory now."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except OSError:  # no /proc: the peak is the best answer there is
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """This process's peak resident memory, what Celery's ``worker_max_memory_per_child`` compares (KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def ceiling_kib(settings: Settings) -> int | None:
    """Celery's ``worker_max_memory_per_child`` for these settings; None when the ceiling is off."""
    return settings.worker_max_rss_mb * 1024 or None


def over_ceiling(settings: Settings) -> bool:
    """True when this process holds more than the ceiling after giving back what it freed: it should stop taking
    images and let Celery replace it."""
    if not settings.worker_max_rss_mb:
        return False
    if rss_bytes() <= settings.worker_max_rss_mb * MIB:
        return False
    release_free_memory()
    return rss_bytes() > settings.worker_max_rss_mb * MIB
