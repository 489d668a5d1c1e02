"""``batchpress serve`` stops cleanly, taking its worker with it, and keeps a worker alive while it runs."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from batchpress.cli.api_processes import bind_api_socket
from batchpress.cli.backoff import EXIT_STARTUP
from batchpress.cli.startup import StartupError
from tests.conftest import StartService
from tests.support.servers import ImageServer, Service, worker_main


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_with_its_worker(start_service: StartService, sig: signal.Signals) -> None:
    service = start_service()
    worker = worker_main(service)
    family = [worker, *worker.children()]
    assert service.stop(sig) == 0
    _gone, alive = psutil.wait_procs(family, timeout=5)
    assert not alive, "worker processes outlived serve"
    assert re.search(r"worker process \d+ stopped", service.log())


def test_only_the_pool_processes_yield_the_cpu(start_service: StartService) -> None:
    """BATCHPRESS_WORKER_NICE applies to the processes that compress; the worker's main process, which hands them
    their tasks, and the API keep normal priority."""
    service = start_service(BATCHPRESS_WORKER_NICE="7")
    assert service.process is not None
    worker = worker_main(service)
    deadline = time.monotonic() + 30
    while len(pool := worker.children()) < 2 or any(p.nice() != 7 for p in pool):
        assert time.monotonic() < deadline, f"pool niceness {[p.nice() for p in pool]}"
        time.sleep(0.2)
    assert worker.nice() == 0
    assert psutil.Process(service.process.pid).nice() == 0


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
    """The API processes (cli/api_processes.py), which ``serve`` starts with multiprocessing's ``spawn``."""
    assert service.process is not None
    children = psutil.Process(service.process.pid).children()
    return [p for p in children if "spawn_main" in " ".join(p.cmdline())]


def listening(processes: list[psutil.Process], port: int, timeout: float = 60) -> None:
    """Wait until each process has its own listening socket on ``port``: ``serve`` answers once the first does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(
            any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in p.net_connections()) for p in processes
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"not every API process listens on {port}")


def connections_per_process(service: Service, count: int) -> list[int]:
    """Open ``count`` keep-alive connections at once, make a request on each, and count where they landed."""
    sockets = [socket.create_connection(("127.0.0.1", service.port), timeout=10) for _ in range(count)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for sock in sockets:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        return [
            sum(1 for c in p.net_connections() if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == service.port)
            for p in api_processes(service)
        ]
    finally:
        for sock in sockets:
            sock.close()


def test_several_api_processes_share_the_port_and_die_with_serve(
    start_service: StartService, image_server: ImageServer
) -> None:
    service = start_service("--no-worker", BATCHPRESS_API_WORKERS="2")
    apis = api_processes(service)
    assert len(apis) == 2
    listening(apis, service.port)
    url = image_server.add("/several-apis/1.jpg", b"not fetched: no worker runs")
    accepted = service.upload(f"S. No.,Product Name,Input Image Urls\n1,Shoe,{url}\n")
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["request_id"]
    for _ in range(10):  # a connection each, which either process may accept
        assert service.status(request_id)["status"] == "pending"
    # Each process has a socket of its own: clients that connect at once are spread across both, not all taken by
    # whichever woke first (with 32 connections hashed over two sockets, all on one is a 1-in-2^31 chance).
    spread = connections_per_process(service, 32)
    assert sum(spread) == 32
    assert min(spread) > 0, spread

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


def test_serve_replaces_a_dead_api_process(start_service: StartService) -> None:
    service = start_service("--no-worker", BATCHPRESS_API_WORKERS="2")
    first, other = api_processes(service)
    listening([first, other], service.port)
    first.kill()
    first.wait(10)
    deadline = time.monotonic() + 60
    while {p.pid for p in api_processes(service)} in ({other.pid}, {first.pid, other.pid}):
        assert time.monotonic() < deadline, service.log()
        time.sleep(0.2)
    apis = api_processes(service)
    assert len(apis) == 2
    assert first.pid not in {p.pid for p in apis}
    listening(apis, service.port)
    assert "starting another" in service.log()
    assert min(connections_per_process(service, 32)) > 0


def test_a_second_serve_on_a_taken_port_says_so_and_exits(start_service: StartService) -> None:
    service = start_service("--no-worker", BATCHPRESS_API_WORKERS="2")
    second = subprocess.run(
        [sys.executable, "-m", "batchpress", "serve", "--no-worker"],
        env={**service.env, "BATCHPRESS_DATA_DIR": str(service.data_dir.parent / "second")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == EXIT_STARTUP
    assert f"error: cannot listen on 127.0.0.1:{service.port}: Address already in use; " in second.stderr
    assert "set BATCHPRESS_PORT to a free port" in second.stderr
    assert httpx.get(f"{service.base_url}/healthz", timeout=10).status_code == 200, "the first one still serves"


def test_serving_is_said_once_the_api_answers(tmp_path: Path, database_url: str) -> None:
    """Spawned API processes take a second or more to import the app: the "serving on" line waits for them, so
    whoever reads it can use the API at once."""
    env = {"BATCHPRESS_API_WORKERS": "2"} | ({"BATCHPRESS_DATABASE_URL": database_url} if database_url else {})
    service = Service(tmp_path / "data", env, ("--no-worker",))
    service.data_dir.mkdir(parents=True)
    with service.log_path.open("wb") as log:
        process = subprocess.Popen([*service.command, "serve", "--no-worker"], env=service.env, stdout=log, stderr=log)
    service.process = process
    try:
        deadline = time.monotonic() + 60
        while "serving on" not in (text := service.log()):
            assert process.poll() is None, text
            assert time.monotonic() < deadline, text
            time.sleep(0.02)
        # At once, no retry: the API answered before the line was written.
        assert httpx.get(f"{service.base_url}/healthz", timeout=10).status_code == 200
        line = next(line for line in text.splitlines() if "serving on" in line)
        assert line.endswith(
            f"serving on http://127.0.0.1:{service.port} (public URL http://127.0.0.1:{service.port}) "
            "with 2 API processes"
        )
        # The processes were started before the API answered, and said so first.
        assert text.index("API process started as process") < text.index("serving on")
    finally:
        assert service.stop() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_names_it_and_suggests_another(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = Service(tmp_path / "data", {"BATCHPRESS_PORT": str(port), "BATCHPRESS_API_WORKERS": workers})
        run = subprocess.run([*service.command, "serve"], env=service.env, capture_output=True, text=True, timeout=60)
        assert run.returncode == EXIT_STARTUP, run.stderr
        assert "Traceback" not in run.stderr
        *_, last = run.stderr.splitlines()
        match = re.fullmatch(
            rf"error: cannot listen on 127\.0\.0\.1:{port}: Address already in use; stop the program using it "
            r"\(another `batchpress serve`\?\) or set BATCHPRESS_PORT to a free port, e\.g\. BATCHPRESS_PORT=(\d+)",
            last,
        )
        assert match, run.stderr
        suggested = int(match[1])
    assert suggested != port
    with socket.socket() as free:
        free.bind(("127.0.0.1", suggested))  # free when suggested, and still (no one else took it meanwhile)


def test_an_api_socket_taken_after_the_check_is_the_same_one_line() -> None:
    """Migrations can wait long for a database: a port taken meanwhile still gets the line that suggests one."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as info:
            bind_api_socket("127.0.0.1", port)
    assert info.value.line.startswith(f"cannot listen on 127.0.0.1:{port}: Address already in use; ")
    assert re.search(r"set BATCHPRESS_PORT to a free port, e\.g\. BATCHPRESS_PORT=\d+$", info.value.line)
