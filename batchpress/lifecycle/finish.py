"""Finishing a request: the terminal move, exactly once, and its webhook event."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable

from sqlalchemy import exists, select

from batchpress.config import Settings
from batchpress.db.engine import Database
from batchpress.db.unit_of_work import unit_of_work
from batchpress.lifecycle.transitions import finish_request
from batchpress.models import Image
from batchpress.processing.leases import OPEN_STATES
from batchpress.webhooks.events import create_event

log = logging.getLogger(__name__)

EnqueueEvent = Callable[[str], None]


def finish(db: Database, request_id: uuid.UUID, *, settings: Settings, enqueue_event: EnqueueEvent) -> str | None:
    """Try the terminal move in a transaction of its own. The one caller that makes it also creates the webhook
    event in that transaction, logs, and publishes the delivery after the commit; every other caller gets None."""
    with db.session(read_only=True, autocommit=True) as session:
        # Every chunk's end asks; a read answers most of them without queueing for SQLite's write lock. Safe, as
        # each caller has committed its own results: the last to commit also reads last and sees none open.
        if session.scalar(select(exists().where(Image.request_id == request_id, Image.state.in_(OPEN_STATES)))):
            return None
    with unit_of_work(db.session()) as work:
        status = finish_request(work.session, request_id)
        event_id = create_event(work.session, settings, request_id, status) if status else None
        if event_id is not None:
            work.publish(f"webhook {event_id}", functools.partial(enqueue_event, event_id))
        if status is not None:
            log.info("request %s finished: %s", request_id, status)
    return status
