"""Turning validated CSV rows into a stored request, in chunked bulk inserts and in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select
from sqlalchemy.orm import Session

from batchpress.db.base import Base, utcnow
from batchpress.ingest.csv_reader import ProductRow
from batchpress.models import Image, ImageState, ProcessingRequest, Product, RequestStatus


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """How a request's images are compressed, chosen at upload."""

    quality: int = 50
    output_format: str = "original"
    max_dimension: int | None = None


class BulkInsert:
    """One INSERT compiled for the connection's dialect and run as a DBAPI ``executemany`` of plain tuples.

    At 300,000 image rows, SQLAlchemy's per-row parameter handling (a dict per row, each datetime and UUID converted
    again) took longer than the database's own work. Here the columns that are the same on every row are converted
    once, with the column types' own bind processors, and each row only supplies the values that vary.
    """

    def __init__(self, conn: Connection, table: Table, varying: Sequence[str], constants: Mapping[str, Any]) -> None:
        dialect = conn.dialect
        names = (*varying, *constants)
        compiled = insert(table).values({name: bindparam(name) for name in names}).compile(dialect=dialect)
        fixed = []
        for name, value in constants.items():
            process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            fixed.append(process(value) if process else value)
        for name in varying:  # the varying values go to the driver as they are, so they must need no conversion
            assert table.c[name].type.dialect_impl(dialect).bind_processor(dialect) is None, name
        self._conn = conn
        self._sql = compiled.string
        self._fixed = tuple(fixed)
        order = compiled.positiontup
        self._pack = itemgetter(*(names.index(name) for name in order)) if order else None
        self._names = names

    def run(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        fixed = self._fixed
        if self._pack is not None:
            pack = self._pack
            self._conn.exec_driver_sql(self._sql, [pack(row + fixed) for row in rows])
        else:
            names = self._names
            self._conn.exec_driver_sql(self._sql, [dict(zip(names, row + fixed, strict=True)) for row in rows])


def _table(model: type[Base]) -> Table:
    return model.metadata.tables[model.__tablename__]


def store_request(
    session: Session,
    chunks: Iterable[Sequence[ProductRow]],
    *,
    requeue_after_seconds: float,
    webhook_url: str | None = None,
    api_key_id: str | None = None,
    options: RequestOptions | None = None,
) -> uuid.UUID:
    """Insert the request, its products and one image row per URL, a chunk of rows at a time; the caller commits.

    Each image starts ``pending`` with a deadline: if no worker has claimed it by then (the broker was down, or
    the message was lost), the sweeper enqueues it again.
    """
    now = utcnow()
    request_id = uuid.uuid4()
    options = options or RequestOptions()
    session.execute(
        insert(ProcessingRequest).values(
            id=request_id,
            created_at=now,
            updated_at=now,
            status=RequestStatus.PENDING.value,
            webhook_url=webhook_url,
            api_key_id=api_key_id,
            quality=options.quality,
            output_format=options.output_format,
            max_dimension=options.max_dimension,
        )
    )
    conn = session.connection()
    products = BulkInsert(
        conn, _table(Product), ("serial_number", "product_name", "input_image_urls"), {"request_id": request_id}
    )
    images = BulkInsert(
        conn,
        _table(Image),
        ("product_id", "position", "input_url"),
        {
            "request_id": request_id,
            "state": ImageState.PENDING.value,
            "attempts": 0,
            "lease_until": now + dt.timedelta(seconds=requeue_after_seconds),
            "updated_at": now,
        },
    )
    # Serial numbers are unique within a request, so they map each chunk's new products to their ids.
    product_ids = select(Product.serial_number, Product.id).where(
        Product.request_id == request_id, Product.serial_number.in_(bindparam("serials", expanding=True))
    )
    for chunk in chunks:
        products.run([(row.serial_number, row.product_name, ",".join(row.image_urls)) for row in chunk])
        ids = {serial: pid for serial, pid in conn.execute(product_ids, {"serials": [r.serial_number for r in chunk]})}
        images.run([(ids[row.serial_number], pos, url) for row in chunk for pos, url in enumerate(row.image_urls)])
    return request_id
