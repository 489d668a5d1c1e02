"""Running the processes: the API under Uvicorn, and in the embedded mode a supervised Celery worker child.

The worker child gets its own session (so a terminal's Ctrl-C reaches only ``serve``, which then stops the worker
with one SIGTERM to its main process, the shutdown that returns unacknowledged messages) and a parent-death
signal (so a ``kill -9`` of ``serve`` does not leave it orphaned). If the worker dies, ``serve`` starts another.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import subprocess
import sys
import threading

from batchpress.cli.api_processes import ApiProcesses, exit_unless_port_free, run_server
from batchpress.config import Settings
from batchpress.db.migrate import upgrade
from batchpress.worker.parent_death import die_with_parent

log = logging.getLogger(__name__)
WORKER_STOP_SECONDS = 30
WORKER_RESTART_DELAY_SECONDS = 1.0


class WorkerSupervisor:
    """Keeps one ``batchpress worker`` child running until ``stop``."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            self._child = subprocess.Popen(
                [sys.executable, "-m", "batchpress", "worker"],
                start_new_session=True,
                preexec_fn=lambda: die_with_parent(signal.SIGTERM),  # only a prctl call after fork
            )
            log.info("worker started as process %d", self._child.pid)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            child = self._child
            assert child is not None
            code = child.wait()
            if self._stopping.is_set():
                return
            log.warning("worker process %d exited with %s; starting another", child.pid, code)
            self._stopping.wait(WORKER_RESTART_DELAY_SECONDS)
            self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            child = self._child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("worker did not stop in %d s; killing it", WORKER_STOP_SECONDS)
            child.kill()
            child.wait()
        log.info("worker stopped")


def is_loopback(host: str) -> bool:
    """Only this machine can connect; a host name other than localhost counts as reachable from the network."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def open_to_network_warning(settings: Settings) -> str | None:
    from batchpress.api.auth import ApiKeys

    if is_loopback(settings.host) or ApiKeys.from_settings(settings):
        return None
    return (
        f"the API is open to the network: it listens on {settings.host or 'every address'}:{settings.port} and "
        "BATCHPRESS_API_KEYS is not set, so anyone who can reach this port can upload CSVs, read every request's "
        "status and make this server download URLs of their choosing. Set BATCHPRESS_API_KEYS to one or more "
        "comma-separated secrets (e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`) and "
        "send one as `Authorization: Bearer <key>`, or bind BATCHPRESS_HOST=127.0.0.1."
    )


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def run_service(settings: Settings, *, with_worker: bool) -> None:
    # Uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal; these handlers turn that
    # into an ordinary exit, so the ``finally`` below still stops the worker.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    if warning := open_to_network_warning(settings):
        log.warning("%s", warning)
        if settings.log_format == "text":  # a banner would break JSON lines; the WARNING record carries it there
            print(f"\n{'!' * 100}\nWARNING: {warning}\n{'!' * 100}\n", file=sys.stderr, flush=True)
    exit_unless_port_free(settings.host, settings.port)
    upgrade(settings)
    supervisor = WorkerSupervisor() if with_worker else None
    if supervisor is not None:
        supervisor.start()
    try:
        log.info(
            "serving on http://%s:%d (public URL %s) with %d API process(es)",
            settings.host,
            settings.port,
            settings.public_base_url,
            settings.api_workers,
        )
        if settings.api_workers == 1:
            run_server(settings.host, settings.port)
        else:
            api = ApiProcesses(settings.host, settings.port, settings.log_format, settings.api_workers)
            try:
                api.run()
            finally:
                api.stop()
    finally:
        if supervisor is not None:
            supervisor.stop()


def _logging_already_configured(**_: object) -> None:
    pass


def run_worker(settings: Settings, *, concurrency: int | None) -> None:
    from celery.signals import setup_logging

    import batchpress.worker.lifecycle  # noqa: F401  (connects the worker's signal handlers)
    from batchpress.worker.celery_app import celery_app

    # Any receiver stops Celery from installing its own handlers (celery.task's included): the CLI configured
    # logging already, so task and worker records come out in the same text or JSON format.
    setup_logging.connect(_logging_already_configured, weak=False)

    celery_app.worker_main(
        [
            # Celery's start-up banner is printed, not logged; it would break one-JSON-object-per-line output.
            *(["--quiet"] if settings.log_format == "json" else []),
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency or settings.worker_concurrency}",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            # Unique per process: two workers on one machine sharing a node name clash on RabbitMQ's exclusive
            # remote-control queue, and the second dies at start.
            f"--hostname=batchpress-{os.getpid()}@%h",
        ]
    )
