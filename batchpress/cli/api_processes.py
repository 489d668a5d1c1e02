"""Several API processes, each listening on a socket of its own bound with ``SO_REUSEPORT``.

Uvicorn's own ``workers`` share one listening socket, and whichever process wakes first accepts every connection
waiting on it: 32 clients that connect at once could all land on one process while the other idled, and the status
p99 doubled (40 ms against 19 ms). With a socket per process the kernel spreads new connections across the
processes by address hash, whatever each one is doing at the moment they arrive.
"""

from __future__ import annotations

import errno
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

from batchpress.cli.startup import StartupError
from batchpress.cli.supervision import Child
from batchpress.logs import configure_logging
from batchpress.worker.parent_death import die_with_parent

log = logging.getLogger(__name__)
APP = "batchpress.api.app:create_served_app"
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


def check_port_free(host: str, port: int) -> None:
    """Stop before anything starts if another program, or another ``serve`` (whose sockets share only with each
    other), listens on the port: a bind without ``SO_REUSEPORT`` succeeds only on a free port."""
    bind_api_socket(host, port).close()


def bind_api_socket(host: str, port: int) -> socket.socket:
    """The single API process's socket, bound (not yet listening), or a ``StartupError`` saying what to change."""
    try:
        return listening_socket(host, port, shared=False)
    except OSError as exc:
        raise cannot_listen(host, port, exc) from None


def cannot_listen(host: str, port: int, exc: OSError) -> StartupError:
    """Why ``host:port`` cannot be listened on, in one line naming the setting to change, with a value that works
    where one can be found (``BATCHPRESS_PORT=8001``)."""
    if exc.errno == errno.EADDRINUSE:
        fix = "stop the program using it (another `batchpress serve`?) or set BATCHPRESS_PORT to a free port"
        if (free := free_port(host, port + 1)) is not None:
            fix += f", e.g. BATCHPRESS_PORT={free}"
    elif exc.errno == errno.EACCES:
        fix = "ports below 1024 need privileges: set BATCHPRESS_PORT to 1024 or above"
        if port < 1024 and (free := free_port(host, 8000)) is not None:
            fix += f", e.g. BATCHPRESS_PORT={free}"
    elif exc.errno == errno.EADDRNOTAVAIL:
        fix = "BATCHPRESS_HOST is not an address of this machine: set it to one, or 0.0.0.0 for all"
    elif isinstance(exc, socket.gaierror):
        fix = (
            "BATCHPRESS_HOST is not a host name or address this machine knows: set it to 127.0.0.1, or 0.0.0.0 for all"
        )
    else:
        fix = "fix BATCHPRESS_HOST or BATCHPRESS_PORT"
    return StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", fix)


def free_port(host: str, first: int, tries: int = 20) -> int | None:
    """The first port from ``first`` on that ``host`` can listen on now, else any free one the system picks."""
    for candidate in [*range(first, min(first + tries, 65536)), 0]:
        try:
            with listening_socket(host, candidate, shared=False) as sock:
                return int(sock.getsockname()[1])
        except OSError:
            continue
    return None


def run_server(
    host: str, port: int, sockets: list[socket.socket] | None = None, *, stop: threading.Event | None = None
) -> None:
    """Uvicorn serving the app on ``sockets`` if given, else on a socket of its own for ``host:port``, until SIGINT,
    SIGTERM or ``stop``; exits with Uvicorn's start-up failure code when the app or the socket could not start."""
    # log_config=None: uvicorn's loggers propagate to the root handler the CLI set up (text or JSON lines).
    config = uvicorn.Config(
        APP, host=host, port=port, factory=True, log_level="info", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    if stop is not None:
        # Uvicorn's main loop polls should_exit from its start-up on: a graceful shutdown.
        threading.Thread(target=_exit_when_set, args=(stop, server), name="api-stop", daemon=True).start()
    server.run(sockets=sockets)
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)


def _exit_when_set(stop: threading.Event, server: uvicorn.Server) -> None:
    stop.wait()
    server.should_exit = True


def serve_one(host: str, port: int, log_format: Literal["text", "json"]) -> None:
    """One API process (the target of a spawned child): set up as ``serve`` is, then serve on its own socket."""
    die_with_parent(signal.SIGTERM)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the parent died before prctl could arrange anything
        raise SystemExit(1)
    configure_logging(log_format)
    try:
        sock = listening_socket(host, port, shared=True)
    except OSError as exc:  # the port was taken after ``serve`` checked it
        log.error("%s", cannot_listen(host, port, exc).line)
        raise SystemExit(STARTUP_FAILURE) from None
    run_server(host, port, [sock])


def api_process(host: str, port: int, log_format: Literal["text", "json"]) -> Child:
    """One API process slot for cli/supervision.py: a spawned ``serve_one``, given ``STOP_SECONDS`` to shut down."""

    def start() -> SpawnProcess:
        process = multiprocessing.get_context("spawn").Process(
            target=serve_one, args=(host, port, log_format), name="batchpress-api", daemon=False
        )
        process.start()
        log.info("API process started as process %d", process.pid)
        return process

    return Child("API process", start, STOP_SECONDS)
