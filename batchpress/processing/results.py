"""Recording what happened to an image, and the one terminal move of its request.

``record_results`` is the single way results enter the database, whoever produced it. ``finish_request`` must
run in a transaction of its own *after* the result is committed: if two workers recorded their last images and
checked for completion in the same transactions, each would still see the other's image open and neither would
finish the request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import ColumnElement, case, exists, select, update
from sqlalchemy.orm import Session

from batchpress.db.base import utcnow
from batchpress.db.revisions import bump_revision
from batchpress.models import Image, ImageState, ProcessingRequest, Product, RequestStatus
from batchpress.processing.leases import OPEN_STATES

MAX_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class Compressed:
    output_url: str
    input_bytes: int
    output_bytes: int
    # None when the output lives outside our storage (an external processor reported its own URL).
    output_key: str | None = None
    download_ms: int | None = None
    process_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str
    download_ms: int | None = None
    process_ms: int | None = None


Outcome = Compressed | Failed


def record_results(session: Session, outcomes: list[tuple[int, Outcome]], *, token: str | None = None) -> int:
    """Store several images' outcomes in one transaction and bump their requests' revisions once; returns how
    many were stored. An outcome is stored only while its image is open and, with ``token`` (the claiming
    worker's lease token), still leased by that worker; results from outside the worker pool pass ``None``."""
    stored: list[uuid.UUID] = []
    for image_id, outcome in outcomes:
        if (request_id := _record(session, image_id, outcome, token)) is not None:
            stored.append(request_id)
    bump_revision(session, stored)
    return len(stored)


def record_result(session: Session, image_id: int, outcome: Outcome, *, token: str | None = None) -> bool:
    """One image's outcome (see ``record_results``); False when it was already final or another worker owns it."""
    return record_results(session, [(image_id, outcome)], token=token) == 1


def _record(session: Session, image_id: int, outcome: Outcome, token: str | None) -> uuid.UUID | None:
    now = utcnow()
    conditions = [Image.id == image_id, Image.state.in_(OPEN_STATES)]
    if token is not None:
        conditions.append(Image.lease_token == token)
    if isinstance(outcome, Compressed):
        values = {
            "state": ImageState.DONE.value,
            "output_url": outcome.output_url,
            "output_key": outcome.output_key,
            "input_bytes": outcome.input_bytes,
            "output_bytes": outcome.output_bytes,
            "error": None,
        }
    else:
        values = {"state": ImageState.FAILED.value, "error": outcome.reason[:MAX_ERROR_CHARS]}
    values |= {"download_ms": outcome.download_ms, "process_ms": outcome.process_ms}
    row = session.execute(
        update(Image)
        .where(*conditions)
        .values(**values, lease_token=None, lease_until=None, updated_at=now)
        .returning(Image.request_id)
        .execution_options(synchronize_session=False)
    ).first()
    return None if row is None else row.request_id


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
