"""Who works on which image, decided in the database.

A worker owns an image only through a lease: ``claim_images`` moves open images to ``processing`` with a fresh
token and deadline in one UPDATE, so two workers can never hold the same image at once. A worker that dies simply
lets its lease run out; ``requeue_expired`` hands such images (and pending ones whose message was lost) back.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Label, and_, bindparam, exists, func, literal_column, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.elements import BindParameter

from batchpress.db.base import utcnow
from batchpress.db.revisions import bump_revision
from batchpress.models import Image, ImageState, ProcessingRequest, RequestStatus
from batchpress.processing.formats import Effort
from batchpress.processing.repeats import settle_repeats

# ``waiting`` is open too: a request with an image waiting for its repeat's first is not finished.
OPEN_STATES = (ImageState.PENDING.value, ImageState.PROCESSING.value, ImageState.WAITING.value)


@dataclass(frozen=True, slots=True)
class ClaimedImage:
    id: int
    request_id: uuid.UUID
    input_url: str
    quality: int = 50
    output_format: str = "original"
    max_dimension: int | None = None
    effort: Effort = "max"
    # Its request was still ``pending`` when claimed: the claimer moves it to ``processing``.
    request_pending: bool = False
    # How many images its request holds, which sizes its chunks (processing/fair_share.py).
    request_images: int = 0
    # The API key that created its request: validators of past downloads are kept per key (processing/reuse.py).
    api_key_id: str | None = None


def new_token() -> str:
    return secrets.token_hex(16)


def claim_images(
    session: Session, image_ids: Sequence[int], *, token: str, lease_seconds: float, max_attempts: int
) -> list[ClaimedImage]:
    """Take the open, unleased images among ``image_ids``; returns only those this call now owns."""
    now = utcnow()
    rows = session.execute(
        _claim_statement(),
        {
            "ids": list(image_ids),
            "max_attempts": max_attempts,
            "now": now,
            "token": token,
            "until": now + dt.timedelta(seconds=lease_seconds),
        },
    ).all()
    claimed = [
        ClaimedImage(
            id=r.id,
            request_id=r.request_id,
            input_url=r.input_url,
            quality=r.quality,
            output_format=r.output_format,
            max_dimension=r.max_dimension,
            effort=r.effort,
            request_pending=r.status == RequestStatus.PENDING.value,
            request_images=r.image_count,
            api_key_id=r.api_key_id,
        )
        for r in rows
    ]
    return sorted(claimed, key=lambda c: c.id)


@lru_cache(maxsize=1)
def _claim_statement() -> ReturningUpdate[Any]:
    """The claim, built once (building it took ~0.5 ms of Python a chunk).

    It finds its rows by primary key whatever the planner's statistics say: the state is tested as ``state || ''``,
    which no index matches. Tested as a column, PostgreSQL read the statistics of a table last analysed when few
    images were pending (as it is right after a big upload) and scanned every pending image through the
    (state, lease_until) index for each chunk: 15 ms a claim with 100,000 images pending, growing with the backlog.
    One statement: what the worker needs comes back with the claim, in subqueries, as SQLite's RETURNING cannot
    name an UPDATE ... FROM's other tables.
    """

    def of_request(column: InstrumentedAttribute[Any]) -> Label[Any]:
        return select(column).where(ProcessingRequest.id == Image.request_id).scalar_subquery().label(column.key)

    state = Image.state.concat("")
    now: BindParameter[dt.datetime] = bindparam("now")
    return (
        update(Image)
        .where(
            Image.id.in_(bindparam("ids", expanding=True)),
            Image.attempts < bindparam("max_attempts"),
            or_(
                state == ImageState.PENDING.value,
                and_(state == ImageState.PROCESSING.value, Image.lease_until < now),
            ),
        )
        .values(
            state=ImageState.PROCESSING.value,
            attempts=Image.attempts + 1,
            lease_token=bindparam("token"),
            lease_until=bindparam("until"),
            updated_at=now,
        )
        .returning(
            Image.id,
            Image.request_id,
            Image.input_url,
            of_request(ProcessingRequest.quality),
            of_request(ProcessingRequest.output_format),
            of_request(ProcessingRequest.max_dimension),
            of_request(ProcessingRequest.effort),
            of_request(ProcessingRequest.status),
            of_request(ProcessingRequest.image_count),
            of_request(ProcessingRequest.api_key_id),
        )
    )


def renew_leases(session: Session, *, tokens: Sequence[str], lease_seconds: float) -> None:
    """Push back the deadline of every image still leased under ``tokens`` (found through the state index: only
    the images in flight are ``processing``)."""
    session.execute(
        update(Image)
        .where(Image.state == ImageState.PROCESSING.value, Image.lease_token.in_(list(tokens)))
        .values(lease_until=utcnow() + dt.timedelta(seconds=lease_seconds))
    )


@dataclass(frozen=True, slots=True)
class LeaseCensus:
    # Some worker holds a live lease: it is working, so the queue may still hold the pending images' messages.
    live: bool
    # Some lease ran out on a ``processing`` image: its worker died (its heartbeat stopped), and with it any
    # messages it had reserved but not started, whose images are still ``pending``.
    lapsed: bool


def lease_census(session: Session) -> LeaseCensus:
    """Two index probes on (state, lease_until): cheap enough to run every few seconds on every worker.

    The state is written into the SQL, not bound: once psycopg prepares the statement, PostgreSQL's generic plan
    for a bound state read the whole table when no lease had lapsed (docs/reliability.md)."""
    now = utcnow()
    processing = Image.state == literal_column(f"'{ImageState.PROCESSING.value}'")
    live = exists().where(processing, Image.lease_until >= now)
    lapsed = exists().where(processing, Image.lease_until < now)
    row = session.execute(select(live.label("live"), lapsed.label("lapsed"))).one()
    return LeaseCensus(live=bool(row.live), lapsed=bool(row.lapsed))


def give_up_exhausted(session: Session, *, max_attempts: int, pending: bool = True) -> set[uuid.UUID]:
    """Fail open images with no attempt left once their last lease (or requeue deadline) has run out: a poison
    image stops here. Pending ones too (``pending``), since no claim will ever take them again; the sweeper asks
    for those only when it looks at pending images at all, as that reads the whole backlog."""
    now = utcnow()
    states = OPEN_STATES if pending else (ImageState.PROCESSING.value,)
    rows = session.execute(
        update(Image)
        .where(
            Image.state.in_(states),
            or_(Image.lease_until.is_(None), Image.lease_until < now),
            Image.attempts >= max_attempts,
        )
        .values(
            state=ImageState.FAILED.value,
            error=func.coalesce(
                Image.error, f"gave up after {max_attempts} attempts: the worker died or timed out each time"
            ),
            lease_token=None,
            lease_until=None,
            updated_at=now,
        )
        .returning(Image.request_id)
    ).all()
    request_ids = {r.request_id for r in rows}
    settle_repeats(session, request_ids)
    bump_revision(session, request_ids)
    return request_ids


@dataclass(frozen=True, slots=True)
class Requeued:
    request_id: uuid.UUID
    image_id: int
    # The worker holding it died or stalled: it goes back alone, so a poison image cannot take others down.
    worker_lost: bool


def requeue_expired(
    session: Session, *, lease_seconds: float, max_attempts: int, pending: bool | None = None, limit: int = 10_000
) -> list[Requeued]:
    """Hand back images nobody is working on and that have an attempt left, with a fresh deadline.

    One with none left stays for ``give_up_exhausted``: handed back, no claim would take it, and it would come back
    on every sweep for ever (a lease running out between the two calls once left a poison image so).

    Expired ``processing`` leases come back at once. A ``pending`` image past its deadline lost its message
    (or the broker was down at upload), but it may also just be waiting behind a long backlog, so those come
    back only when ``pending`` says so (the sweeper: a worker died, or nobody has been working for a while);
    left ``None``, while no lease is live anywhere.
    """
    now = utcnow()
    if pending is None:
        pending = not lease_census(session).live
    lease_lapsed = and_(Image.state == ImageState.PROCESSING.value, Image.lease_until < now)
    deadline_passed = and_(
        Image.state == ImageState.PENDING.value,
        or_(Image.lease_until.is_(None), Image.lease_until < now),
    )
    condition = and_(Image.attempts < max_attempts, or_(lease_lapsed, deadline_passed) if pending else lease_lapsed)
    ids = select(Image.id).where(condition).order_by(Image.id).limit(limit).scalar_subquery()
    rows = session.execute(
        update(Image)
        .where(Image.id.in_(ids), condition)
        .values(
            state=ImageState.PENDING.value,
            lease_token=None,
            lease_until=now + dt.timedelta(seconds=lease_seconds),
            updated_at=now,
        )
        .returning(Image.request_id, Image.id, Image.attempts)
    ).all()
    # A pending image that was claimed before has attempts > 0 only if a worker lost it earlier.
    return sorted((Requeued(r.request_id, r.id, worker_lost=r.attempts > 0) for r in rows), key=lambda r: r.image_id)
