"""``record_results`` stores a batch of outcomes in one go, and only where the image is still open and, for a
worker, still leased to it. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from batchpress.models import Image
from batchpress.processing.leases import claim_images, new_token
from batchpress.processing.results import Compressed, Failed, record_result, record_results
from tests.db.conftest import new_request, revision


def rows(factory: sessionmaker[Session], ids: list[int]) -> list[tuple[object, ...]]:
    with factory() as session:
        found = session.execute(
            select(Image.state, Image.output_url, Image.output_key, Image.input_bytes, Image.output_bytes, Image.error)
            .where(Image.id.in_(ids))
            .order_by(Image.id)
        ).all()
        return [tuple(row) for row in found]


def done(n: int) -> Compressed:
    return Compressed(f"https://cdn.example/{n}.jpg", 1000 + n, 400 + n, output_key=f"k/{n}.jpg", download_ms=n)


def test_a_batch_of_both_kinds_is_stored_where_the_lease_still_holds(sessions: sessionmaker[Session]) -> None:
    request_id, ids = new_request(sessions, 6)
    token = new_token()
    with sessions.begin() as session:
        claim_images(session, ids[:5], token=token, lease_seconds=60, max_attempts=3)
    before = revision(sessions, request_id)

    outcomes = [
        (ids[0], done(0)),
        (ids[1], Failed("HTTP 404 Not Found")),
        (ids[2], done(2)),
        (ids[3], Failed("x" * 1000)),
        (ids[4], done(4)),
        (ids[5], done(5)),  # never claimed with this token: not this worker's to record
    ]
    with sessions.begin() as session:
        assert record_results(session, outcomes, token=token) == 5

    assert rows(sessions, ids) == [
        ("done", "https://cdn.example/0.jpg", "k/0.jpg", 1000, 400, None),
        ("failed", None, None, None, None, "HTTP 404 Not Found"),
        ("done", "https://cdn.example/2.jpg", "k/2.jpg", 1002, 402, None),
        ("failed", None, None, None, None, "x" * 300),
        ("done", "https://cdn.example/4.jpg", "k/4.jpg", 1004, 404, None),
        ("pending", None, None, None, None, None),
    ]
    assert revision(sessions, request_id) == before + 1, "one bump for the whole batch"
    with sessions() as session:
        leases = session.execute(select(Image.lease_token, Image.lease_until).where(Image.id.in_(ids[:5]))).all()
    assert all(row == (None, None) for row in leases)


def test_a_final_image_keeps_its_first_result(sessions: sessionmaker[Session]) -> None:
    request_id, ids = new_request(sessions, 2)
    with sessions.begin() as session:
        assert record_results(session, [(ids[0], done(0)), (ids[1], done(1))]) == 2
    before = revision(sessions, request_id)
    with sessions.begin() as session:
        assert record_results(session, [(ids[0], Failed("late")), (ids[1], done(9))]) == 0
        assert not record_result(session, ids[0], done(7))
    assert rows(sessions, ids)[0][:2] == ("done", "https://cdn.example/0.jpg")
    assert rows(sessions, ids)[1][:2] == ("done", "https://cdn.example/1.jpg")
    assert revision(sessions, request_id) == before, "nothing stored, nothing bumped"
    with sessions.begin() as session:
        assert record_results(session, []) == 0
    assert isinstance(request_id, uuid.UUID)
