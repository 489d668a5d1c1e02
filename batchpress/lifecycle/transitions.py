"""The guarded UPDATEs that move a request between statuses: ``pending`` -> ``processing`` -> exactly one terminal
status. Each takes the caller's session and runs inside the caller's transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from itertools import groupby

from sqlalchemy import ColumnElement, case, exists, func, select, update
from sqlalchemy.orm import Session

from batchpress.db.base import utcnow
from batchpress.models import Image, ImageState, ProcessingRequest, Product, RequestStatus
from batchpress.processing.leases import OPEN_STATES
from batchpress.processing.repeats import settle_repeats


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
        (ProcessingRequest.cancelled_at.is_not(None), RequestStatus.CANCELLED.value),
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


CANCELLED_REASON = "cancelled before it was processed"


def cancel_request(session: Session, request_id: uuid.UUID) -> bool:
    """Mark an open request cancelled and fail its images that no worker has started (pending, or waiting for a
    repeat's first image); images in flight finish, and the last result's finish then moves it to ``cancelled``.
    False when it was no longer open: a guarded UPDATE, so a cancel racing the last result is one or the other."""
    now = utcnow()
    moved = session.execute(
        update(ProcessingRequest)
        .where(ProcessingRequest.id == request_id, ProcessingRequest.status.in_(RequestStatus.open_states()))
        .values(cancelled_at=func.coalesce(ProcessingRequest.cancelled_at, now), updated_at=now)
        .returning(ProcessingRequest.id)
    ).first()
    if moved is None:
        return False
    session.execute(
        update(Image)
        .where(
            Image.request_id == request_id,
            Image.state.in_([ImageState.PENDING.value, ImageState.WAITING.value]),
        )
        .values(
            state=ImageState.FAILED.value, error=CANCELLED_REASON, lease_token=None, lease_until=None, updated_at=now
        )
        .execution_options(synchronize_session=False)
    )
    return True


def retry_request(session: Session, request_id: uuid.UUID, *, requeue_after_seconds: float) -> int:
    """Queue a finished request's failed images again with fresh attempts and reopen it (``processing``, no finish
    time, no cancel); returns how many images went back, 0 (and nothing changed) when it had none or was open.
    A repeat goes back to waiting for its first image, and takes at once the result of a first that is done."""
    now = utcnow()
    failed = exists().where(Image.request_id == request_id, Image.state == ImageState.FAILED.value)
    reopened = session.execute(
        update(ProcessingRequest)
        .where(
            ProcessingRequest.id == request_id,
            ProcessingRequest.status.not_in(RequestStatus.open_states()),
            failed,
        )
        .values(
            status=RequestStatus.PROCESSING.value,
            finished_at=None,
            cancelled_at=None,
            updated_at=now,
            revision=ProcessingRequest.revision + 1,
        )
        .returning(ProcessingRequest.id)
    ).first()
    if reopened is None:
        return 0
    first = Image.repeat_of.is_(None)
    result = session.execute(
        update(Image)
        .where(Image.request_id == request_id, Image.state == ImageState.FAILED.value)
        .values(
            state=case((first, ImageState.PENDING.value), else_=ImageState.WAITING.value),
            attempts=0,
            error=None,
            reused=None,
            lease_token=None,
            # A pending image's deadline: the sweeper enqueues it again if no message reaches a worker by then.
            lease_until=case((first, now + dt.timedelta(seconds=requeue_after_seconds)), else_=None),
            download_ms=None,
            process_ms=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    settle_repeats(session, [request_id])
    return int(getattr(result, "rowcount", 0) or 0)
