"""Stored outputs by recipe: the first writer wins, a loser lists the winner's output and drops its own; repeats
inside a request take their first image's result, whoever made it final. On SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from batchpress.config import Settings
from batchpress.db.engine import Database
from batchpress.lifecycle.sweep import Sweeper
from batchpress.models import Image, ImageState, ProcessingRequest, StoredOutput
from batchpress.processing.leases import give_up_exhausted
from batchpress.processing.results import Compressed, Failed, Seen, record_results
from batchpress.processing.reuse import keep_outputs
from tests.db.conftest import new_request
from tests.db.test_lifecycle import Published

RECIPE = "ab" * 32


def fresh(key: str, size: int) -> Compressed:
    seen = Seen("", "https://shop.example/a.jpg", '"v1"', None, "cd" * 32, 5000)
    return Compressed(f"https://cdn.example/{key}", 5000, size, output_key=key, recipe=RECIPE, seen=seen)


def test_the_first_writer_of_a_recipe_wins_and_the_loser_drops_its_object(sessions: sessionmaker[Session]) -> None:
    _, ids = new_request(sessions, 2)
    with sessions.begin() as session:
        first, dropped_first = keep_outputs(session, [(ids[0], fresh("c/winner.jpg", 400))], url_for=lambda k: k)
    with sessions.begin() as session:  # compressed at the same moment, with other bytes
        second, dropped_second = keep_outputs(session, [(ids[1], fresh("c/loser.jpg", 410))], url_for=lambda k: k)

    assert dropped_first == []
    assert dropped_second == ["c/loser.jpg"]
    assert first[0][1] == fresh("c/winner.jpg", 400)
    taken = second[0][1]
    assert isinstance(taken, Compressed)
    assert (taken.output_key, taken.output_url, taken.output_bytes, taken.reused) == (
        "c/winner.jpg",
        "c/winner.jpg",
        400,
        "content",
    )
    with sessions() as session:
        assert session.execute(select(StoredOutput.recipe, StoredOutput.output_key)).all() == [(RECIPE, "c/winner.jpg")]


def test_repeats_take_the_first_images_result_however_it_ends(sessions: sessionmaker[Session]) -> None:
    request_id, ids = new_request(sessions, 4)
    with sessions.begin() as session:  # ids[1] repeats ids[0]; ids[3] repeats ids[2]
        for repeat, first in ((ids[1], ids[0]), (ids[3], ids[2])):
            session.execute(
                update(Image)
                .where(Image.id == repeat)
                .values(state=ImageState.WAITING.value, repeat_of=first, lease_until=None)
            )
        session.execute(update(Image).where(Image.id == ids[2]).values(attempts=3, lease_until=None))
    with sessions.begin() as session:
        record_results(session, [(ids[0], Compressed("https://cdn.example/a.jpg", 900, 300, output_key="c/a.jpg"))])
    with sessions.begin() as session:  # the sweeper gives up on a first image: its repeat fails with it
        give_up_exhausted(session, max_attempts=3)

    with sessions() as session:
        got = session.execute(
            select(Image.state, Image.output_key, Image.input_bytes, Image.output_bytes, Image.reused, Image.error)
            .where(Image.request_id == request_id)
            .order_by(Image.id)
        ).all()
    assert [tuple(r[:5]) for r in got] == [
        ("done", "c/a.jpg", 900, 300, None),
        ("done", "c/a.jpg", 900, 300, "request"),
        ("failed", None, None, None, None),
        ("failed", None, None, None, None),
    ]
    assert got[2].error == got[3].error
    assert "gave up" in (got[3].error or "")


def test_a_failure_is_not_a_recipe(sessions: sessionmaker[Session]) -> None:
    _, ids = new_request(sessions, 1)
    with sessions.begin() as session:
        kept, dropped = keep_outputs(session, [(ids[0], Failed("HTTP 404"))], url_for=lambda k: k)
    assert kept == [(ids[0], Failed("HTTP 404"))]
    assert dropped == []


def test_a_reuse_of_an_output_deleted_meanwhile_is_left_to_compress_again(sessions: sessionmaker[Session]) -> None:
    _, ids = new_request(sessions, 2)
    with sessions.begin() as session:
        keep_outputs(session, [(ids[0], fresh("c/kept.jpg", 400))], url_for=lambda k: k)
    reuse_kept = Compressed("c/kept.jpg", 5000, 400, output_key="c/kept.jpg", reused="content")
    reuse_gone = Compressed("c/gone.jpg", 5000, 400, output_key="c/gone.jpg", reused="origin")
    with sessions.begin() as session:
        kept, dropped = keep_outputs(session, [(ids[0], reuse_kept), (ids[1], reuse_gone)], url_for=lambda k: k)
    assert kept == [(ids[0], reuse_kept)]
    assert dropped == []


def test_the_sweeper_settles_a_repeat_left_waiting_on_a_final_image(
    database: Database, sessions: sessionmaker[Session], settings: Settings
) -> None:
    request_id, ids = new_request(sessions, 2)
    with sessions.begin() as session:  # as if a path had ended the first image without settling its repeat
        session.execute(
            update(Image).where(Image.id == ids[0]).values(state="done", output_key="c/a.jpg", output_bytes=300)
        )
        session.execute(
            update(Image).where(Image.id == ids[1]).values(state="waiting", repeat_of=ids[0], lease_until=None)
        )
    published = Published()
    Sweeper(database, settings, published.chunk, published.event).sweep()

    with sessions() as session:
        repeat = session.get_one(Image, ids[1])
        assert (repeat.state, repeat.output_key, repeat.reused) == ("done", "c/a.jpg", "request")
        assert session.get_one(ProcessingRequest, request_id).status == "completed"
