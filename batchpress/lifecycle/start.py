"""Starting a request: the seed's ``process_images`` wakes a worker for every chunk of its pending images."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import func, select

from batchpress.db.engine import Database
from batchpress.lifecycle.transitions import mark_processing
from batchpress.models import Image, ImageState, ProcessingRequest, RequestStatus
from batchpress.processing.fair_share import planned_chunks

# Publishes one message that wakes a worker for a request; the claim decides what it works on (fair_share.py).
Enqueue = Callable[[uuid.UUID], None]
Finish = Callable[[uuid.UUID], object]


def fan_out(db: Database, request_id: uuid.UUID, enqueue: Enqueue, finish: Finish) -> int:
    """Mark the request ``processing`` and publish a message for each chunk of its pending images but one, which
    the caller claims at once (a batch's first images then start without a second trip through the queue).
    Returns how many chunks it has; a request with none is finished."""
    with db.session() as session:
        row = session.execute(
            select(ProcessingRequest.status, ProcessingRequest.image_count).where(ProcessingRequest.id == request_id)
        ).first()
        if row is None or row.status not in RequestStatus.open_states():
            return 0
        mark_processing(session, request_id)
        pending = session.scalar(
            select(func.count())
            .select_from(Image)
            .where(Image.request_id == request_id, Image.state == ImageState.PENDING.value)
        )
    chunks = planned_chunks(pending or 0, row.image_count or pending or 0)
    for _ in range(chunks - 1):
        enqueue(request_id)
    if not chunks:
        finish(request_id)
    return chunks
