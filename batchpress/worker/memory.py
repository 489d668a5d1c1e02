"""A pool process's memory: a ceiling past which the process is replaced.

glibc's allocator is left as it comes: fixing its mmap threshold at 1 MiB gave freed image buffers back at once but
cost 10 % of end-to-end throughput, every buffer faulted in anew, for no lower peak (docs/security.md, "Memory per
worker process"). What a process holds between images is given back (``malloc_trim``) when the ceiling is checked.

The ceiling (``BATCHPRESS_WORKER_MAX_RSS_MB``) catches what the budget did not foresee: Celery replaces a pool
process whose peak passed it once its task ends (``worker_max_memory_per_child``), and ``over_ceiling`` lets the
chunk loop stop between images.
"""

from __future__ import annotations

import ctypes
import os
import resource

from batchpress.config import Settings

MIB = 1024 * 1024
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _glibc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "malloc_trim") else None  # musl and macOS have none


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
