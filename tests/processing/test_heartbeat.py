"""The lease heartbeat renews what its process holds, only that, and survives a failing renewal."""

from __future__ import annotations

import threading

from batchpress.processing.heartbeat import BEATS_PER_LEASE, LeaseHeartbeat


def test_renews_held_tokens_until_released() -> None:
    renewed: list[list[str]] = []
    heartbeat = LeaseHeartbeat(renewed.append, lease_seconds=60)
    assert heartbeat.interval == 60 / BEATS_PER_LEASE
    heartbeat.beat()
    assert renewed == [], "nothing held, nothing renewed"
    heartbeat.hold("b")
    heartbeat.hold("a")
    heartbeat.beat()
    heartbeat.release("b")
    heartbeat.beat()
    heartbeat.release("a")
    heartbeat.beat()
    heartbeat.stop()
    assert renewed == [["a", "b"], ["a"]]


def test_a_token_held_twice_stays_until_released_twice() -> None:
    heartbeat = LeaseHeartbeat(lambda _: None, lease_seconds=60)
    heartbeat.hold("t")
    heartbeat.hold("t")
    heartbeat.release("t")
    assert heartbeat.held() == ["t"]
    heartbeat.release("t")
    assert heartbeat.held() == []
    heartbeat.stop()


def test_a_failed_renewal_is_retried_at_the_next_beat() -> None:
    calls: list[list[str]] = []

    def flaky(tokens: list[str]) -> None:
        calls.append(tokens)
        if len(calls) == 1:
            raise ConnectionError("database restarting")

    heartbeat = LeaseHeartbeat(flaky, lease_seconds=60)
    heartbeat.hold("t")
    heartbeat.beat()
    heartbeat.beat()
    heartbeat.stop()
    assert calls == [["t"], ["t"]]


def test_the_thread_beats_on_its_own() -> None:
    beaten = threading.Event()
    heartbeat = LeaseHeartbeat(lambda _: beaten.set(), lease_seconds=0.2)
    heartbeat.hold("t")
    try:
        assert beaten.wait(5), "no renewal from the heartbeat thread"
    finally:
        heartbeat.stop()
