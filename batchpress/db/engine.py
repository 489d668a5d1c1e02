"""Engines and sessions.

SQLite is shared by the API process and every worker process, so it runs in WAL mode with a long busy timeout,
and write transactions start with ``BEGIN IMMEDIATE``: a deferred transaction that reads first and writes later can
fail at once with "database is locked" instead of waiting its turn. Read-only sessions (``read_only=True``) keep a
plain deferred ``BEGIN`` so status reads never queue behind writers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from batchpress.config import Settings

READ_ONLY = "batchpress_read_only"
log = logging.getLogger(__name__)
T = TypeVar("T")


def make_engine(settings: Settings) -> Engine:
    if not settings.is_sqlite:
        return create_engine(settings.database_url, pool_pre_ping=True, pool_size=5, max_overflow=10)

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Enough pooled connections for every thread of the API's thread pool (40): beyond the pool, each checkout
    # opens a new file handle and reruns the PRAGMAs below (docs/performance.md).
    engine = create_engine(settings.database_url, connect_args={"timeout": 60}, pool_size=40, max_overflow=10)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so the "begin" hook below decides how each one starts.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


class Database:
    """A process's engines and session factories: built once when the process starts (``Context``) and passed to
    whatever reads or writes, so a test builds its own on its own database."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings)
        # For statements that need no transaction around them: single reads on a bare DBAPI cursor
        # (db/revisions.py) and ``session(autocommit=True)``. SQLite's connections already leave transactions to
        # the "begin" hook, so a bare cursor there has none.
        self.autocommit_engine = (
            self.engine
            if settings.is_sqlite
            else create_engine(settings.database_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True, pool_size=2)
        )
        self._factories: dict[tuple[bool, bool], sessionmaker[Session]] = {}

    def _factory(self, read_only: bool, autocommit: bool) -> sessionmaker[Session]:
        factory = self._factories.get((read_only, autocommit))
        if factory is None:
            engine = self.autocommit_engine if autocommit else self.engine
            bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
            factory = self._factories[(read_only, autocommit)] = sessionmaker(bind=bind, expire_on_commit=False)
        return factory

    @contextmanager
    def session(self, *, read_only: bool = False, autocommit: bool = False) -> Iterator[Session]:
        """One unit of work: commits when the block ends, rolls back when it raises.

        ``autocommit=True`` is for a block whose statements each stand alone (one claim, one read): on PostgreSQL
        each then commits by itself, without the BEGIN and COMMIT round trips; SQLite has no round trips to save and
        keeps its transaction."""
        session = self._factory(read_only, autocommit)()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self, *, close: bool = True) -> None:
        """Let go of the pooled connections; ``close=False`` in a forked child, whose parent still uses them."""
        self.engine.dispose(close=close)
        if self.autocommit_engine is not self.engine:
            self.autocommit_engine.dispose(close=close)


def once_more_if_disconnected(work: Callable[[], T]) -> T:
    """Run a unit of work, and once more on a fresh connection if the database dropped the one it had (a restart,
    a failover, ``pg_terminate_backend``): ``pool_pre_ping`` only catches a connection that died while idle.
    The work must be safe to repeat; anything else, or a second drop, propagates."""
    try:
        return work()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("the database dropped the connection (%s); trying once more", str(exc.orig).strip()[:120])
        return work()
