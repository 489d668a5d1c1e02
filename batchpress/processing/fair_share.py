"""Whose turn it is: the database, not the queue's order, decides which request a worker serves next.

A message only wakes a worker. The claim then takes a chunk of an open request that nobody works on if there is
one, else of any; among those, of the one whose API key, then itself, was served least recently. A 3-image request
uploaded behind a 100,000-image one is thus served at the next claim, not after every chunk already enqueued, and a
chunk that has run for a second gives way to it between images. Each request gets as many messages as it has
chunks; one spent on another request's turn goes back to its own (``ChunkWorker.run_next``).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from functools import lru_cache

from sqlalchemy import Select, bindparam, exists, func, literal_column, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.selectable import ScalarSelect

from batchpress.db.base import utcnow
from batchpress.models import Image, ImageState, ProcessingRequest, RequestStatus
from batchpress.processing.leases import ClaimedImage, claim_images

MAX_IMAGES_PER_TASK = 32
# Requests a claim tries, in turn order, before it gives up.
TURNS_TRIED = 3
# The state written into the SQL, not bound: a prepared statement's generic plan ignored the (request, state) index.
_PENDING: ColumnClause[str] = literal_column(f"'{ImageState.PENDING.value}'")
_PROCESSING: ColumnClause[str] = literal_column(f"'{ImageState.PROCESSING.value}'")


def chunk_size(image_count: int) -> int:
    """Enough chunks to spread a small batch over every worker, few enough that the queue is never the bottleneck."""
    return max(1, min(MAX_IMAGES_PER_TASK, math.ceil(image_count / 16)))


def claim_size(image_count: int, pending: int) -> int:
    """Full chunks, then the last two chunks' worth in quarter-size ones: the batch then ends with every process
    finishing small chunks together, not one of them working through a full chunk while the others wait."""
    size = chunk_size(image_count)
    return size if pending > 2 * size else max(1, size // 4)


def planned_chunks(pending: int, image_count: int) -> int:
    """How many claims take ``pending`` images of a request of ``image_count``: the messages it needs."""
    chunks = 0
    while pending > 0:
        pending -= min(pending, claim_size(image_count, pending))
        chunks += 1
    return chunks


def claim_next(session: Session, *, token: str, lease_seconds: float, max_attempts: int) -> list[ClaimedImage]:
    """Claim a chunk of the request whose turn it is; empty when no open request has an image to claim.

    Run it in a transaction: on PostgreSQL the chosen rows stay locked (``SKIP LOCKED``) until the claim commits,
    so workers claiming at once take different images of the same request. An image a worker was lost on goes
    alone, so that a poison image cannot take others down with it again.
    """
    # The next requests in turn order: when concurrent claims hold the first one's remaining images locked, the
    # next one is served rather than none.
    for turn in session.execute(_turn_statement(), {"max_attempts": max_attempts}).all():
        size = chunk_size(turn.image_count) if turn.image_count else MAX_IMAGES_PER_TASK
        waiting = (
            select(Image.id)
            .where(
                Image.request_id == turn.id,
                Image.state == _PENDING,
                Image.attempts < max_attempts,
                # From its first pending image on, which the (request, state, id) index gives in one read: ordered
                # by id alone, PostgreSQL with statistics from before most of a request was done walked the primary
                # key past every finished image (docs/performance.md, "Fair share").
                Image.id >= _first_pending(turn.id),
            )
            .order_by(Image.id)
        )
        # Sized from what is pending, counting what other claims hold locked: a chunk sized from the rows left
        # unlocked came out smaller than planned, and the request then had fewer messages than chunks.
        pending = session.scalar(select(func.count()).select_from(waiting.limit(2 * size + 1).subquery())) or 0
        taken = session.execute(
            waiting.with_only_columns(Image.id, Image.attempts)
            .limit(claim_size(turn.image_count or size, pending))
            .with_for_update(skip_locked=True)
        ).all()
        lost = [c.id for c in taken if c.attempts > 0]
        claimed = claim_images(
            session,
            lost[:1] or [c.id for c in taken],
            token=token,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
        )
        if claimed:
            session.execute(update(ProcessingRequest).where(ProcessingRequest.id == turn.id).values(served_at=utcnow()))
            return claimed
    return []


def _first_pending(request_id: uuid.UUID) -> ScalarSelect[int]:
    """One read of the (request, state, id) index's first entry."""
    return select(func.min(Image.id)).where(Image.request_id == request_id, Image.state == _PENDING).scalar_subquery()


def has_pending(session: Session, request_id: uuid.UUID, *, max_attempts: int) -> bool:
    """Whether a claim could still take one of its images: the request is open and one has an attempt left."""
    waiting = exists().where(Image.request_id == request_id, Image.state == _PENDING, Image.attempts < max_attempts)
    is_open = ProcessingRequest.status.in_(RequestStatus.open_states())
    return bool(session.scalar(select(waiting).where(ProcessingRequest.id == request_id, is_open)))


def someone_else_waits(session: Session, request_id: uuid.UUID, *, max_attempts: int) -> bool:
    """Whether the request whose turn it is now is another one that nobody works on: a chunk of
    ``request_id`` that has run its quantum then stops at its next image, so that a small request behind a large
    batch waits about a second, not for a chunk of 12 MP photos. A request a worker already serves waits its turn."""
    turn = session.execute(_turn_statement(), {"max_attempts": max_attempts}).first()
    if turn is None or turn.id == request_id:
        return False
    return not session.scalar(select(exists().where(Image.request_id == turn.id, Image.state == _PROCESSING)))


def release(session: Session, image_ids: list[int], *, token: str, lease_seconds: float) -> int:
    """Give back claimed images this worker has not started, with the attempt their claim took."""
    now = utcnow()
    result = session.execute(
        update(Image)
        .where(Image.id.in_(image_ids), Image.lease_token == token, Image.state == _PROCESSING)
        .values(
            state=ImageState.PENDING.value,
            attempts=Image.attempts - 1,
            lease_token=None,
            lease_until=now + dt.timedelta(seconds=lease_seconds),
            updated_at=now,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


@lru_cache(maxsize=1)
def _turn_statement() -> Select[uuid.UUID, int]:
    """The open request with an image to claim that nobody works on, else any; among those, the one whose key,
    then itself, was served least recently (never first, then the oldest). Requests without a key share one turn,
    as one key's do. Nobody-on-it first lets a small request's next image follow its last at once."""
    same_key = aliased(ProcessingRequest)
    open_states = RequestStatus.open_states()
    key_served = (
        select(func.max(same_key.served_at))
        .where(same_key.status.in_(open_states), same_key.api_key_id.is_not_distinct_from(ProcessingRequest.api_key_id))
        .scalar_subquery()
    )
    claimable = exists().where(
        Image.request_id == ProcessingRequest.id, Image.state == _PENDING, Image.attempts < bindparam("max_attempts")
    )
    in_flight = exists().where(Image.request_id == ProcessingRequest.id, Image.state == _PROCESSING)
    return (
        select(ProcessingRequest.id, ProcessingRequest.image_count)
        .where(ProcessingRequest.status.in_(open_states), claimable)
        .order_by(
            in_flight.asc(),
            key_served.asc().nulls_first(),
            ProcessingRequest.served_at.asc().nulls_first(),
            ProcessingRequest.created_at,
        )
        .limit(TURNS_TRIED)
    )
