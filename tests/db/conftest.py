"""Both databases for the tests of the data layer, and a request to work on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from batchpress.config import Settings
from batchpress.db.engine import Database, make_engine
from batchpress.db.migrate import upgrade
from batchpress.models import Image, ProcessingRequest, Product
from tests.support.cluster import postgres_admin_url, postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings on a new, migrated database of each kind."""
    if request.param == "sqlite":
        migrated = Settings(data_dir=tmp_path)
        upgrade(migrated)
        yield migrated
        return
    with postgres_database(postgres_admin_url(), f"bp_rev_{uuid.uuid4().hex[:10]}") as url:
        migrated = Settings(data_dir=tmp_path, database_url=url)
        upgrade(migrated)
        yield migrated


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    """The ``Database`` a process's context holds, as the lifecycle and the pipeline take it."""
    db = Database(settings)
    yield db
    db.dispose()


def new_request(
    sessions: sessionmaker[Session], images: int, *, api_key_id: str | None = None
) -> tuple[uuid.UUID, list[int]]:
    with sessions.begin() as session:
        request = ProcessingRequest(
            webhook_url="https://hooks.example.com/done", image_count=images, api_key_id=api_key_id
        )
        session.add(request)
        session.flush()
        product = Product(request_id=request.id, serial_number=1, product_name="Shoe", input_image_urls="")
        session.add(product)
        session.flush()
        rows = [
            Image(request_id=request.id, product_id=product.id, position=n, input_url=f"https://x.example/{n}.jpg")
            for n in range(images)
        ]
        session.add_all(rows)
        session.flush()
        return request.id, [row.id for row in rows]


def revision(sessions: sessionmaker[Session], request_id: uuid.UUID) -> int:
    with sessions() as session:
        value = session.scalar(select(ProcessingRequest.revision).where(ProcessingRequest.id == request_id))
        assert value is not None
        return value
