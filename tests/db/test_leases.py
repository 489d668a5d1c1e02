"""An image with no attempt left is given up, never handed back: a requeued one no claim would take would come back
on every sweep for ever. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import event, text, update
from sqlalchemy.orm import Session, sessionmaker

from batchpress.models import Image, ImageState
from batchpress.processing.leases import (
    LeaseCensus,
    claim_images,
    give_up_exhausted,
    lease_census,
    new_token,
    renew_leases,
    requeue_expired,
)
from tests.db.conftest import new_request

PAST = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def state_of(sessions: sessionmaker[Session], image_id: int) -> tuple[str, int]:
    with sessions() as session:
        image = session.get_one(Image, image_id)
        return image.state, image.attempts


def test_an_exhausted_image_whose_lease_ran_out_is_not_requeued_but_given_up(
    sessions: sessionmaker[Session],
) -> None:
    request_id, (exhausted, retried) = new_request(sessions, 2)
    with sessions.begin() as session:
        claimed = claim_images(session, [exhausted, retried], token=new_token(), lease_seconds=60, max_attempts=3)
        assert len(claimed) == 2
        session.execute(update(Image).where(Image.id == exhausted).values(attempts=3, lease_until=PAST))
        session.execute(update(Image).where(Image.id == retried).values(lease_until=PAST))
    # The order a sweep would meet them in if the lease ran out just after give_up_exhausted looked.
    with sessions.begin() as session:
        requeued = requeue_expired(session, lease_seconds=60, max_attempts=3)
    assert [r.image_id for r in requeued] == [retried]
    assert state_of(sessions, exhausted) == (ImageState.PROCESSING.value, 3)
    with sessions.begin() as session:
        assert give_up_exhausted(session, max_attempts=3) == {request_id}
    assert state_of(sessions, exhausted) == (ImageState.FAILED.value, 3)
    assert state_of(sessions, retried) == (ImageState.PENDING.value, 1)


def test_a_pending_image_with_no_attempt_left_is_given_up(sessions: sessionmaker[Session]) -> None:
    """What the old sweep left behind: handed back with every attempt spent, so no claim takes it."""
    request_id, (stuck,) = new_request(sessions, 1)
    with sessions.begin() as session:
        session.execute(update(Image).where(Image.id == stuck).values(attempts=3, lease_until=PAST))
    with sessions.begin() as session:
        assert claim_images(session, [stuck], token=new_token(), lease_seconds=60, max_attempts=3) == []
        assert requeue_expired(session, lease_seconds=60, max_attempts=3) == []
        assert give_up_exhausted(session, max_attempts=3) == {request_id}
    assert state_of(sessions, stuck) == (ImageState.FAILED.value, 3)


def test_a_claim_finds_its_images_by_id_however_many_are_pending(sessions: sessionmaker[Session]) -> None:
    """Right after a big upload the planner's statistics still say few images are pending. A claim that then read
    every pending image through the state index cost 15 ms a chunk at 100,000 pending on PostgreSQL, growing with
    the backlog; by primary key it reads only its own rows."""
    new_request(sessions, 500)
    with sessions.begin() as session:
        session.execute(update(Image).values(state=ImageState.DONE.value))
        session.execute(text("ANALYZE"))  # statistics taken while nothing was pending
    _, pending = new_request(sessions, 3000)
    statements: list[tuple[str, Any]] = []
    engine = sessions.kw["bind"]

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with sessions.begin() as session:
            claimed = claim_images(session, pending[:30], token=new_token(), lease_seconds=60, max_attempts=3)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert [c.id for c in claimed] == pending[:30]
    claim, parameters = next((s, p) for s, p in statements if s.lstrip().upper().startswith("UPDATE"))
    with engine.connect() as connection:
        cursor = connection.connection.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute("EXPLAIN ANALYZE " + claim, parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Index Scan using pk_image on image" in plan, plan
            removed = [int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", plan)]
            assert sum(removed) <= 30, plan
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + claim, parameters)
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            assert "SEARCH image USING INTEGER PRIMARY KEY" in plan, plan
        connection.rollback()


def test_the_census_tells_live_leases_from_lapsed_ones(sessions: sessionmaker[Session]) -> None:
    _, (live, lapsed, _waiting) = new_request(sessions, 3)
    with sessions.begin() as session:
        assert lease_census(session) == LeaseCensus(live=False, lapsed=False)
        claim_images(session, [live, lapsed], token=new_token(), lease_seconds=60, max_attempts=3)
        assert lease_census(session) == LeaseCensus(live=True, lapsed=False)
        session.execute(update(Image).where(Image.id == lapsed).values(lease_until=PAST))
        assert lease_census(session) == LeaseCensus(live=True, lapsed=True)


def test_pending_images_come_back_only_when_asked(sessions: sessionmaker[Session]) -> None:
    """A sweep that sees a worker busy leaves pending images to the queue, unless a lapsed lease says a worker
    died and may have taken their messages with it."""
    _, (busy, waiting) = new_request(sessions, 2)
    with sessions.begin() as session:
        session.execute(update(Image).where(Image.id == waiting).values(lease_until=PAST))
        claim_images(session, [busy], token=new_token(), lease_seconds=60, max_attempts=3)
    with sessions.begin() as session:
        assert requeue_expired(session, lease_seconds=60, max_attempts=3) == []
        assert requeue_expired(session, lease_seconds=60, max_attempts=3, pending=False) == []
        [requeued] = requeue_expired(session, lease_seconds=60, max_attempts=3, pending=True)
    assert (requeued.image_id, requeued.worker_lost) == (waiting, False)
    assert state_of(sessions, waiting) == (ImageState.PENDING.value, 0)


def test_leases_are_renewed_for_the_tokens_named(sessions: sessionmaker[Session]) -> None:
    _, (mine, theirs) = new_request(sessions, 2)
    token, other = new_token(), new_token()
    with sessions.begin() as session:
        claim_images(session, [mine], token=token, lease_seconds=1, max_attempts=3)
        claim_images(session, [theirs], token=other, lease_seconds=1, max_attempts=3)
        session.execute(update(Image).values(lease_until=PAST))
        renew_leases(session, tokens=[token], lease_seconds=60)
    with sessions.begin() as session:
        assert [r.image_id for r in requeue_expired(session, lease_seconds=60, max_attempts=3)] == [theirs]
