"""Real servers on 127.0.0.1 for the tests: an image origin, and batchpress itself as a subprocess."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]


def image_counts(status: dict[str, Any]) -> dict[str, int]:
    """The image counts of a status answer, without its byte totals."""
    return {k: status["progress"][k] for k in ("total_images", "processed", "failed", "pending")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/octet-stream"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # A poison image: the process that asks for it is killed with SIGKILL, as if decoding it crashed.
    kill_client: bool = False
    # Seconds before the answer starts: a slow origin.
    delay: float = 0.0
    # Send an ETag and a Last-Modified, and answer 304 to a request that names them.
    validators: bool = False

    @property
    def etag(self) -> str:
        return f'"{hashlib.sha256(self.body).hexdigest()[:20]}"'


def kill_peer(client_port: int) -> None:
    """SIGKILL the local process that owns the client end of a loopback connection."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == client_port and conn.pid and conn.pid != os.getpid():
            os.kill(conn.pid, signal.SIGKILL)
            return


class ImageServer:
    """Serves fixed bytes per path and counts what it was asked for."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        # Bodies sent per path: a 304 is a hit without one.
        self.bodies: dict[str, int] = {}
        # The conditional headers of each request per path, in order.
        self.conditions: dict[str, list[dict[str, str]]] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with server._lock:
                    server.hits[self.path] = server.hits.get(self.path, 0) + 1
                route = server.routes.get(self.path, Route(b"not found", "text/plain", 404))
                asked = {k: v for k, v in self.headers.items() if k.lower().startswith("if-")}
                with server._lock:
                    server.conditions.setdefault(self.path, []).append(asked)
                time.sleep(route.delay)
                if route.kill_client:
                    kill_peer(self.client_address[1])
                    return
                if route.validators and asked.get("If-None-Match") == route.etag:
                    self.send_response(304)
                    self.send_header("ETag", route.etag)
                    self.end_headers()
                    return
                with server._lock:
                    server.bodies[self.path] = server.bodies.get(self.path, 0) + 1
                self.send_response(route.status)
                if route.validators:
                    self.send_header("ETag", route.etag)
                    self.send_header("Last-Modified", "Mon, 07 Dec 2026 10:00:00 GMT")
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(
        self,
        path: str,
        body: bytes,
        content_type: str = "image/jpeg",
        status: int = 200,
        delay: float = 0.0,
        *,
        validators: bool = False,
    ) -> str:
        self.routes[path] = Route(body, content_type, status, delay=delay, validators=validators)
        return self.url(path)

    def __enter__(self) -> ImageServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


_stopping: list[Service] = []


def reap(timeout: float = 60) -> None:
    """Wait for every service asked to stop with ``stop_soon``; kill what is still running at the deadline."""
    deadline = time.monotonic() + timeout
    for service in _stopping:
        if service.process is None:
            continue
        try:
            service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()
    _stopping.clear()


class Service:
    """``batchpress serve`` in a subprocess, with its own data directory, port and database."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str],
        args: tuple[str, ...] = (),
        command: tuple[str, ...] = (sys.executable, "-m", "batchpress"),
    ) -> None:
        self.data_dir = data_dir
        self.command = command
        self.port = int(env.get("BATCHPRESS_PORT") or free_port())
        self.env = {
            **os.environ,
            "BATCHPRESS_DATA_DIR": str(data_dir),
            "BATCHPRESS_PORT": str(self.port),
            "BATCHPRESS_HOST": "127.0.0.1",
            "BATCHPRESS_LEASE_SECONDS": "5",
            "BATCHPRESS_SWEEP_INTERVAL_SECONDS": "1",
            "BATCHPRESS_WORKER_CONCURRENCY": "2",
            # One API process starts faster; tests/cli/test_serve.py covers several.
            "BATCHPRESS_API_WORKERS": "1",
            # Every test server is on 127.0.0.1, which outbound requests refuse unless told otherwise.
            "BATCHPRESS_ALLOW_PRIVATE_NETWORKS": "true",
            **env,
        }
        self.args = args
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "serve.log"

    def start(self, timeout: float = 60) -> Service:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.command, "serve", *self.args],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serve did not answer in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def stop_soon(self) -> None:
        """Ask serve to stop and move on; ``reap`` waits for it later. A worker's warm shutdown takes seconds,
        and tests that do not test shutdown need not wait for it one by one."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        _stopping.append(self)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    def upload(self, csv_text: str | bytes, filename: str = "products.csv") -> httpx.Response:
        body = csv_text.encode() if isinstance(csv_text, str) else csv_text
        return httpx.post(f"{self.base_url}/api/upload/", files={"file": (filename, body, "text/csv")}, timeout=60)

    def status(self, request_id: str, **params: Any) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/api/status/{request_id}/", params=params, timeout=30)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def wait_until(
        self, request_id: str, done: Callable[[dict[str, Any]], bool] | None = None, timeout: float = 180
    ) -> dict[str, Any]:
        """Poll status until terminal (or until ``done`` says so)."""
        terminal = {"completed", "completed_with_errors", "failed", "cancelled"}
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(request_id)
            if (done or (lambda s: s["status"] in terminal))(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"request {request_id} stuck at {status['progress']}:\n{self.log()}")
            time.sleep(0.2)


def worker_main(service: Service) -> psutil.Process:
    """The worker child ``serve`` supervises (waiting for a restarted one to appear)."""
    assert service.process is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child in psutil.Process(service.process.pid).children():
            if "worker" in child.cmdline():
                return child
        time.sleep(0.1)
    raise AssertionError("serve has no worker child")
