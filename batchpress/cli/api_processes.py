"""Several API processes, each listening on a socket of its own bound with ``SO_REUSEPORT``.

Uvicorn's own ``workers`` share one listening socket, and whichever process wakes first accepts every connection
waiting on it: 32 clients that connect at once could all land on one process while the other idled, and the status
p99 doubled (40 ms against 19 ms). With a socket per process the kernel spreads new connections across the
processes by address hash, whatever each one is doing at the moment they arrive.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
from multiprocessing.context import SpawnProcess
from typing import Literal

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from batchpress.logs import configure_logging
from batchpress.worker.parent_death import die_with_parent

log = logging.getLogger(__name__)
APP = "batchpress.api.app:create_served_app"
CHECK_SECONDS = 0.5
RESTART_DELAY_SECONDS = 1.0
STOP_SECONDS = 10.0


def listening_socket(host: str, port: int, *, shared: bool) -> socket.socket:
    """A TCP socket bound to ``host:port``; ``shared`` lets every API process bind its own to the same port."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


def exit_unless_port_free(host: str, port: int) -> None:
    """Stop before anything starts if another program, or another ``serve`` (whose sockets share only with each
    other), listens on the port: a bind without ``SO_REUSEPORT`` succeeds only on a free port."""
    try:
        listening_socket(host, port, shared=False).close()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        raise SystemExit(1) from None


def run_server(host: str, port: int, sockets: list[socket.socket] | None = None) -> None:
    """Uvicorn serving the app on ``sockets`` if given, else on a socket of its own for ``host:port``, until SIGINT
    or SIGTERM; exits with Uvicorn's start-up failure code when the app or the socket could not start."""
    # log_config=None: uvicorn's loggers propagate to the root handler the CLI set up (text or JSON lines).
    config = uvicorn.Config(
        APP, host=host, port=port, factory=True, log_level="info", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    server.run(sockets=sockets)
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)


def serve_one(host: str, port: int, log_format: Literal["text", "json"]) -> None:
    """One API process (the target of a spawned child): set up as ``serve`` is, then serve on its own socket."""
    die_with_parent(signal.SIGTERM)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the parent died before prctl could arrange anything
        raise SystemExit(1)
    configure_logging(log_format)
    try:
        sock = listening_socket(host, port, shared=True)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        raise SystemExit(STARTUP_FAILURE) from None
    run_server(host, port, [sock])


class ApiProcesses:
    """Keeps ``count`` API processes running until ``stop``; one that dies is replaced, and one that cannot start
    (the app fails to load, the port is taken) stops them all, since every replacement would fail the same way."""

    def __init__(self, host: str, port: int, log_format: Literal["text", "json"], count: int) -> None:
        self._args = (host, port, log_format)
        self._count = count
        self._processes: list[SpawnProcess] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        """Start the processes and watch them; returns after ``stop`` or when one cannot start."""
        self._processes = [self._spawn() for _ in range(self._count)]
        while not self._stopping.wait(CHECK_SECONDS):
            for index, process in enumerate(self._processes):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("API process %d could not start; stopping", process.pid)
                    self.stop()
                    raise SystemExit(1)
                log.warning("API process %d exited with %s; starting another", process.pid, process.exitcode)
                if self._stopping.wait(RESTART_DELAY_SECONDS):
                    return
                self._processes[index] = self._spawn()

    def _spawn(self) -> SpawnProcess:
        process = multiprocessing.get_context("spawn").Process(
            target=serve_one, args=self._args, name="batchpress-api", daemon=False
        )
        process.start()
        log.info("API process started as process %d", process.pid)
        return process

    def stop(self) -> None:
        """SIGTERM each process (Uvicorn's graceful shutdown), then SIGKILL what is left after ``STOP_SECONDS``."""
        self._stopping.set()
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(STOP_SECONDS)
            if process.is_alive():
                log.warning("API process %d did not stop in %d s; killing it", process.pid, STOP_SECONDS)
                process.kill()
                process.join()
