"""What an answer means for the next attempt: fast unit tests of the retry rules."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

from batchpress.config import Settings
from batchpress.webhooks.delivery import Answer, next_delay, parse_retry_after, retryable


def answer(status: int | None, retry_after: float | None = None) -> Answer:
    return Answer(status, 5, None, None if status else "timed out", retry_after)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(None, True), (500, True), (503, True), (408, True), (429, True), (400, False), (404, False), (410, False)],
)
def test_which_answers_are_retried(status: int | None, expected: bool) -> None:
    assert retryable(answer(status)) is expected


def test_delays_follow_the_schedule_with_jitter_and_run_out() -> None:
    settings = Settings(webhook_retry_schedule="0,5,300")
    assert next_delay(settings, 1, answer(500)) == pytest.approx(5, rel=0.1)
    assert next_delay(settings, 2, answer(500)) == pytest.approx(300, rel=0.1)
    assert next_delay(settings, 3, answer(500)) is None
    assert len({next_delay(settings, 2, answer(500)) for _ in range(20)}) > 1  # jittered


def test_retry_after_wins_over_the_schedule() -> None:
    settings = Settings(webhook_retry_schedule="0,5,300")
    assert next_delay(settings, 1, answer(429, retry_after=42)) == 42


def test_retry_after_header_forms() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after("99999999") == 24 * 3600
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)
    assert parse_retry_after(email.utils.format_datetime(soon)) == pytest.approx(90, abs=2)
    assert parse_retry_after("tomorrow-ish") is None
    assert parse_retry_after(None) is None


def test_bad_schedules_are_refused_at_start() -> None:
    for bad in ("", "5,soon", "-1"):
        with pytest.raises(ValueError, match="RETRY_SCHEDULE"):
            Settings(webhook_retry_schedule=bad)
