"""Migrations build exactly the models' schema, and go down and up again, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, pool, text

from batchpress.config import Settings
from batchpress.db.migrate import alembic_config, upgrade
from tests.support.cluster import postgres_admin_url, postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield Settings(data_dir=tmp_path)
        return
    with postgres_database(postgres_admin_url(), f"bp_mig_{uuid.uuid4().hex[:10]}") as url:
        yield Settings(data_dir=tmp_path, database_url=url)


def test_migrations_match_models_and_round_trip(settings: Settings) -> None:
    upgrade(settings)
    config = alembic_config(settings)
    command.check(config)  # raises when the models and the migrated schema differ
    command.downgrade(config, "base")
    upgrade(settings)
    command.check(config)


def test_requests_stored_before_effort_existed_read_as_max(settings: Settings) -> None:
    """0009 adds ``effort``: a request uploaded before it was asked for nothing, so it gets the default encoders."""
    upgrade(settings, "0008")
    engine = create_engine(settings.database_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO processing_request (id, created_at, updated_at, status) "
                    "VALUES (:id, :t, :t, 'pending')"
                ),
                {"id": uuid.uuid4().hex, "t": dt.datetime(2026, 12, 1, tzinfo=dt.UTC)},
            )
        upgrade(settings)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT effort FROM processing_request")).scalars().all() == ["max"]
        command.downgrade(alembic_config(settings), "0008")
        with engine.connect() as conn:
            assert "effort" not in {c["name"] for c in inspect(conn).get_columns("processing_request")}
    finally:
        engine.dispose()
