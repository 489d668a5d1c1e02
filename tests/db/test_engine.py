"""Pooled PostgreSQL connections are pinged only after sitting idle, and one the server closed is replaced before
it is used."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import text

from batchpress.config import Settings
from batchpress.db import engine as engine_module
from batchpress.db.engine import make_engine
from tests.support.cluster import postgres_admin_url, postgres_database


def test_an_idle_connection_the_server_closed_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = postgres_admin_url()
    with postgres_database(admin, f"bp_ping_{uuid.uuid4().hex[:10]}") as url:
        engine = make_engine(Settings(database_url=url))
        pings: list[psycopg.Connection[object]] = []
        real_ping = engine.dialect.do_ping

        def counted_ping(connection: psycopg.Connection[object]) -> bool:
            pings.append(connection)
            return real_ping(connection)

        monkeypatch.setattr(engine.dialect, "do_ping", counted_ping)
        try:
            with engine.connect() as connection:
                pid = connection.scalar(text("SELECT pg_backend_pid()"))
            with engine.connect() as connection:
                assert connection.scalar(text("SELECT pg_backend_pid()")) == pid
            assert pings == [], "a connection used a moment ago is not pinged"

            with psycopg.connect(admin, autocommit=True) as admin_connection:
                admin_connection.execute("SELECT pg_terminate_backend(%s)", (pid,))
            monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if it had sat idle
            with engine.connect() as connection:
                assert connection.scalar(text("SELECT pg_backend_pid()")) != pid
            assert pings[0].closed, "the dead connection was pinged, and replaced"
        finally:
            engine.dispose()
