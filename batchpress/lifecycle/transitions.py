"""The guarded UPDATEs that move a request between statuses: ``pending`` -> ``processing`` -> exactly one terminal
status. Each takes the caller's session and runs inside the caller's transaction."""

from __future__ import annotations

import uuid
from itertools import groupby

from sqlalchemy import ColumnElement, case, exists, select, update
from sqlalchemy.orm import Session

from batchpress.db.base import utcnow
from batchpress.models import Image, ImageState, ProcessingRequest, Product, RequestStatus
from batchpress.processing.leases import OPEN_STATES


def mark_processing(session: Session, request_id: uuid.UUID) -> None:
    session.execute(
        update(ProcessingRequest)
        .where(ProcessingRequest.id == request_id, ProcessingRequest.status == RequestStatus.PENDING.value)
        .values(status=RequestStatus.PROCESSING.value, updated_at=utcnow(), revision=ProcessingRequest.revision + 1)
    )


def finish_request(session: Session, request_id: uuid.UUID) -> str | None:
    """Move the request to its terminal status if no image is open; returns the status only to the one caller
    whose UPDATE made the move, so whatever follows completion happens exactly once."""
    now = utcnow()

    def none_in(state: ImageState) -> ColumnElement[bool]:
        return ~exists().where(Image.request_id == request_id, Image.state == state.value)

    new_status = case(
        (none_in(ImageState.FAILED), RequestStatus.COMPLETED.value),
        (none_in(ImageState.DONE), RequestStatus.FAILED.value),
        else_=RequestStatus.COMPLETED_WITH_ERRORS.value,
    )
    row = session.execute(
        update(ProcessingRequest)
        .where(
            ProcessingRequest.id == request_id,
            ProcessingRequest.status.in_(RequestStatus.open_states()),
            ~exists().where(Image.request_id == request_id, Image.state.in_(OPEN_STATES)),
        )
        .values(status=new_status, updated_at=now, finished_at=now, revision=ProcessingRequest.revision + 1)
        .returning(ProcessingRequest.status)
    ).first()
    if row is None:
        return None
    _fill_output_urls(session, request_id)
    return str(row.status)


def _fill_output_urls(session: Session, request_id: uuid.UUID) -> None:
    """Write the seed's comma-separated ``output_image_urls``, an empty slot where an image failed."""
    rows = session.execute(
        select(Image.product_id, Image.output_url)
        .where(Image.request_id == request_id)
        .order_by(Image.product_id, Image.position)
    ).all()
    updates = [
        {"id": product_id, "output_image_urls": ",".join(r.output_url or "" for r in group)}
        for product_id, group in groupby(rows, key=lambda r: r.product_id)
    ]
    if updates:
        session.execute(update(Product), updates)
