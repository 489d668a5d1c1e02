"""Whose turn it is: claims on a database of each kind serve every open request, keys first, then a key's
requests, and still take every image exactly once."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from batchpress.config import Settings
from batchpress.db.engine import Database
from batchpress.models import Image
from batchpress.processing.fair_share import claim_next, has_pending, planned_chunks, release, someone_else_waits
from batchpress.processing.leases import ClaimedImage, new_token
from tests.db.conftest import new_request


def claim(database: Database, settings: Settings) -> list[ClaimedImage]:
    with database.session() as session:
        return claim_next(session, token=new_token(), lease_seconds=60, max_attempts=settings.max_attempts)


def served(database: Database, settings: Settings, claims: int) -> list[uuid.UUID]:
    """The request each of the next ``claims`` claims served."""
    order = []
    for _ in range(claims):
        chunk = claim(database, settings)
        assert chunk
        assert len({c.request_id for c in chunk}) == 1
        order.append(chunk[0].request_id)
    return order


def test_a_small_request_is_served_at_the_next_claim_behind_a_large_one(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    large, _ = new_request(sessions, 2000)
    assert served(database, settings, 3) == [large] * 3
    small, _small_ids = new_request(sessions, 3)
    # Never served, it goes first; then the two take turns until the small one has nothing left.
    assert served(database, settings, 6) == [small, large, small, large, small, large]
    with database.session(read_only=True) as session:
        assert not has_pending(session, small, max_attempts=settings.max_attempts)
        assert has_pending(session, large, max_attempts=settings.max_attempts)


def test_keys_take_turns_first_then_a_keys_requests(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    first, _ = new_request(sessions, 500, api_key_id="a" * 16)
    second, _ = new_request(sessions, 500, api_key_id="a" * 16)
    other, _ = new_request(sessions, 500, api_key_id="b" * 16)
    # Key b's one request gets every other claim; key a's two share the rest.
    assert served(database, settings, 6) == [first, other, second, other, first, other]


def test_requests_without_keys_take_turns(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    first, _ = new_request(sessions, 500)
    second, _ = new_request(sessions, 500)
    assert served(database, settings, 4) == [first, second, first, second]


def test_claims_take_every_image_once_in_the_planned_number_of_chunks(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    _request_id, ids = new_request(sessions, 100)
    chunks = []
    while chunk := claim(database, settings):
        chunks.append([c.id for c in chunk])
    assert sorted(i for chunk in chunks for i in chunk) == ids
    assert len(chunks) == planned_chunks(100, 100)  # as many as the messages its start publishes
    assert len(chunks[-1]) < len(chunks[0])  # the end in smaller chunks, spread over every process


def test_an_image_a_worker_was_lost_on_is_claimed_alone(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    _, ids = new_request(sessions, 20)
    with database.session() as session:
        session.execute(update(Image).where(Image.id == ids[3]).values(attempts=1))
        session.execute(update(Image).where(Image.id == ids[5]).values(attempts=settings.max_attempts))
    chunks = [[c.id for c in chunk] for chunk in iter(lambda: claim(database, settings), [])]
    assert [ids[3]] in chunks
    claimed = [i for chunk in chunks for i in chunk]
    assert ids[5] not in claimed  # no attempt left: the sweeper gives it up, no claim takes it
    assert sorted(claimed) == sorted(set(ids) - {ids[5]})


def test_workers_claiming_at_once_take_different_images(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    _, large_ids = new_request(sessions, 300)
    _, small_ids = new_request(sessions, 7)
    taken: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def work() -> None:
        start.wait()
        while chunk := claim(database, settings):
            with lock:
                taken.extend(c.id for c in chunk)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(large_ids + small_ids)


def test_a_chunk_in_hand_gives_way_only_to_a_request_nobody_works_on(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    large, _ = new_request(sessions, 2000)
    other_large, _ = new_request(sessions, 2000)
    token = new_token()
    with database.session() as session:
        chunk = claim_next(session, token=token, lease_seconds=60, max_attempts=settings.max_attempts)
    assert chunk[0].request_id == large

    def waits() -> bool:
        with database.session(read_only=True) as session:
            return someone_else_waits(session, large, max_attempts=settings.max_attempts)

    assert waits()  # the other large request: its turn, and nobody on it
    assert served(database, settings, 1) == [other_large]
    assert not waits()  # now somebody works on it: it waits for its turn like any other
    small, _ = new_request(sessions, 3)
    assert waits()
    with database.session() as session:
        rest = [c.id for c in chunk[1:]]
        assert release(session, rest, token=token, lease_seconds=60) == len(rest)
    assert served(database, settings, 1) == [small]
    with database.session(read_only=True) as session:
        states = session.execute(select(Image.state, Image.attempts).where(Image.id.in_(rest))).all()
    # Back to pending with the attempt their claim took, so none of them is taken for a lost worker's image.
    assert {(s.state, s.attempts) for s in states} == {("pending", 0)}
