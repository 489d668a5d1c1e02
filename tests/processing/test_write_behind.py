"""The write-behind recorder: writes in order on a thread of their own, at most one ahead, spaced in time."""

from __future__ import annotations

import contextvars
import threading

from batchpress.processing.write_behind import WriteBehind

request = contextvars.ContextVar("request", default="none")


def test_writes_run_in_order_on_another_thread_with_the_callers_context() -> None:
    written: list[tuple[int, str, str]] = []

    def write(item: int) -> None:
        written.append((item, threading.current_thread().name, request.get()))

    recorder = WriteBehind(write)
    token = request.set("req-1")
    for item in range(5):
        recorder.submit(item)
    request.reset(token)
    recorder.drain()
    assert [item for item, _, _ in written] == [0, 1, 2, 3, 4]
    assert all(name.startswith("record") for _, name, _ in written)
    assert {ctx for _, _, ctx in written} == {"req-1"}, "log lines keep naming the request"


def test_the_compressor_never_gets_more_than_one_write_ahead() -> None:
    release = threading.Event()
    started = threading.Event()
    written: list[int] = []

    def write(item: int) -> None:
        started.set()
        release.wait(5)
        written.append(item)

    recorder = WriteBehind(write)
    recorder.submit(1)  # in flight, held
    assert started.wait(5)
    second = threading.Thread(target=recorder.submit, args=(2,))
    second.start()
    second.join(0.2)
    assert second.is_alive(), "the second submit waits for the write in flight"
    release.set()
    second.join(5)
    recorder.drain()
    assert written == [1, 2]


def test_writes_are_spaced_in_time_counted_across_chunks() -> None:
    now = [100.0]
    recorder: WriteBehind[int] = WriteBehind(lambda _: None, every_seconds=0.5, clock=lambda: now[0])
    assert recorder.due(), "the first result after a pause is written at once"
    recorder.submit(1)
    now[0] += 0.3
    assert not recorder.due()
    now[0] += 0.2
    assert recorder.due()
    recorder.drain()
