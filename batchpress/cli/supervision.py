"""The one loop that keeps ``serve``'s children running: its worker and, with several, its API processes.

Each child is started, watched, and started again when it dies, by the policy of cli/backoff.py. A child that
cannot start (or keeps dying at start) ends the whole service, since every replacement would fail the same way:
the loop records why in ``failure`` and sets the event that also stops the API. Once that event is set, the loop
asks every child to shut down gracefully, at once, and kills what is left after that child's own grace.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from batchpress.cli.backoff import Restarts
from batchpress.cli.startup import StartupError

log = logging.getLogger(__name__)
# How soon a dead child is noticed; a check is one non-blocking waitpid per child.
CHECK_SECONDS = 0.2


class Process(Protocol):
    """What the loop needs of a started child; ``multiprocessing``'s processes have it, a ``Popen`` gets it
    from ``PopenProcess``."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


class PopenProcess:
    """A command's process seen as a ``Process``."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def terminate(self) -> None:
        self._popen.terminate()

    def kill(self) -> None:
        self._popen.kill()

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)


@dataclass(frozen=True)
class Child:
    """One supervised child: ``name`` as the log lines call it ("worker process"), ``start`` starts one (and says
    so), ``stop_seconds`` is how long its graceful shutdown may take before it is killed."""

    name: str
    start: Callable[[], Process]
    stop_seconds: float


@dataclass
class _Slot:
    child: Child
    restarts: Restarts
    process: Process | None = None
    due: float | None = None  # when the replacement of a dead process starts


class Supervisor:
    """Keeps one process per ``children`` entry running while ``run`` runs. ``stopping`` ends it: set by whoever
    ends the service, or by the loop itself when a child gives up (with ``failure`` saying why)."""

    def __init__(
        self,
        children: Sequence[Child],
        stopping: threading.Event,
        *,
        policy: Callable[[], Restarts] = Restarts,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self._slots = [_Slot(child, policy()) for child in children]
        self._stopping = stopping
        self._check_seconds = check_seconds
        self.failure: StartupError | None = None

    def run(self) -> None:
        """Start the children, watch them until ``stopping`` is set, then stop them. Only this thread touches
        them: a child's parent-death signal follows the thread that started it, which must outlive the child."""
        try:
            for slot in self._slots:
                self._start(slot)
            while not self._stopping.wait(self._check_seconds):
                for slot in self._slots:
                    if self._stopping.is_set():  # a child gave up
                        break
                    self._check(slot)
        finally:
            self._stop()

    def _start(self, slot: _Slot) -> None:
        if self._stopping.is_set():
            return
        slot.process = slot.child.start()
        slot.restarts.started()
        slot.due = None

    def _check(self, slot: _Slot) -> None:
        if slot.due is not None:
            if time.monotonic() >= slot.due:
                self._start(slot)
            return
        process = slot.process
        if process is None or (code := process.exitcode) is None:
            return
        decision = slot.restarts.exited(code, slot.child.name, process.pid)
        if decision.delay is None:
            self.failure = StartupError(decision.message, code=decision.exit_code)
            self._stopping.set()
            return
        log.warning("%s", decision.message)
        slot.due = time.monotonic() + decision.delay

    def _stop(self) -> None:
        """SIGTERM every running child at once (each one's graceful shutdown), then SIGKILL any still running
        after its ``stop_seconds``."""
        self._stopping.set()
        running = [(s.child, s.process) for s in self._slots if s.process is not None and s.process.exitcode is None]
        for _, process in running:
            process.terminate()
        started = time.monotonic()
        for child, process in running:
            process.join(max(0.0, started + child.stop_seconds - time.monotonic()))
            if process.exitcode is None:
                log.warning("%s %s did not stop in %g s; killing it", child.name, process.pid, child.stop_seconds)
                process.kill()
                process.join()
            log.info("%s %s stopped", child.name, process.pid)
