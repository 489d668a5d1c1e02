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
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from batchpress.config import Settings, get_settings

READ_ONLY = "batchpress_read_only"
log = logging.getLogger(__name__)
T = TypeVar("T")


def make_engine(settings: Settings) -> Engine:
    if not settings.is_sqlite:
        return create_engine(settings.database_url, pool_pre_ping=True, pool_size=5, max_overflow=10)

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Enough pooled connections for every thread of the API's thread pool (40): beyond the pool, each checkout
    # opens a new file handle and reruns the PRAGMAs below, which measured a tenth of a busy status route's time.
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


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    return make_engine(get_settings())


@lru_cache(maxsize=4)
def _factory(read_only: bool, autocommit: bool) -> sessionmaker[Session]:
    engine = autocommit_engine() if autocommit else get_engine()
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


@contextmanager
def session_scope(*, read_only: bool = False, autocommit: bool = False) -> Iterator[Session]:
    """One unit of work: commits when the block ends, rolls back when it raises.

    ``autocommit=True`` is for a block whose statements each stand alone (one claim, one read): on PostgreSQL each
    then commits by itself, without the BEGIN and COMMIT round trips; SQLite has no round trips to save and keeps
    its transaction."""
    session = _factory(read_only, autocommit)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@lru_cache(maxsize=1)
def autocommit_engine() -> Engine:
    """For statements that need no transaction around them: single reads on a bare DBAPI cursor (db/revisions.py
    ``read_revision``) and ``session_scope(autocommit=True)``."""
    settings = get_settings()
    if settings.is_sqlite:
        return get_engine()  # its connections leave transactions to the "begin" hook: a bare cursor has none
    return create_engine(settings.database_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True, pool_size=2)


def reset_engine() -> None:
    """Forget the pooled connections; a forked worker child must not share its parent's sockets or files."""
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=False)
    _factory.cache_clear()
    if autocommit_engine.cache_info().currsize and autocommit_engine() is not get_engine():
        autocommit_engine().dispose(close=False)
    autocommit_engine.cache_clear()
    get_engine.cache_clear()


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
