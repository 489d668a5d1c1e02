"""Running the processes: the API under Uvicorn, and in the embedded mode a supervised Celery worker child.

The worker child gets its own session (so a terminal's Ctrl-C reaches only ``serve``, which then stops the worker
with one SIGTERM to its main process, the shutdown that returns unacknowledged messages) and a parent-death
signal (so a ``kill -9`` of ``serve`` does not leave it orphaned). If the worker or an API process dies, ``serve``
starts another, with back-off when it keeps dying at start (cli/supervision.py). Before any of that, both commands
check their settings and dependencies (cli/startup.py), so a wrong setting stops them with one line instead of a
crash loop.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from batchpress.cli import dependencies, startup
from batchpress.cli.api_processes import api_process, bind_api_socket, check_port_free, run_server
from batchpress.cli.supervision import Child, PopenProcess, Supervisor
from batchpress.config import Settings
from batchpress.db.migrate import upgrade
from batchpress.observability.probes import first_line
from batchpress.worker.parent_death import die_with_parent

log = logging.getLogger(__name__)
WORKER_STOP_SECONDS = 30
# How often ``serve`` asks its own API whether it answers yet, and when it says that it does not.
ANSWER_POLL_SECONDS = 0.1
ANSWER_WARNING_SECONDS = 60.0


def worker_process() -> Child:
    """The ``batchpress worker`` slot for cli/supervision.py, started in a session of its own (see above)."""

    def start() -> PopenProcess:
        popen = subprocess.Popen(
            [sys.executable, "-m", "batchpress", "worker"],
            start_new_session=True,
            preexec_fn=lambda: die_with_parent(signal.SIGTERM),  # only a prctl call after fork
        )
        log.info("worker started as process %d", popen.pid)
        return PopenProcess(popen)

    return Child("worker process", start, WORKER_STOP_SECONDS)


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


def probe_host(host: str) -> str:
    """Where this machine reaches an API listening on ``host``: loopback for the wildcard addresses."""
    host = host.strip().strip("[]")
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104


def api_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """``GET /healthz`` on the API at ``host:port`` answers 200."""
    connection = http.client.HTTPConnection(probe_host(host), port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def announce_when_answering(settings: Settings, with_worker: bool, stopping: threading.Event) -> None:
    """Say "serving on" once the API answers its ``/healthz``, not when its processes are only started (spawned API
    processes take seconds to import the app); nothing if the service stops first."""
    started = time.monotonic()
    warned = False
    while not stopping.is_set():
        if api_answers(settings.host, settings.port):
            processes = f"{settings.api_workers} API process{'es' if settings.api_workers > 1 else ''}"
            log.info(
                "serving on http://%s:%d (public URL %s) with %s%s",
                settings.host,
                settings.port,
                settings.public_base_url,
                processes,
                " and a worker" if with_worker else "",
            )
            return
        if not warned and time.monotonic() - started > ANSWER_WARNING_SECONDS:
            warned = True
            log.warning(
                "the API started %.0f s ago and does not answer http://%s:%d/healthz yet",
                time.monotonic() - started,
                probe_host(settings.host),
                settings.port,
            )
        stopping.wait(ANSWER_POLL_SECONDS)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def migrate_database(settings: Settings) -> None:
    """``batchpress migrate``, and ``serve`` before it starts anything: wait for the database, then upgrade."""
    from sqlalchemy.exc import OperationalError

    startup.check_database_url(settings)
    dependencies.wait_for_database(settings)
    try:
        startup.check_schema(settings, will_migrate=True)
        upgrade(settings)
    except OperationalError as exc:
        if not settings.is_sqlite:
            raise
        raise startup.StartupError(
            f"{startup.DATABASE}={startup.shown_url(settings.database_url)}: {first_line(exc)}",
            "make its folder writable for this user, or fix BATCHPRESS_DATABASE_URL or BATCHPRESS_DATA_DIR",
        ) from None


def run_service(settings: Settings, *, with_worker: bool) -> None:
    # Uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal; these handlers turn that
    # into an ordinary exit, so the ``finally`` below still stops the worker. They also end a wait for the database.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    if warning := open_to_network_warning(settings):
        log.warning("%s", warning)
        if settings.log_format == "text":  # a banner would break JSON lines; the WARNING record carries it there
            print(f"\n{'!' * 100}\nWARNING: {warning}\n{'!' * 100}\n", file=sys.stderr, flush=True)
    # Everything that would fail the same way in every child is found here, before any child starts (the database
    # URL's kind by migrate_database below).
    startup.check_broker_transport(settings)
    import batchpress.api.app  # noqa: F401  (a module that does not import fails here, once, not in each child)

    check_port_free(settings.host, settings.port)
    migrate_database(settings)
    if cause := dependencies.broker_not_ready(settings):
        # Uploads are stored and enqueued by the sweeper once it answers; /readyz names it meanwhile.
        log.warning(
            "the broker at %s does not answer yet (%s); serving anyway", startup.shown_url(settings.broker_url), cause
        )
    stopping = threading.Event()  # set when the API ends, or by the supervisor when a child gives up
    children = [worker_process()] if with_worker else []
    if settings.api_workers > 1:
        children += [api_process(settings.host, settings.port, settings.log_format)] * settings.api_workers
    supervisor = Supervisor(children, stopping)
    # Bound here, so a port taken since the check above (migrations can wait long for a database) is the same one
    # line as one taken before, not Uvicorn's error.
    sock = bind_api_socket(settings.host, settings.port) if settings.api_workers == 1 else None
    announce = (settings, with_worker, stopping)
    threading.Thread(target=announce_when_answering, args=announce, name="announce", daemon=True).start()
    if sock is not None:
        # Uvicorn keeps the main thread, where the signal handlers run; the children are watched beside it.
        watcher = threading.Thread(target=supervisor.run, name="supervisor", daemon=True)
        watcher.start()
        try:
            run_server(settings.host, settings.port, [sock], stop=stopping)
        finally:
            stopping.set()
            watcher.join()
    else:
        supervisor.run()
    if supervisor.failure is not None:  # cli/main.py prints the StartupError's line
        raise supervisor.failure


def _logging_already_configured(**_: object) -> None:
    pass


def run_worker(settings: Settings, *, concurrency: int | None) -> None:
    from celery.signals import setup_logging

    startup.check_database_url(settings)
    startup.check_broker_transport(settings)
    import batchpress.worker.lifecycle  # noqa: F401  (connects the worker's signal handlers)
    from batchpress.worker import process
    from batchpress.worker.celery_app import celery_app, configure

    # SIGTERM or Ctrl-C while waiting for the database or broker is an ordinary exit; Celery installs its own.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    dependencies.wait_for_database(settings)
    startup.check_schema(settings, will_migrate=False)
    dependencies.wait_for_broker(settings)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    # Any receiver stops Celery from installing its own handlers (celery.task's included): the CLI configured
    # logging already, so task and worker records come out in the same text or JSON format.
    setup_logging.connect(_logging_already_configured, weak=False)
    configure(celery_app, settings)
    process.start(settings)

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
