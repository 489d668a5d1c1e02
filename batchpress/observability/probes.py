"""One probe per dependency, shared by ``/readyz`` (readiness.py), ``batchpress doctor`` and the start-up waits of
``serve`` and ``worker`` (cli/dependencies.py), so each dependency is reached one way and its failures explained one
way.

A probe takes what it reaches as a parameter (an engine, a storage, the broker's settings), returns when the
dependency can be used, and otherwise raises ``ProbeFailed``: how it failed, a short cause that never shows a
password (``/readyz`` is unauthenticated), and whether it is permanent, a dependency that answered and refused, or a
folder that cannot be written, which waiting will not fix.
"""

from __future__ import annotations

import errno
import re
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchpress.storage.local import LocalStorage

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlalchemy.orm import Session

    from batchpress.config import Settings
    from batchpress.storage import ImageStorage

UNREACHABLE = "unreachable"
REFUSED = "refused"
NOT_WRITABLE = "not writable"
UNAVAILABLE = "unavailable"
# FATAL messages of a PostgreSQL server that clear up by themselves; any other (no such database or role, password
# refused, pg_hba) needs someone to change something.
_PG_TRANSIENT = (
    "connection refused",
    "timeout expired",
    "timed out",
    "failed to resolve host",
    "could not translate host name",
    "name or service not known",
    "temporary failure in name resolution",
    "no route to host",
    "network is unreachable",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "too many clients",
    "remaining connection slots",
    "server closed the connection unexpectedly",
    "connection reset",
)
_PASSWORD = re.compile(r"(?P<before>\b[a-z][a-z0-9+.-]*://[^:/@\s]*):[^/\s]*@", re.IGNORECASE)


class ProbeFailed(Exception):
    """``str()`` is how it failed and why, as ``/readyz`` shows it: ``"unreachable: connection refused"``."""

    def __init__(self, how: str, cause: str, *, permanent: bool = False) -> None:
        super().__init__(f"{how}: {cause}")
        self.how = how
        self.cause = cause
        self.permanent = permanent


# The database


def probe_database(engine: Engine, timeout: float) -> None:
    """``SELECT 1`` on one of ``engine``'s connections."""
    from sqlalchemy import text

    from batchpress.db.engine import READ_ONLY

    try:
        with engine.connect() as connection:
            # Read-only: on SQLite a plain BEGIN, so the probe never queues behind a writer for the write lock.
            connection.execution_options(**{READ_ONLY: True})
            limit_statement_time(connection, round(timeout * 1000))
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise database_failure(exc) from exc


def limit_statement_time(db: Connection | Session, milliseconds: int) -> None:
    """Bound every statement of this transaction on PostgreSQL. SQLite reads in WAL mode never wait for a lock."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    dialect = db.get_bind().dialect if isinstance(db, Session) else db.dialect
    if dialect.name == "postgresql":
        db.execute(text(f"SET LOCAL statement_timeout = {int(milliseconds)}"))


def database_failure(exc: BaseException) -> ProbeFailed:
    """Permanent when the server answered and refused (no such database or role, a password, pg_hba)."""
    message = first_line(exc)
    if network := network_cause(exc):
        return ProbeFailed(UNREACHABLE, network)
    cause = message.rpartition(" failed: ")[2].replace("FATAL:", "").strip()
    cause = cause[:1].lower() + cause[1:]
    refused = "FATAL" in message or "fe_sendauth" in message or "authentication" in message.lower()
    if not refused or any(marker in message.lower() for marker in _PG_TRANSIENT):
        return ProbeFailed(UNREACHABLE, cause)  # maybe the network, maybe the server not being up yet
    return ProbeFailed(REFUSED, cause, permanent=True)


# The broker


def probe_broker(settings: Settings, timeout: float) -> None:
    """One connection to the broker; for ``filesystem://``, its queue folders are writable."""
    if settings.uses_filesystem_broker:
        try:  # both create the queue's message folder (importing celery_app may build the worker's app)
            from batchpress.worker.celery_app import broker_options

            options = broker_options(settings)
        except OSError as exc:
            raise _not_writable(Path(exc.filename or settings.queue_dir), exc) from exc
        control = Path(options["control_folder"])
        # kombu creates the control folder on first use, inside the queue folder.
        folders = {Path(options["data_folder_in"]), Path(options["data_folder_out"])}
        folders.add(control if control.exists() else control.parent)
        for folder in sorted(folders):
            _probe_writable(folder)
        return
    from kombu.connection import Connection

    from batchpress.worker.celery_app import broker_options

    try:
        connection: Any = Connection(  # type: ignore[no-untyped-call]  # kombu is not annotated
            settings.broker_url, transport_options=broker_options(settings), connect_timeout=timeout
        )
        with connection:
            connection.ensure_connection(max_retries=0, timeout=timeout)
    except Exception as exc:
        raise broker_failure(exc) from exc


def broker_failure(exc: BaseException) -> ProbeFailed:
    """Permanent when the broker answered and refused (credentials, virtual host, database index)."""
    refusals: list[type[BaseException]] = []
    try:
        from amqp.exceptions import AccessRefused, NotAllowed  # type: ignore[import-untyped]  # py-amqp has no types

        refusals += [AccessRefused, NotAllowed]
    except ImportError:
        pass
    try:
        from redis.exceptions import AuthenticationError, ResponseError

        refusals += [AuthenticationError, ResponseError]
    except ImportError:
        pass
    for error in _chain(exc):
        if isinstance(error, tuple(refusals)):
            # py-amqp's "(0, 0): (403) ACCESS_REFUSED - Login was refused ... For details see the broker logfile."
            said = re.sub(r"^\(\d+, \d+\): ", "", first_line(error)).partition(". For details")[0].rstrip(".")
            return ProbeFailed(REFUSED, said, permanent=True)
    return ProbeFailed(UNREACHABLE, network_cause(exc) or first_line(exc))


# The storage


def probe_storage(storage: ImageStorage) -> None:
    """Local: a scratch file saved the way outputs are (a temp file renamed into the images folder, which fails when
    the two are on different filesystems), then removed. S3: ``HeadBucket``."""
    if isinstance(storage, LocalStorage):
        key = f".probe-{uuid.uuid4().hex}"
        try:
            storage.save(key, b"ok", "text/plain")
            storage.path_for(key).unlink()
        except OSError as exc:
            raise _not_writable(_folder_of(storage, exc), exc) from exc
        return
    from batchpress.storage.s3 import S3Storage, StorageUnavailable  # boto3: only when S3 is what is configured

    if isinstance(storage, S3Storage):
        try:
            storage.check()
        except StorageUnavailable as exc:
            raise ProbeFailed(UNAVAILABLE, first_line(exc)) from exc


# Causes


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _PASSWORD.sub(r"\g<before>:***@", text)


def first_line(exc: BaseException) -> str:
    """The first line of the message (the driver's own, for SQLAlchemy's), passwords masked, at most 200 characters."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    line = mask_url(lines[0].strip()) if lines else ""
    line = line or type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def network_cause(exc: BaseException) -> str | None:
    """A short cause for a network failure that may clear up by itself, or None."""
    for error in _chain(exc):
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, socket.gaierror):
            return f"cannot resolve the host name ({error.strerror})"
        if isinstance(error, TimeoutError):
            return "timed out"
        if isinstance(error, OSError) and error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNRESET):
            return error.strerror or str(error)
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _probe_writable(folder: Path) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as exc:
        raise _not_writable(folder, exc) from exc


def _folder_of(storage: LocalStorage, exc: OSError) -> Path:
    """The folder to name: the one that could not be made, or the one a file could not be written or renamed into."""
    name = exc.filename2 or exc.filename
    if not name:
        return storage.root
    path = Path(name)
    folders = {storage.root, storage.tmp_dir, *storage.root.parents, *storage.tmp_dir.parents}
    return path if path in folders else path.parent


def _not_writable(path: Path, exc: OSError) -> ProbeFailed:
    return ProbeFailed(NOT_WRITABLE, f"{path}: {exc.strerror or exc}", permanent=True)
