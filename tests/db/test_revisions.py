"""Every change a status answer shows bumps the request's revision, the key of the API's answer cache; lease
bookkeeping that the answer does not show leaves it alone. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from batchpress.api.status import StatusReads
from batchpress.api.status import _owned_revision as status_revision
from batchpress.config import Settings
from batchpress.context import Context
from batchpress.db.revisions import WouldWait, read_revision
from batchpress.lifecycle.transitions import finish_request, mark_processing
from batchpress.models import Image, WebhookEvent
from batchpress.processing.leases import claim_images, give_up_exhausted, new_token, renew_leases, requeue_expired
from batchpress.processing.results import Compressed, Failed, record_results
from batchpress.webhooks.delivery import reopen
from batchpress.webhooks.events import create_event
from tests.db.conftest import new_request, revision


def test_every_shown_change_bumps_the_revision(sessions: sessionmaker[Session]) -> None:
    request_id, (first, second, third) = new_request(sessions, 3)
    seen = [revision(sessions, request_id)]

    def bumped() -> bool:
        seen.append(revision(sessions, request_id))
        return seen[-1] > seen[-2]

    token = new_token()
    with sessions.begin() as session:
        claimed = claim_images(session, [first, second, third], token=token, lease_seconds=60, max_attempts=3)
        assert len(claimed) == 3
    assert not bumped(), "a claim changes nothing the status shows"
    with sessions.begin() as session:
        renew_leases(session, tokens=[token], lease_seconds=60)
    assert not bumped(), "nor does a lease renewal"

    with sessions.begin() as session:
        mark_processing(session, request_id)
    assert bumped(), "pending -> processing"

    done = Compressed(output_url="https://cdn.example/1.jpg", input_bytes=1000, output_bytes=400)
    with sessions.begin() as session:
        assert record_results(session, [(first, done), (second, Failed("HTTP 404"))], token=token) == 2
    assert bumped(), "results"
    with sessions.begin() as session:
        assert record_results(session, [(first, done)], token=token) == 0
    assert not bumped(), "a repeated result is not stored and changes nothing"

    with sessions.begin() as session:
        session.execute(update(Image).where(Image.id == third).values(lease_until=Image.updated_at, attempts=3))
        assert give_up_exhausted(session, max_attempts=3) == {request_id}
    assert bumped(), "an image given up"
    with sessions.begin() as session:
        assert requeue_expired(session, lease_seconds=60, max_attempts=3) == []

    with sessions.begin() as session:
        assert finish_request(session, request_id) == "completed_with_errors"
        event_id = create_event(session, Settings(), request_id, "completed_with_errors")
    assert bumped(), "the terminal move"
    assert event_id is not None

    with sessions.begin() as session:
        event = session.get_one(WebhookEvent, event_id)
        reopen(session, event)
    assert bumped(), "a redelivery asked for"


@pytest.fixture
def served(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[Context]:
    """The context an API process builds, on the test's database: the engines the status route reads through."""
    url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    context = Context.build(Settings(data_dir=tmp_path, database_url=url))
    yield context
    context.close()


def test_a_read_that_cannot_wait_answers_on_sqlite_and_declines_on_postgresql(
    sessions: sessionmaker[Session], served: Context
) -> None:
    request_id, _ = new_request(sessions, 1)
    expected = (revision(sessions, request_id), None)
    engine = served.db.autocommit_engine
    assert read_revision(engine, request_id) == expected
    assert read_revision(engine, uuid.uuid4()) is None
    if engine.dialect.name == "sqlite":
        assert read_revision(engine, request_id, wait=False) == expected
        assert read_revision(engine, uuid.uuid4(), wait=False) is None
    else:
        with pytest.raises(WouldWait):
            read_revision(engine, request_id, wait=False)
    # Either way the status route gets its answer: at once on SQLite, from a thread on PostgreSQL.
    answer = asyncio.run(status_revision(served, StatusReads(), str(request_id), None))
    assert answer == (request_id, expected[0])


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)  # PostgreSQL reads always run on a thread
def test_a_lock_sqlite_reports_sends_the_read_to_a_thread(
    sessions: sessionmaker[Session], served: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = served.db.autocommit_engine
    assert engine.dialect.name == "sqlite"
    request_id, _ = new_request(sessions, 1)

    def locked(_database: str) -> sqlite3.Connection:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr("batchpress.db.revisions._no_wait_connection", locked)
    with pytest.raises(WouldWait, match="locked"):
        read_revision(engine, request_id, wait=False)
    answer = asyncio.run(status_revision(served, StatusReads(), str(request_id), None))
    assert answer == (request_id, revision(sessions, request_id))
