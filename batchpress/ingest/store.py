"""Turning validated CSV rows into a stored request, in bulk and in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.orm import Session

from batchpress.db.base import utcnow
from batchpress.ingest.csv_reader import ProductRow
from batchpress.models import Image, ImageState, ProcessingRequest, Product, RequestStatus


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """How a request's images are compressed, chosen at upload."""

    quality: int = 50
    output_format: str = "original"
    max_dimension: int | None = None


def store_request(
    session: Session,
    rows: Sequence[ProductRow],
    *,
    requeue_after_seconds: float,
    webhook_url: str | None = None,
    api_key_id: str | None = None,
    options: RequestOptions | None = None,
) -> uuid.UUID:
    """Insert the request, its products and one image row per URL; the caller commits.

    Each image starts ``pending`` with a deadline: if no worker has claimed it by then (the broker was down, or
    the message was lost), the sweeper enqueues it again.
    """
    now = utcnow()
    request_id = uuid.uuid4()
    session.execute(
        insert(ProcessingRequest).values(
            id=request_id,
            created_at=now,
            updated_at=now,
            status=RequestStatus.PENDING.value,
            webhook_url=webhook_url,
            api_key_id=api_key_id,
            quality=(options or RequestOptions()).quality,
            output_format=(options or RequestOptions()).output_format,
            max_dimension=(options or RequestOptions()).max_dimension,
        )
    )
    product_ids = session.scalars(
        insert(Product).returning(Product.id, sort_by_parameter_order=True),
        [
            {
                "request_id": request_id,
                "serial_number": row.serial_number,
                "product_name": row.product_name,
                "input_image_urls": ",".join(row.image_urls),
            }
            for row in rows
        ],
    ).all()
    deadline = now + dt.timedelta(seconds=requeue_after_seconds)
    session.execute(
        insert(Image),
        [
            {
                "request_id": request_id,
                "product_id": product_id,
                "position": position,
                "input_url": url,
                "state": ImageState.PENDING.value,
                "attempts": 0,
                "lease_until": deadline,
                "updated_at": now,
            }
            for product_id, row in zip(product_ids, rows, strict=True)
            for position, url in enumerate(row.image_urls)
        ],
    )
    return request_id
