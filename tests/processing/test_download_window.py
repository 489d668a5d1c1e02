"""The download window: items in order, started ahead in bursts, the first one alone for a moment."""

from __future__ import annotations

import threading
import time

from batchpress.processing.download_window import DownloadWindow


class Origin:
    """A fake fetch that records when each item starts and can hold items back."""

    def __init__(self, delays: dict[int, float] | None = None) -> None:
        self.delays = delays or {}
        self.started: list[tuple[int, float]] = []
        self.lock = threading.Lock()

    def fetch(self, item: int) -> str:
        with self.lock:
            self.started.append((item, time.monotonic()))
        time.sleep(self.delays.get(item, 0))
        return f"bytes of {item}"

    def order(self) -> list[int]:
        return [item for item, _ in self.started]


def test_every_item_comes_in_order_with_its_own_download() -> None:
    origin = Origin({0: 0.02, 3: 0.05})
    window = DownloadWindow(origin.fetch)
    got = [(item, download.result()) for item, download in window.over(list(range(20)))]
    assert got == [(n, f"bytes of {n}") for n in range(20)]
    assert sorted(origin.order()) == list(range(20))


def test_never_more_than_the_window_ahead_of_the_compressor() -> None:
    origin = Origin()
    window = DownloadWindow(origin.fetch, threads=8, refill_at=4, ahead=8)
    for item, download in window.over(list(range(40))):
        download.result()
        assert len(origin.started) - item <= 8


def test_the_first_download_runs_alone_for_a_moment() -> None:
    origin = Origin({0: 0.03})
    window = DownloadWindow(origin.fetch, first_alone_seconds=1.0)
    items = window.over([0, 1, 2])
    first, download = next(items)
    assert first == 0
    assert download.done(), "the first image arrived before it was handed over"
    for _, rest in items:
        rest.result()  # every download has run, so each one's start is recorded
    started = dict(origin.started)
    assert all(started[n] >= started[0] + 0.025 for n in (1, 2)), "the others started only once it had arrived"


def test_a_slow_first_download_does_not_hold_the_rest_back() -> None:
    origin = Origin({0: 1.0})
    window = DownloadWindow(origin.fetch, first_alone_seconds=0.05)
    for _, download in window.over([0, 1, 2]):
        download.result()
    started = dict(origin.started)
    assert started[1] - started[0] < 0.5, "the others waited for the slow first download"
