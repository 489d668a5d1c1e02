"""Deleting finished requests, by their owner or by retention, without breaking outputs other requests still list.

The rows go first, in one transaction that also dooms the outputs no remaining image lists (``doomed_output``) and
forgets their recipes, so no later image can be handed them; the objects go after the commit (``purge``). A crash
in between leaves doomed rows, which the sweeper purges later: never a row pointing at a missing object, and never
an orphan object for ever (docs/reuse.md has the races this closes).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Collection

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from batchpress.db.base import utcnow
from batchpress.db.engine import Database
from batchpress.db.upsert import upsert
from batchpress.models import DoomedOutput, Image, ProcessingRequest, RequestStatus, SourceValidator, StoredOutput
from batchpress.processing.reuse import preview_keys
from batchpress.storage import ImageStorage

log = logging.getLogger(__name__)


def delete_requests(session: Session, request_ids: Collection[uuid.UUID]) -> set[str]:
    """Delete the requests with their products, images and webhook log (foreign keys cascade); returns the output
    keys now doomed. The caller commits, then calls ``purge``."""
    if not request_ids:
        return set()
    ids = list(request_ids)
    keys = set(
        session.scalars(
            select(Image.output_key).where(Image.request_id.in_(ids), Image.output_key.is_not(None)).distinct()
        )
    )
    session.execute(delete(ProcessingRequest).where(ProcessingRequest.id.in_(ids)))
    if not keys:
        return set()
    still_listed = set(session.scalars(select(Image.output_key).where(Image.output_key.in_(keys)).distinct()))
    doomed = {k for k in keys - still_listed if k}
    if doomed:
        # Deleting the recipe rows waits for any transaction that has just share-locked them to record a reuse
        # (processing/reuse.py): those images are then listed, and the check above would keep their outputs.
        session.execute(delete(StoredOutput).where(StoredOutput.output_key.in_(doomed)))
        now = utcnow()
        session.execute(
            upsert(session, DoomedOutput).on_conflict_do_nothing(),
            [{"output_key": k, "doomed_at": now} for k in sorted(doomed)],
        )
    return doomed


def purge(db: Database, storage: ImageStorage, keys: Collection[str]) -> int:
    """Remove doomed objects from storage, each in a transaction that first takes its doomed row (so a worker
    writing the same key again waits, then writes it anew) and checks no image lists it; returns how many went.
    A storage failure leaves the row for the sweeper's next pass."""
    removed = 0
    for key in sorted(keys):
        try:
            with db.session() as session:
                taken = getattr(
                    session.execute(delete(DoomedOutput).where(DoomedOutput.output_key == key)), "rowcount", 0
                )
                listed = session.scalar(select(Image.id).where(Image.output_key == key).limit(1))
                recipe = session.scalar(select(StoredOutput.recipe).where(StoredOutput.output_key == key).limit(1))
                if taken and listed is None and recipe is None:
                    # The output first: its previews are never missing while it is there.
                    for object_key in (key, *(preview_keys(key) or ())):
                        storage.delete(object_key)
                    removed += 1
        except Exception:
            log.warning("could not remove output %s from storage; the sweeper will try again", key, exc_info=True)
    return removed


def doomed_keys(session: Session, limit: int = 500) -> list[str]:
    """Doomed outputs left over (a crash or a storage failure after the deletion), for the sweeper."""
    return list(session.scalars(select(DoomedOutput.output_key).order_by(DoomedOutput.doomed_at).limit(limit)))


def doomed_under(session: Session, prefix: str) -> bool:
    """Whether a doomed output's key starts with ``prefix`` (a recipe's, processing/reuse.py ``key_prefix``)."""
    return (
        session.scalar(select(DoomedOutput.output_key).where(DoomedOutput.output_key.startswith(prefix)).limit(1))
        is not None
    )


def revive(session: Session, key: str) -> None:
    """A worker about to write ``key`` again takes it off the doomed list first, in a transaction of its own: a
    purge that holds the row finishes (the object goes), then the worker writes it anew."""
    session.execute(delete(DoomedOutput).where(DoomedOutput.output_key == key))


def expired(session: Session, *, days: int, limit: int) -> list[uuid.UUID]:
    """Finished requests older than ``days`` (by when they finished), oldest first, at most ``limit``."""
    before = utcnow() - dt.timedelta(days=days)
    return list(
        session.scalars(
            select(ProcessingRequest.id)
            .where(
                ProcessingRequest.status.not_in(RequestStatus.open_states()),
                ProcessingRequest.finished_at < before,
            )
            .order_by(ProcessingRequest.finished_at)
            .limit(limit)
        )
    )


def forget_validators(session: Session, *, days: int) -> None:
    """Drop what origins said about URLs nobody has downloaded in full for ``days``: a later download is a full one."""
    before = utcnow() - dt.timedelta(days=days)
    session.execute(delete(SourceValidator).where(SourceValidator.updated_at < before))
