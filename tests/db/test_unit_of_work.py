"""Tasks collected in a unit of work go out after its commit, never after a rollback, and a failing publish is
logged once, with what was left unsent. On SQLite and PostgreSQL."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from batchpress.db.unit_of_work import unit_of_work
from batchpress.models import ProcessingRequest
from tests.db.conftest import new_request


def test_publishes_after_the_commit_and_sees_its_rows(sessions: sessionmaker[Session]) -> None:
    request_id, _ = new_request(sessions, 1)
    seen: list[str | None] = []

    def publish() -> None:  # what a worker receiving the task would read
        with sessions() as other:
            seen.append(other.scalar(select(ProcessingRequest.status).where(ProcessingRequest.id == request_id)))

    with unit_of_work(sessions.begin()) as work:
        work.session.execute(
            update(ProcessingRequest).where(ProcessingRequest.id == request_id).values(status="processing")
        )
        work.publish("a task", publish)
        assert seen == []
    assert seen == ["processing"]


def test_nothing_is_published_after_a_rollback(sessions: sessionmaker[Session]) -> None:
    sent: list[str] = []

    def failing_transaction() -> None:
        with unit_of_work(sessions.begin()) as work:
            work.publish("a task", lambda: sent.append("sent"))
            raise RuntimeError("the transaction fails")

    with pytest.raises(RuntimeError):
        failing_transaction()
    assert sent == []


def test_the_first_failure_is_logged_and_the_rest_left_to_the_sweeper(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[int] = []

    def broker_down() -> None:
        raise ConnectionRefusedError("the broker is down")

    with caplog.at_level(logging.WARNING), unit_of_work(sessions.begin()) as work:
        work.publish("task 1", lambda: sent.append(1))
        work.publish("task 2", broker_down)
        work.publish("task 3", lambda: sent.append(3))
        work.publish("task 4", lambda: sent.append(4))
    assert sent == [1]
    [record] = [r for r in caplog.records if r.name == "batchpress.db.unit_of_work"]
    assert record.getMessage() == "could not enqueue task 2 (and 2 more tasks not sent); the sweeper will"
