"""Readiness: can this process do its work right now? ``/healthz`` only says the process is up.

Each dependency the API needs to accept and hand off a batch gets one check: the database (``SELECT 1``), the broker
(a connection, or for the filesystem transport its folders being writable) and the output storage. The checks run
at once in a small thread pool and the report waits for them at most ``CHECK_TIMEOUT_SECONDS``: a dependency that
hangs is reported as timed out instead of hanging the probe. A hung check keeps its thread until the driver's own
timeout frees it; the pool is bounded, so a storm of probes queues (and times out) rather than piling up threads.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from kombu.connection import Connection
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from batchpress.config import Settings
from batchpress.db.engine import READ_ONLY
from batchpress.storage import ImageStorage
from batchpress.worker.celery_app import broker_options

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
OK = "ok"
_POOL = ThreadPoolExecutor(max_workers=6, thread_name_prefix="readyz")
_CREDENTIALS = re.compile(r"//[^/@\s]+@")

Check = Callable[[], None]


class NotReady(Exception):
    """A check failed; ``str(exc)`` is the whole line shown in the report."""


def limit_statement_time(session: Session, milliseconds: int) -> None:
    """Bound every statement of this transaction on PostgreSQL. SQLite reads in WAL mode never wait for a lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL statement_timeout = {int(milliseconds)}"))


def check_database(engine: Engine) -> None:
    try:
        with Session(engine.execution_options(**{READ_ONLY: True})) as session, session.begin():
            limit_statement_time(session, round(CHECK_TIMEOUT_SECONDS * 1000))
            session.execute(text("SELECT 1"))
    except Exception as exc:
        raise NotReady(f"unreachable: {_short(exc)}") from exc


def check_broker(settings: Settings) -> None:
    options = broker_options(settings)
    if settings.uses_filesystem_broker:
        folders = {Path(options["data_folder_in"]), Path(options["data_folder_out"])}
        control = Path(options["control_folder"])
        # kombu creates the control folder on first use, inside the queue folder.
        folders.add(control if control.exists() else control.parent)
        for folder in sorted(folders):
            _probe_writable(folder, "unreachable")
        return
    try:
        connection = Connection(  # type: ignore[no-untyped-call]  # kombu is not annotated
            settings.broker_url, transport_options=options, connect_timeout=CHECK_TIMEOUT_SECONDS
        )
        with connection as conn:
            conn.ensure_connection(max_retries=0, timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        raise NotReady(f"unreachable: {_short(exc)}") from exc


def check_storage(settings: Settings, storage: ImageStorage) -> None:
    if settings.storage == "s3":
        from batchpress.storage.s3 import S3Storage, StorageUnavailable

        if isinstance(storage, S3Storage):
            try:
                storage.check()
            except StorageUnavailable as exc:
                raise NotReady(f"unavailable: {_short(exc)}") from exc
        return
    _probe_writable(settings.images_dir, "not writable")
    # LocalStorage writes each output here first and renames it into place; it creates the folder when missing.
    _probe_writable(settings.tmp_dir if settings.tmp_dir.exists() else settings.data_dir, "not writable")


def checks(settings: Settings, engine: Engine, storage: ImageStorage) -> dict[str, Check]:
    return {
        "database": lambda: check_database(engine),
        "broker": lambda: check_broker(settings),
        "storage": lambda: check_storage(settings, storage),
    }


def readiness(
    settings: Settings, engine: Engine, storage: ImageStorage, timeout: float = CHECK_TIMEOUT_SECONDS
) -> dict[str, str]:
    """Every check by name: ``"ok"`` or what is wrong, never waiting longer than ``timeout`` in all."""
    return run_checks(checks(settings, engine, storage), timeout)


def run_checks(named: dict[str, Check], timeout: float) -> dict[str, str]:
    futures = {name: _POOL.submit(_outcome, name, check) for name, check in named.items()}
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
    except NotReady as exc:
        log.warning("readiness: %s %s", name, exc, exc_info=exc.__cause__ is not None)
        return str(exc)
    except Exception as exc:
        log.warning("readiness: %s check failed", name, exc_info=True)
        return f"failed: {_short(exc)}"
    return OK


def _probe_writable(folder: Path, problem: str) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".readyz-"):
            pass
    except OSError as exc:
        raise NotReady(f"{problem}: {folder}: {exc.strerror or exc}") from exc


def _short(exc: BaseException) -> str:
    """The first line of the message, without credentials from any URL in it; the report is unauthenticated."""
    lines = str(exc).strip().splitlines()
    first = _CREDENTIALS.sub("//***@", lines[0] if lines else "") or type(exc).__name__
    return first if len(first) <= 200 else first[:197] + "..."
