"""A unit of work whose connection the database drops under it runs once more on a fresh one (PostgreSQL)."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from batchpress.db.engine import once_more_if_disconnected
from tests.support.cluster import postgres_admin_url, postgres_database


def test_work_is_repeated_once_after_its_connection_was_dropped() -> None:
    admin = postgres_admin_url()
    with postgres_database(admin, f"bp_drop_{uuid.uuid4().hex[:10]}") as url:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"), pool_pre_ping=True)
        runs: list[int] = []

        def work() -> int:
            with engine.connect() as conn:
                pid = conn.scalar(text("SELECT pg_backend_pid()"))
                runs.append(pid)
                if len(runs) == 1:  # the server drops this connection mid-work
                    with psycopg.connect(admin, autocommit=True) as killer:
                        killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
                return int(conn.scalar(text("SELECT 1")) or 0)

        assert once_more_if_disconnected(work) == 1
        assert len(runs) == 2
        assert runs[0] != runs[1], "the second run had a fresh connection"

        def always_dropped() -> int:
            with engine.connect() as conn:
                pid = conn.scalar(text("SELECT pg_backend_pid()"))
                with psycopg.connect(admin, autocommit=True) as killer:
                    killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
                return int(conn.scalar(text("SELECT 1")) or 0)

        with pytest.raises(OperationalError):
            once_more_if_disconnected(always_dropped)
        engine.dispose()
