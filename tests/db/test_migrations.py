"""Migrations build exactly the models' schema, and go down and up again, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command

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
