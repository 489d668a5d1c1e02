"""Stored products and images match the CSV: its order, its URLs, each image under its own product."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from batchpress.config import Settings
from batchpress.db.engine import make_engine
from batchpress.db.migrate import upgrade
from batchpress.ingest.csv_reader import ProductRow
from batchpress.ingest.spool import CHUNK_ROWS, RowSpool
from batchpress.ingest.store import RequestOptions, store_request
from batchpress.models import Image, ProcessingRequest, Product
from tests.conftest import fresh_database


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated database: SQLite here, PostgreSQL when the tests run against one."""
    with fresh_database() as url:
        settings = Settings(data_dir=tmp_path, database_url=url)
        upgrade(settings)
        engine = make_engine(settings)
        yield engine
        engine.dispose()


def csv_rows(n: int) -> list[ProductRow]:
    # Serial numbers run backwards, so only the serial-to-id mapping, not luck, puts each image under its product.
    return [
        ProductRow(
            i + 2, n - i, f"Product {i}", tuple(f"https://img.example.com/{i}/{k}.jpg" for k in range(i % 3 + 1))
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("earlier_requests", [0, 1])
def test_products_and_images_are_stored_in_csv_order_across_chunks(engine: Engine, earlier_requests: int) -> None:
    for _ in range(earlier_requests):  # ids are reserved after those already taken
        with Session(engine) as session:
            store_request(session, [csv_rows(3)], requeue_after_seconds=90)
            session.commit()
    rows = csv_rows(2 * CHUNK_ROWS + 500)
    with RowSpool().extend(rows) as spool, Session(engine) as session:
        request_id = store_request(
            session, spool.chunks(), requeue_after_seconds=90, options=RequestOptions(quality=70)
        )
        session.commit()

    with Session(engine) as session:
        request = session.get_one(ProcessingRequest, request_id)
        assert (request.status, request.quality) == ("pending", 70)
        products = session.execute(
            select(Product.id, Product.serial_number, Product.product_name, Product.input_image_urls)
            .where(Product.request_id == request_id)
            .order_by(Product.id)
        ).all()
        assert [(p.serial_number, p.product_name, p.input_image_urls) for p in products] == [
            (r.serial_number, r.product_name, ",".join(r.image_urls)) for r in rows
        ]
        images = session.execute(
            select(Image.product_id, Image.position, Image.input_url, Image.state, Image.attempts, Image.lease_until)
            .where(Image.request_id == request_id)
            .order_by(Image.product_id, Image.position)
        ).all()
    serial_of = {p.id: p.serial_number for p in products}
    assert [(serial_of[i.product_id], i.position, i.input_url) for i in images] == [
        (r.serial_number, position, url) for r in rows for position, url in enumerate(r.image_urls)
    ]
    assert {(i.state, i.attempts) for i in images} == {("pending", 0)}
    deadline, created = (utc(moment) for moment in (images[0].lease_until, request.created_at))
    assert abs((deadline - created).total_seconds() - 90) < 1


def utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands datetimes back without their zone; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
