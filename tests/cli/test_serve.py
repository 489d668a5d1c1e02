"""``batchpress serve`` stops cleanly, taking its worker with it, and keeps a worker alive while it runs."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from tests.conftest import StartService
from tests.test_crash_recovery import worker_main


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_with_its_worker(start_service: StartService, sig: signal.Signals) -> None:
    service = start_service()
    worker = worker_main(service)
    family = [worker, *worker.children()]
    assert service.stop(sig) == 0
    _gone, alive = psutil.wait_procs(family, timeout=5)
    assert not alive, "worker processes outlived serve"
    assert "worker stopped" in service.log()


def test_serve_replaces_a_dead_worker(start_service: StartService) -> None:
    service = start_service()
    first = worker_main(service)
    first.kill()
    first.wait(10)
    deadline = time.monotonic() + 30
    while (second := worker_main(service)).pid == first.pid and time.monotonic() < deadline:
        time.sleep(0.2)
    assert second.pid != first.pid
    assert "starting another" in service.log()
