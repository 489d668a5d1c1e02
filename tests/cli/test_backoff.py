"""The restart policy for supervised children: back-off for a child failing at start, at once for a crash later."""

from __future__ import annotations

from batchpress.cli.backoff import EXIT_STARTUP, GIVE_UP_AFTER, GRACE_SECONDS, Restarts, backoff_delay


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_delays_double_up_to_thirty_seconds() -> None:
    assert [backoff_delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff_delay(10_000) == 30


def test_a_child_failing_at_start_is_restarted_with_back_off_then_given_up() -> None:
    clock = Clock()
    restarts = Restarts(clock=clock)
    delays = []
    for _ in range(GIVE_UP_AFTER - 1):
        restarts.started()
        clock.now += 2  # dies two seconds after it was started
        decision = restarts.exited(1, "worker process", 42)
        assert decision.delay is not None
        assert decision.message.startswith("worker process 4")
        assert f"exited with code 1 at start (2 s); starting another in {decision.delay:g} s" in decision.message
        delays.append(decision.delay)
        clock.now += decision.delay
    assert delays == [1, 2, 4, 8]
    restarts.started()
    clock.now += 2
    decision = restarts.exited(1, "worker process", 43)
    assert decision.delay is None
    assert decision.message == (
        f"worker process keeps failing at start ({GIVE_UP_AFTER} times in a row, last with exit code 1); "
        "see its error above"
    )
    assert decision.exit_code == 1


def test_a_child_that_ran_fine_is_restarted_at_once_and_the_count_resets() -> None:
    clock = Clock()
    restarts = Restarts(clock=clock)
    for _ in range(GIVE_UP_AFTER - 1):  # one failure short of giving up
        restarts.started()
        clock.now += 1
        assert restarts.exited(1, "API process", 7).delay is not None
    restarts.started()
    clock.now += GRACE_SECONDS + 1
    crashed = restarts.exited(-9, "API process", 7)
    assert crashed.delay == 1.0
    assert crashed.message == f"API process 7 exited with code -9 after {GRACE_SECONDS + 1:.0f} s; starting another"
    restarts.started()
    clock.now += 1
    assert restarts.exited(1, "API process", 8).delay == 1.0, "counting starts again after a healthy run"


def test_a_child_that_says_restarting_will_not_help_is_given_up_at_once() -> None:
    clock = Clock()
    restarts = Restarts(clock=clock)
    clock.now += 3
    decision = restarts.exited(EXIT_STARTUP, "worker process", 9)
    assert decision.delay is None
    assert decision.exit_code == EXIT_STARTUP
    assert decision.message == "worker process 9 could not start (exit code 78); see its error above"


def test_failures_of_different_kinds_still_back_off() -> None:
    clock = Clock()
    restarts = Restarts(clock=clock)
    delays = []
    for code in [1, -9, 1]:
        restarts.started()
        clock.now += 1
        delays.append(restarts.exited(code, "worker process", 1).delay)
    assert delays == [1, 2, 4]
