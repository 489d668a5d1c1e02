"""The sweeper: every few seconds, in every worker, it brings back work a dead worker or a lost message dropped,
finishes requests nobody finished, and sends webhook attempts that are due."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from dataclasses import dataclass, replace

from sqlalchemy import select

from batchpress.config import Settings
from batchpress.db.engine import Database
from batchpress.db.revisions import bump_revision
from batchpress.db.unit_of_work import unit_of_work
from batchpress.lifecycle.delete import delete_requests, doomed_keys, expired, forget_validators, purge
from batchpress.lifecycle.finish import EnqueueEvent, finish
from batchpress.lifecycle.start import Enqueue
from batchpress.models import Image, ProcessingRequest, RequestStatus
from batchpress.processing.fair_share import planned_chunks
from batchpress.processing.leases import (
    OPEN_STATES,
    LeaseCensus,
    Requeued,
    give_up_exhausted,
    lease_census,
    requeue_expired,
)
from batchpress.processing.repeats import settle_repeats, stranded
from batchpress.storage import ImageStorage
from batchpress.webhooks.delivery import due_events

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepReport:
    requeued: int
    gave_up: int
    finished: int
    webhooks: int
    deleted: int = 0  # requests past retention


# Retention and left-over doomed outputs: once a minute per worker is plenty, and keeps steady passes to index probes.
RETENTION_EVERY_SECONDS = 60.0
# Requests deleted a pass: one transaction each, so a big one does not hold the write lock for long.
RETENTION_BATCH = 20


def keep_storage_bounded(db: Database, settings: Settings, storage: ImageStorage) -> int:
    """Delete finished requests past ``retention_days`` (a bounded batch), and remove doomed outputs a crash or a
    storage failure left behind; returns how many requests went. A failure is logged and left to the next pass."""
    deleted = 0
    try:
        if settings.retention_days:
            with db.session(read_only=True) as session:
                old = expired(session, days=settings.retention_days, limit=RETENTION_BATCH)
            for request_id in old:
                with db.session() as session:
                    doomed = delete_requests(session, [request_id])
                purge(db, storage, doomed)
                deleted += 1
            if old:
                log.info("retention: deleted %d requests finished over %d days ago", len(old), settings.retention_days)
            with db.session() as session:
                forget_validators(session, days=settings.retention_days)
        with db.session(read_only=True) as session:
            left = doomed_keys(session)
        purge(db, storage, left)
    except Exception:
        log.warning("retention pass failed; the next one tries again", exc_info=True)
    return deleted


class Sweeper:
    """Brings back work a dead worker or a lost message dropped, finishes requests nobody finished, and sends
    webhook attempts that are due. One per worker process, run every few seconds: a steady-state pass is a few
    index probes.

    Pending images are looked at only when a lease has lapsed (the dead worker's reserved messages went with it)
    or when no lease was live at this pass and the one before: a single idle pass may fall in the few milliseconds
    between two chunks of a busy worker, with the queue still holding the images' messages.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        enqueue: Enqueue,
        enqueue_event: EnqueueEvent,
        storage: ImageStorage | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.enqueue = enqueue
        self.enqueue_event = enqueue_event
        self.storage = storage
        self._idle_before = False
        self._passes = 0
        self._housekept_at = -RETENTION_EVERY_SECONDS

    def sweep(self) -> SweepReport:
        report = sweep(self.db, self.settings, self.enqueue, self.enqueue_event, sweeper=self)
        if self.storage is not None and time.monotonic() - self._housekept_at >= RETENTION_EVERY_SECONDS:
            self._housekept_at = time.monotonic()
            report = replace(report, deleted=keep_storage_bounded(self.db, self.settings, self.storage))
        return report

    def look_at_repeats(self, census: LeaseCensus) -> bool:
        self._passes += 1
        return not census.live or self._passes % 10 == 1

    def take_pending(self, census: LeaseCensus) -> bool:
        idle_twice = not census.live and self._idle_before
        self._idle_before = not census.live
        return census.lapsed or idle_twice


def sweep(
    db: Database, settings: Settings, enqueue: Enqueue, enqueue_event: EnqueueEvent, *, sweeper: Sweeper | None = None
) -> SweepReport:
    """One pass of the sweeper; without a ``Sweeper`` to remember the last pass, pending images are looked at
    whenever no lease is live or one has lapsed."""
    with db.session(read_only=True) as session:
        census = lease_census(session)
        # Finishable whatever the write below does: it only reopens images of requests that have open ones.
        open_requests = set(
            session.scalars(
                select(ProcessingRequest.id).where(
                    ProcessingRequest.status.in_(RequestStatus.open_states()),
                    ~select(Image.id)
                    .where(Image.request_id == ProcessingRequest.id, Image.state.in_(OPEN_STATES))
                    .exists(),
                )
            )
        )
        # Reads every waiting image of big requests: when nothing is being worked on, and every tenth pass.
        look = sweeper.look_at_repeats(census) if sweeper else True
        left_waiting = stranded(session) if look else set()
    if left_waiting:
        with db.session() as session:
            settle_repeats(session, left_waiting)
            bump_revision(session, left_waiting)
        open_requests |= left_waiting
    pending = sweeper.take_pending(census) if sweeper else census.lapsed or not census.live
    exhausted: set[uuid.UUID] = set()
    requeued: list[Requeued] = []
    if census.lapsed or pending:  # else there is nothing to give up or hand back: no write, no SQLite write lock
        with unit_of_work(db.session()) as work:
            exhausted = give_up_exhausted(work.session, max_attempts=settings.max_attempts, pending=pending)
            requeued = requeue_expired(
                work.session, lease_seconds=settings.lease_seconds, max_attempts=settings.max_attempts, pending=pending
            )
            # A message per chunk the requeued images make; one a worker was lost on is claimed alone.
            by_request: dict[uuid.UUID, int] = {}
            for image in requeued:
                if image.worker_lost:
                    work.publish(f"image {image.image_id}", functools.partial(enqueue, image.request_id))
                else:
                    by_request[image.request_id] = by_request.get(image.request_id, 0) + 1
            for request_id, count in by_request.items():
                for _ in range(planned_chunks(count, count)):
                    work.publish(f"a chunk of request {request_id}", functools.partial(enqueue, request_id))
    finished = 0
    for request_id in open_requests | exhausted:
        if finish(db, request_id, settings=settings, enqueue_event=enqueue_event) is not None:
            finished += 1
    with unit_of_work(db.session(read_only=True)) as work:
        events = due_events(work.session)
        for event_id in events:
            work.publish(f"webhook {event_id}", functools.partial(enqueue_event, event_id))
    return SweepReport(requeued=len(requeued), gave_up=len(exhausted), finished=finished, webhooks=len(events))
