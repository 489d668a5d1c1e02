"""The supervision loop behind ``serve``, with real child processes: a dead child comes back, one that cannot start
ends the service, quick failures back off and then give up, and stopping leaves nothing running."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from itertools import pairwise

import pytest

from batchpress.cli.backoff import EXIT_STARTUP, Restarts
from batchpress.cli.supervision import Child, PopenProcess, Process, Supervisor

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
)


def spawned(target: Callable[..., object], *args: object) -> Callable[[], Process]:
    """Start ``target(*args)`` the way API processes are started (multiprocessing's ``spawn``)."""

    def start() -> Process:
        process = multiprocessing.get_context("spawn").Process(target=target, args=args)
        process.start()
        return process

    return start


def command(code: str) -> Callable[[], Process]:
    """Start ``python -c code`` the way the worker is started (a ``Popen``)."""
    return lambda: PopenProcess(subprocess.Popen([sys.executable, "-c", code]))


class Started:
    """A child's ``start`` that remembers every process it started, and when."""

    def __init__(self, start: Callable[[], Process]) -> None:
        self._start = start
        self.processes: list[Process] = []
        self.times: list[float] = []

    def __call__(self) -> Process:
        process = self._start()
        self.processes.append(process)
        self.times.append(time.monotonic())
        return process


def quick(give_up_after: int = 5, delay: float = 0.1) -> Callable[[], Restarts]:
    return lambda: Restarts(give_up_after=give_up_after, delay=lambda _attempt: delay)


def eventually(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Running:
    """A supervisor running in a thread of its own, as ``serve`` runs it beside a single API process."""

    def __init__(self, children: list[Child], policy: Callable[[], Restarts], check_seconds: float = 0.2) -> None:
        self.stopping = threading.Event()
        self.supervisor = Supervisor(children, self.stopping, policy=policy, check_seconds=check_seconds)
        self.thread = threading.Thread(target=self.supervisor.run, daemon=True)
        self.thread.start()

    def ended(self, timeout: float = 15) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def stop(self) -> None:
        self.stopping.set()
        assert self.ended(), "the supervisor did not stop its children"


@pytest.fixture(autouse=True)
def _supervision_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="batchpress.cli.supervision")


def kill_the_first_and_wait_for_another(started: Started) -> None:
    eventually(lambda: len(started.processes) == 1)
    pid = started.processes[0].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: len(started.processes) == 2)
    assert started.processes[1].exitcode is None


def test_a_killed_child_comes_back_and_stopping_ends_every_child(caplog: pytest.LogCaptureFixture) -> None:
    spawn = Started(spawned(time.sleep, 60))
    popen = Started(command("import time; time.sleep(60)"))
    running = Running([Child("API process", spawn, 10), Child("worker process", popen, 10)], quick())
    try:
        kill_the_first_and_wait_for_another(spawn)
        kill_the_first_and_wait_for_another(popen)
        for name, started in [("API process", spawn), ("worker process", popen)]:
            assert f"{name} {started.processes[0].pid} exited with code -9 at start" in caplog.text
    finally:
        running.stop()
    assert running.supervisor.failure is None
    # Each asked to stop (SIGTERM), none killed, none started again while stopping.
    assert [p.exitcode for p in spawn.processes + popen.processes] == [-signal.SIGKILL, -signal.SIGTERM] * 2
    assert f"worker process {popen.processes[1].pid} stopped" in caplog.text


def test_a_child_that_cannot_start_stops_the_others() -> None:
    sleeper = Started(command("import time; time.sleep(60)"))
    broken = Started(spawned(sys.exit, EXIT_STARTUP))
    running = Running([Child("worker process", sleeper, 10), Child("API process", broken, 10)], quick())
    assert running.ended(), "run did not return after a child gave up"
    assert running.stopping.is_set(), "serve's API was not told to stop"
    failure = running.supervisor.failure
    assert failure is not None
    assert failure.code == EXIT_STARTUP
    assert failure.line == f"API process {broken.processes[0].pid} could not start (exit code 78); see its error above"
    assert len(broken.processes) == 1, "started again after it said restarting would not help"
    assert sleeper.processes[0].exitcode == -signal.SIGTERM


def test_quick_failures_back_off_then_give_up() -> None:
    failing = Started(command("raise SystemExit(1)"))
    # Checked every 0.05 s, a restart that did not wait would follow within about 0.1 s.
    running = Running([Child("worker process", failing, 10)], quick(give_up_after=3, delay=0.5), check_seconds=0.05)
    assert running.ended()
    failure = running.supervisor.failure
    assert failure is not None
    assert failure.code == 1
    assert failure.line == (
        "worker process keeps failing at start (3 times in a row, last with exit code 1); see its error above"
    )
    assert len(failing.times) == 3
    assert all(later - earlier >= 0.5 for earlier, later in pairwise(failing.times)), "restarted without waiting"


def test_stopping_during_a_back_off_starts_nothing_more(caplog: pytest.LogCaptureFixture) -> None:
    failing = Started(command("raise SystemExit(1)"))
    running = Running([Child("worker process", failing, 10)], quick(delay=60))
    eventually(lambda: "starting another in 60 s" in caplog.text)
    running.stop()
    assert len(failing.processes) == 1
    assert running.supervisor.failure is None


def test_a_child_that_ignores_sigterm_is_killed(caplog: pytest.LogCaptureFixture) -> None:
    ready = threading.Event()

    def start() -> Process:
        popen = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE)
        assert popen.stdout is not None
        if popen.stdout.readline() == b"ready\n":
            ready.set()
        return PopenProcess(popen)

    stubborn = Started(start)
    running = Running([Child("worker process", stubborn, 0.5)], quick())
    eventually(ready.is_set)
    running.stop()
    assert stubborn.processes[0].exitcode == -signal.SIGKILL
    assert f"worker process {stubborn.processes[0].pid} did not stop in 0.5 s; killing it" in caplog.text


def test_a_supervisor_stopped_before_it_runs_starts_nothing() -> None:
    """``serve`` stops the supervisor when its API fails to start, perhaps before the supervisor's thread ran."""
    never = Started(command("import time; time.sleep(60)"))
    stopping = threading.Event()
    stopping.set()
    Supervisor([Child("worker process", never, 10)], stopping).run()
    assert never.processes == []
