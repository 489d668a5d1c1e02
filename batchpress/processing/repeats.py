"""Images whose URL appeared earlier in their request: they wait (``waiting``) and take the first one's result, so
a source repeated across a feed's rows is downloaded and compressed once."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session, aliased

from batchpress.db.base import utcnow
from batchpress.models import Image, ImageState, Reuse

_FINAL = (ImageState.DONE.value, ImageState.FAILED.value)


def settle_repeats(session: Session, request_ids: Collection[uuid.UUID]) -> int:
    """Give every waiting image of ``request_ids`` whose first image is final that image's result: its output (as
    reused), or its failure. Runs in the transaction that made the first images final, so a repeat is never left
    waiting on a first that has ended; returns how many it settled."""
    if not request_ids:
        return 0
    first = aliased(Image)
    done = first.state == ImageState.DONE.value
    result = session.execute(
        update(Image)
        .where(
            Image.request_id.in_(list(request_ids)),
            Image.state == ImageState.WAITING.value,
            Image.repeat_of == first.id,
            first.state.in_(_FINAL),
        )
        .values(
            state=first.state,
            output_url=first.output_url,
            output_key=first.output_key,
            input_bytes=first.input_bytes,
            output_bytes=first.output_bytes,
            previews=first.previews,
            error=first.error,
            reused=case((done, Reuse.REQUEST.value), else_=None),
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def stranded(session: Session, limit: int = 100) -> set[uuid.UUID]:
    """Requests with a waiting image whose first image is final: none, unless a path that ended a first image forgot
    ``settle_repeats``. The sweeper settles them, so a repeat can never keep its request open for ever. A read,
    through the (state, lease_until) index: no write lock when there is nothing to do."""
    first = aliased(Image)
    return set(
        session.scalars(
            select(Image.request_id)
            .join(first, first.id == Image.repeat_of)
            .where(Image.state == ImageState.WAITING.value, first.state.in_(_FINAL))
            .limit(limit)
        )
    )
