"""``batchpress serve`` stops cleanly, taking its worker with it, and keeps a worker alive while it runs."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from tests.conftest import StartService
from tests.support.servers import ImageServer, Service
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


def api_processes(service: Service) -> list[psutil.Process]:
    """Uvicorn's API processes, which it starts with multiprocessing's ``spawn``."""
    assert service.process is not None
    children = psutil.Process(service.process.pid).children()
    return [p for p in children if "spawn_main" in " ".join(p.cmdline())]


def test_several_api_processes_share_the_port_and_die_with_serve(
    start_service: StartService, image_server: ImageServer
) -> None:
    service = start_service("--no-worker", BATCHPRESS_API_WORKERS="2")
    apis = api_processes(service)
    assert len(apis) == 2
    url = image_server.add("/several-apis/1.jpg", b"not fetched: no worker runs")
    accepted = service.upload(f"S. No.,Product Name,Input Image Urls\n1,Shoe,{url}\n")
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["request_id"]
    for _ in range(10):  # a connection each, which either process may accept
        assert service.status(request_id)["status"] == "pending"

    assert service.process is not None
    service.process.kill()
    service.process.wait(10)
    _gone, alive = psutil.wait_procs(apis, timeout=10)
    assert not alive, "API processes outlived a kill -9 of serve"

    again = start_service("--no-worker", BATCHPRESS_API_WORKERS="2", data_dir=service.data_dir)
    assert again.status(request_id)["status"] == "pending"
    apis = api_processes(again)
    assert again.stop() == 0
    _gone, alive = psutil.wait_procs(apis, timeout=10)
    assert not alive, "API processes outlived serve's SIGTERM"
