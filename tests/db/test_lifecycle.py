"""Every change of a request's status, through the lifecycle package with its collaborators passed in: a database
of each kind, settings, and enqueuers that record what would be published. No broker, no worker."""

from __future__ import annotations

import datetime as dt
import functools
import threading
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from batchpress.config import Settings
from batchpress.db.engine import Database
from batchpress.lifecycle.finish import finish
from batchpress.lifecycle.start import fan_out
from batchpress.lifecycle.sweep import Sweeper, sweep
from batchpress.models import Image, ImageState, ProcessingRequest, RequestStatus, WebhookEvent
from batchpress.processing.fair_share import planned_chunks
from batchpress.processing.leases import claim_images, new_token
from batchpress.processing.results import Compressed, Failed, record_results
from tests.db.conftest import new_request

PAST = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


@dataclass
class Published:
    """What the lifecycle asked to publish; ``broken`` makes every publish fail, as a broker that is down does."""

    chunks: list[uuid.UUID] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    broken: bool = False

    def chunk(self, request_id: uuid.UUID) -> None:
        if self.broken:
            raise ConnectionError("broker down")
        self.chunks.append(request_id)

    def event(self, event_id: str, delay: float = 0) -> None:
        if self.broken:
            raise ConnectionError("broker down")
        self.events.append(event_id)


def status_of(db: Database, request_id: uuid.UUID) -> str:
    with db.session(read_only=True) as session:
        return session.get_one(ProcessingRequest, request_id).status


def finisher(db: Database, settings: Settings, published: Published) -> functools.partial[str | None]:
    return functools.partial(finish, db, settings=settings, enqueue_event=published.event)


def complete(db: Database, image_ids: list[int], *, failed: frozenset[int] = frozenset()) -> None:
    """What a worker does with each image: claim it, then record an outcome."""
    token = new_token()
    with db.session() as session:
        claim_images(session, image_ids, token=token, lease_seconds=60, max_attempts=5)
    outcomes = [
        (i, Failed("timed out") if i in failed else Compressed(f"http://o/{i}.jpg", 100, 40, output_key=f"k/{i}.jpg"))
        for i in image_ids
    ]
    with db.session() as session:
        record_results(session, outcomes, token=token)


def test_start_marks_processing_and_publishes_a_message_for_every_chunk_but_the_callers(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    request_id, _ = new_request(sessions, 100)
    published = Published()
    chunks = fan_out(database, request_id, published.chunk, finisher(database, settings, published))
    assert status_of(database, request_id) == RequestStatus.PROCESSING.value
    assert chunks == planned_chunks(100, 100) > 1
    assert published.chunks == [request_id] * (chunks - 1)  # the caller claims the first chunk itself
    # Delivered twice (the queue may), the request is already processing: its messages go out again, harmlessly,
    # as claims decide who works on what.
    assert fan_out(database, request_id, published.chunk, finisher(database, settings, published)) == chunks


def test_a_request_with_nothing_pending_is_finished_by_its_start(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    request_id, ids = new_request(sessions, 2)
    complete(database, ids)
    published = Published()
    assert fan_out(database, request_id, published.chunk, finisher(database, settings, published)) == 0
    assert status_of(database, request_id) == RequestStatus.COMPLETED.value
    assert len(published.events) == 1  # its webhook, published after the commit


def test_finish_happens_exactly_once_among_racing_callers(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    request_id, ids = new_request(sessions, 3)
    complete(database, ids, failed=frozenset({ids[0]}))
    published = Published()
    results: list[str | None] = []
    start = threading.Barrier(4)

    def race() -> None:
        start.wait()
        results.append(finish(database, request_id, settings=settings, enqueue_event=published.event))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r for r in results if r is not None] == [RequestStatus.COMPLETED_WITH_ERRORS.value]
    assert len(results) == 4
    assert status_of(database, request_id) == RequestStatus.COMPLETED_WITH_ERRORS.value
    with database.session(read_only=True) as session:
        events = session.scalars(select(WebhookEvent.id).where(WebhookEvent.request_id == request_id)).all()
    assert len(events) == 1
    assert published.events == list(events)


def test_a_broker_that_is_down_loses_no_finish_and_the_sweep_publishes_the_event_later(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    request_id, ids = new_request(sessions, 2)
    complete(database, ids)
    down = Published(broken=True)
    assert finish(database, request_id, settings=settings, enqueue_event=down.event) == RequestStatus.COMPLETED.value
    assert status_of(database, request_id) == RequestStatus.COMPLETED.value  # committed, not rolled back
    up = Published()
    report = sweep(database, settings, up.chunk, up.event)
    assert report.webhooks == 1
    assert len(up.events) == 1


def test_the_sweep_hands_back_lapsed_work_gives_up_the_exhausted_and_finishes_what_nobody_finished(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    lost, (lost_image,) = new_request(sessions, 1)
    poison, (poison_image,) = new_request(sessions, 1)
    forgotten, forgotten_ids = new_request(sessions, 2)
    complete(database, forgotten_ids)  # recorded, but the worker died before the terminal move
    with database.session() as session:
        claim_images(session, [lost_image, poison_image], token=new_token(), lease_seconds=60, max_attempts=5)
        session.execute(update(Image).where(Image.id.in_([lost_image, poison_image])).values(lease_until=PAST))
        session.execute(update(Image).where(Image.id == poison_image).values(attempts=settings.max_attempts))
    published = Published()
    report = Sweeper(database, settings, published.chunk, published.event).sweep()
    assert (report.requeued, report.gave_up, report.finished) == (1, 1, 2)
    assert published.chunks == [lost]  # a message for the lost worker's image, which is claimed alone
    assert status_of(database, poison) == RequestStatus.FAILED.value
    assert status_of(database, forgotten) == RequestStatus.COMPLETED.value
    with database.session(read_only=True) as session:
        assert session.get_one(Image, lost_image).state == ImageState.PENDING.value
    # A steady-state pass finds nothing more to do.
    again = Sweeper(database, settings, published.chunk, published.event).sweep()
    assert (again.requeued, again.gave_up, again.finished) == (0, 0, 0)
