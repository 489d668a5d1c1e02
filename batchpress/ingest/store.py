"""Turning validated CSV rows into a stored request, in chunked bulk inserts and in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Table, insert, update
from sqlalchemy.orm import Session

from batchpress.db.base import Base, utcnow
from batchpress.ingest.bulk import BulkInsert, reserve_ids
from batchpress.ingest.csv_reader import ProductRow
from batchpress.models import Image, ImageState, ProcessingRequest, Product, RequestStatus


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """How a request's images are compressed, chosen at upload."""

    quality: int = 50
    output_format: str = "original"
    max_dimension: int | None = None
    effort: str = "max"


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
            effort=options.effort,
        )
    )
    conn = session.connection()
    products = BulkInsert(
        conn, _table(Product), ("id", "serial_number", "product_name", "input_image_urls"), {"request_id": request_id}
    )
    # Ids known up front: an image whose URL appeared earlier in the request names that image (``repeat_of``) and
    # waits for its result rather than being downloaded and compressed again.
    images = BulkInsert(
        conn,
        _table(Image),
        ("id", "product_id", "position", "input_url"),
        {
            "request_id": request_id,
            "state": ImageState.PENDING.value,
            "attempts": 0,
            "lease_until": now + dt.timedelta(seconds=requeue_after_seconds),
            "updated_at": now,
        },
    )
    repeats = BulkInsert(
        conn,
        _table(Image),
        ("id", "product_id", "position", "input_url", "repeat_of"),
        {"request_id": request_id, "state": ImageState.WAITING.value, "attempts": 0, "updated_at": now},
    )
    first_of: dict[str, int] = {}
    image_count = 0
    for chunk in chunks:
        # Increasing ids in CSV order: the status lists products by id.
        rows = list(zip(reserve_ids(conn, _table(Product), len(chunk)), chunk, strict=True))
        products.run([(pid, r.serial_number, r.product_name, ",".join(r.image_urls)) for pid, r in rows])
        count = sum(len(r.image_urls) for r in chunk)
        ids = iter(reserve_ids(conn, _table(Image), count))
        firsts: list[tuple[int, int, int, str]] = []
        again: list[tuple[int, int, int, str, int]] = []
        for pid, r in rows:
            for pos, url in enumerate(r.image_urls):
                image_id = next(ids)
                first = first_of.setdefault(url, image_id)
                if first == image_id:
                    firsts.append((image_id, pid, pos, url))
                else:
                    again.append((image_id, pid, pos, url, first))
        images.run(firsts)
        repeats.run(again)
        image_count += count
    session.execute(update(ProcessingRequest).where(ProcessingRequest.id == request_id).values(image_count=image_count))
    return request_id
