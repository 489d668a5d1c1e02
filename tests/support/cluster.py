"""The scaled-out shape for tests: API processes and separate worker processes sharing PostgreSQL and a broker."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.support.servers import REPO, Service, free_port

DEFAULT_PG = "postgresql://root@127.0.0.1:5432/test"


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def postgres_admin_url() -> str:
    """The PostgreSQL server to create test databases on; skips the test when there is none."""
    url = os.environ.get("BATCHPRESS_TEST_DATABASE_URL", "").replace("postgresql+psycopg://", "postgresql://")
    url = url or DEFAULT_PG
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"needs PostgreSQL ({url} did not answer: {str(exc).strip()[:80]})")
    return url


@contextmanager
def postgres_database(admin_url: str, name: str) -> Iterator[str]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class RedisServer:
    """A redis-server of the test's own, so it can be shut down and started again mid-batch."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("needs redis-server on PATH")
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        return self

    def shutdown_nosave(self) -> None:
        """Stop the server and lose every message it held, as SHUTDOWN NOSAVE does."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Worker:
    """``batchpress worker`` as its own process, like one on another machine."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 1) -> None:
        self.env = env
        self.log_path = log_path
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "batchpress", "worker", f"--concurrency={self.concurrency}"],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while "ready." not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log()}")
            time.sleep(0.1)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Cluster:
    """API processes with --no-worker plus separate workers, all sharing one database and broker."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "BATCHPRESS_DATA_DIR": str(root / "shared"),
            "BATCHPRESS_LEASE_SECONDS": "5",
            "BATCHPRESS_SWEEP_INTERVAL_SECONDS": "1",
            # Every test server is on 127.0.0.1, which outbound requests refuse unless told otherwise.
            "BATCHPRESS_ALLOW_PRIVATE_NETWORKS": "true",
            **env,
        }
        self.apis: list[Service] = []
        self.workers: list[Worker] = []

    def add_api(self) -> Service:
        overrides = {k: v for k, v in self.env.items() if k.startswith("BATCHPRESS_")}
        api = Service(self.root / "shared", overrides, ("--no-worker",))
        api.log_path = self.root / f"api-{len(self.apis)}.log"
        self.apis.append(api.start())
        # Workers write output URLs; with local storage they point at the first API, which serves the files.
        self.env.setdefault("BATCHPRESS_PUBLIC_BASE_URL", api.base_url)
        return api

    def add_worker(self, concurrency: int = 1) -> Worker:
        worker = Worker(self.env, self.root / f"worker-{len(self.workers)}.log", concurrency)
        self.workers.append(worker.start())
        return worker

    def worker_logs(self) -> str:
        return "\n".join(w.log() for w in self.workers)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for api in self.apis:
            api.stop()
