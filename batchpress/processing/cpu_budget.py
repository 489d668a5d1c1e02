"""A CPU budget per image: no file holds a worker for more than ``BATCHPRESS_MAX_IMAGE_SECONDS`` of decode and
encode, and one that would fails for good instead of going round the workers.

Two stops. The soft one is a CPU-time timer (``ITIMER_PROF``) whose signal raises ``OverBudget`` in the
compressing thread, which must be the main one, the next time the codec returns to Python: Pillow feeds its decoders
and drains its encoders a buffer at a time, so that is soon. The hard one is for a C call that never returns: a
watchdog thread that, past 1.5 times the budget, records the image as failed and kills its own process. Celery
replaces the process, and the chunk's other images come back when their leases lapse.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)

# The hard stop comes this much later than the soft one, which should have fired long before.
HARD_FACTOR = 1.5
HARD_GRACE_SECONDS = 2.0
WATCH_INTERVAL_SECONDS = 0.25
# CPU time between soft stops, when the first one's exception was swallowed.
RERAISE_SECONDS = 0.05

OnStuck = Callable[[str], None]


class OverBudget(Exception):
    """The image spent its CPU budget; ``str(exc)`` is the reason stored for the user."""


class CpuBudget:
    """One per worker process, around each image's ``compress_image`` (``limit``)."""

    def __init__(self, seconds: float, *, kill: Callable[[], None] | None = None) -> None:
        self.seconds = seconds
        self.stage = "decode"
        self._kill = kill or (lambda: os.kill(os.getpid(), signal.SIGKILL))
        self._lock = threading.Lock()
        self._armed: tuple[float, OnStuck] | None = None  # process CPU deadline of the hard stop, and what it does
        self._watchdog: threading.Thread | None = None

    def reason(self) -> str:
        return f"took more than {self.seconds:g} s of CPU to {self.stage}"

    def enter(self, stage: str) -> None:
        """What the image is doing now (``decode``, ``encode``), for the reason."""
        self.stage = stage

    @contextmanager
    def limit(self, on_stuck: OnStuck) -> Iterator[None]:
        """Raise ``OverBudget`` once the process has spent the budget inside the block; past the hard stop, call
        ``on_stuck(reason)`` from the watchdog and kill the process. Outside the main thread only the hard stop
        can act, as signals reach the main thread alone."""
        main = threading.current_thread() is threading.main_thread()
        self.stage = "decode"
        previous: Callable[[int, FrameType | None], object] | int | None = None
        if main:
            previous = signal.signal(signal.SIGPROF, self._over)
            signal.setitimer(signal.ITIMER_PROF, self.seconds)
        with self._lock:
            self._armed = (time.process_time() + self.seconds * HARD_FACTOR + HARD_GRACE_SECONDS, on_stuck)
            if self._watchdog is None:  # started on first use: after the pool process's fork
                self._watchdog = threading.Thread(target=self._watch, name="cpu-budget", daemon=True)
                self._watchdog.start()
        try:
            yield
        finally:
            if main:
                signal.setitimer(signal.ITIMER_PROF, 0)
                signal.signal(signal.SIGPROF, previous)
            with self._lock:
                self._armed = None

    def _over(self, _signum: int, _frame: FrameType | None) -> None:
        # Raised where the main thread happens to be, which may be a weakref callback or a ``__del__`` run by the
        # garbage collector, where Python prints the exception and drops it: so the timer rings again until one
        # lands in the compressing code (``limit`` disarms it on the way out).
        signal.setitimer(signal.ITIMER_PROF, RERAISE_SECONDS)
        raise OverBudget(self.reason())

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL_SECONDS)
            with self._lock:
                armed = self._armed
            if armed is None or time.process_time() < armed[0]:
                continue
            reason = f"{self.reason()}; its worker process was stopped"
            log.error("an image %s and did not stop; killing this worker process", reason)
            try:
                armed[1](reason)
            finally:
                self._kill()
            return
