"""Starting a request: the seed's ``process_images`` fans its pending images out in chunks."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator

from sqlalchemy import select

from batchpress.db.engine import Database
from batchpress.lifecycle.transitions import mark_processing
from batchpress.models import Image, ImageState, ProcessingRequest, RequestStatus

MAX_IMAGES_PER_TASK = 32

Enqueue = Callable[[uuid.UUID, list[int]], None]
Finish = Callable[[uuid.UUID], object]


def chunk_size(total_images: int) -> int:
    """Enough tasks to spread a small batch over every worker, few enough that the queue is never the bottleneck."""
    return max(1, min(MAX_IMAGES_PER_TASK, math.ceil(total_images / 16)))


def chunks(ids: list[int]) -> Iterator[list[int]]:
    """Full chunks, then the last two chunks' worth in quarter-size ones: the batch then ends with every process
    finishing small chunks together, not one of them working through a full chunk while the others wait."""
    size = chunk_size(len(ids))
    tail = max(0, len(ids) - 2 * size)
    for start in range(0, tail, size):
        yield ids[start : min(start + size, tail)]
    small = max(1, size // 4)
    for start in range(tail, len(ids), small):
        yield ids[start : start + small]


def fan_out(db: Database, request_id: uuid.UUID, enqueue: Enqueue, finish: Finish) -> list[int]:
    """Mark the request ``processing`` and enqueue its pending images in chunks; a request with none is finished.

    The first chunk is returned instead of enqueued, for the caller to work on at once: the first images of a batch
    then start without a second trip through the queue.
    """
    with db.session() as session:
        status = session.scalar(select(ProcessingRequest.status).where(ProcessingRequest.id == request_id))
        if status is None or status not in RequestStatus.open_states():
            return []
        mark_processing(session, request_id)
        ids = list(
            session.scalars(
                select(Image.id)
                .where(Image.request_id == request_id, Image.state == ImageState.PENDING.value)
                .order_by(Image.id)
            )
        )
    batches = list(chunks(ids))
    for chunk in batches[1:]:
        enqueue(request_id, chunk)
    if not ids:
        finish(request_id)
    return batches[0] if batches else []
