"""Readiness: can this process do its work right now? ``/healthz`` only says the process is up.

Each dependency the API needs to accept and hand off a batch gets one check, through the probes ``doctor`` also
runs (probes.py): the database (``SELECT 1``), the broker (a connection, or for the filesystem transport its folders
being writable) and the output storage. The checks run at once in a small thread pool and the report waits for them
at most ``CHECK_TIMEOUT_SECONDS``: a dependency that hangs is reported as timed out instead of hanging the probe. A
hung check keeps its thread until the driver's own timeout frees it; the pool is bounded, so a storm of probes queues
(and times out) rather than piling up threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

from sqlalchemy import Engine

from batchpress.config import Settings
from batchpress.observability.probes import ProbeFailed, first_line, probe_broker, probe_database, probe_storage
from batchpress.storage import ImageStorage

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
OK = "ok"

Check = Callable[[], None]


def check_pool() -> ThreadPoolExecutor:
    """One per API process (api/app.py): bounded, so a storm of probes queues behind hung checks instead of piling
    up threads."""
    return ThreadPoolExecutor(max_workers=6, thread_name_prefix="readyz")


def checks(settings: Settings, engine: Engine, storage: ImageStorage) -> dict[str, Check]:
    return {
        "database": lambda: probe_database(engine, CHECK_TIMEOUT_SECONDS),
        "broker": lambda: probe_broker(settings, CHECK_TIMEOUT_SECONDS),
        "storage": lambda: probe_storage(storage),
    }


def readiness(
    pool: ThreadPoolExecutor,
    settings: Settings,
    engine: Engine,
    storage: ImageStorage,
    timeout: float = CHECK_TIMEOUT_SECONDS,
) -> dict[str, str]:
    """Every check by name: ``"ok"`` or what is wrong, never waiting longer than ``timeout`` in all."""
    return run_checks(pool, checks(settings, engine, storage), timeout)


def run_checks(pool: ThreadPoolExecutor, named: dict[str, Check], timeout: float) -> dict[str, str]:
    futures = {name: pool.submit(_outcome, name, check) for name, check in named.items()}
    wait(futures.values(), timeout=timeout)
    report = {}
    for name, future in futures.items():
        if future.done():
            report[name] = future.result()
        else:
            future.cancel()  # still queued behind hung checks: do not run it later for nobody
            report[name] = f"timed out after {timeout:g} s"
    return report


def _outcome(name: str, check: Check) -> str:
    try:
        check()
    except ProbeFailed as exc:
        log.warning("readiness: %s %s", name, exc, exc_info=exc.__cause__ is not None)
        return str(exc)
    except Exception as exc:
        log.warning("readiness: %s check failed", name, exc_info=True)
        return f"failed: {first_line(exc)}"
    return OK
