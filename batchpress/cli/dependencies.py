"""Reaching the database and the broker at start: a refusal is permanent (``StartupError``), anything that may
clear up by itself (refused connections, a timeout, a host name not resolving yet) is waited for with back-off, one
line per attempt. ``doctor`` reports the same causes."""

from __future__ import annotations

import errno
import itertools
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from batchpress.cli.backoff import backoff_delay
from batchpress.cli.startup import BROKER, DATABASE, StartupError, first_line, shown_url
from batchpress.config import Settings

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_SECONDS = 5
# FATAL messages of a PostgreSQL server that clear up by themselves; any other (no such database or role, password
# refused, pg_hba) needs someone to change something.
_PG_TRANSIENT = (
    "connection refused",
    "timeout expired",
    "timed out",
    "failed to resolve host",
    "could not translate host name",
    "name or service not known",
    "temporary failure in name resolution",
    "no route to host",
    "network is unreachable",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "too many clients",
    "remaining connection slots",
    "server closed the connection unexpectedly",
    "connection reset",
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _network_cause(exc: BaseException) -> str | None:
    """A short cause for a network failure that may clear up by itself, or None."""
    for error in _chain(exc):
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, socket.gaierror):
            return f"cannot resolve the host name ({error.strerror})"
        if isinstance(error, TimeoutError):
            return "timed out"
        if isinstance(error, OSError) and error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNRESET):
            return error.strerror or str(error)
    return None


def database_problem(exc: BaseException, settings: Settings) -> str:
    """The short cause of a failed connection when it may clear up by itself; raises ``StartupError`` otherwise."""
    message = first_line(exc)
    cause = message.rpartition(" failed: ")[2].replace("FATAL:", "").strip()
    cause = cause[:1].lower() + cause[1:]
    if network := _network_cause(exc):
        return network
    refused = "FATAL" in message or "fe_sendauth" in message or "authentication" in message.lower()
    if not refused or any(marker in message.lower() for marker in _PG_TRANSIENT):
        return cause  # not a refusal by the server: maybe the network, maybe the server not being up yet
    fix = (
        f"create that database or fix {DATABASE}"
        if "does not exist" in cause and "database" in cause
        else f"fix the user, password or database in {DATABASE}, or the server's access rules"
    )
    raise StartupError(f"{DATABASE}={shown_url(settings.database_url)}: {cause}", fix)


def probe_database(settings: Settings) -> None:
    """One connection; raises what the driver raised."""
    from sqlalchemy import create_engine, pool

    connect_args: dict[str, Any] = {} if settings.is_sqlite else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    engine = create_engine(settings.database_url, poolclass=pool.NullPool, connect_args=connect_args)
    try:
        engine.connect().close()
    finally:
        engine.dispose()


def broker_problem(exc: BaseException, settings: Settings) -> str:
    """The short cause of a failed broker connection when it may clear up by itself; raises ``StartupError``
    when the broker answered and refused (credentials, virtual host, database index)."""
    refused: list[type[BaseException]] = []
    try:
        from amqp.exceptions import AccessRefused, NotAllowed  # type: ignore[import-untyped]  # py-amqp has no types

        refused += [AccessRefused, NotAllowed]
    except ImportError:
        pass
    try:
        from redis.exceptions import AuthenticationError, ResponseError

        refused += [AuthenticationError, ResponseError]
    except ImportError:
        pass
    for error in _chain(exc):
        if isinstance(error, tuple(refused)):
            # py-amqp's "(0, 0): (403) ACCESS_REFUSED - Login was refused ... For details see the broker logfile."
            said = re.sub(r"^\(\d+, \d+\): ", "", first_line(error)).partition(". For details")[0].rstrip(".")
            raise StartupError(
                f"{BROKER}={shown_url(settings.broker_url)}: the broker refused: {said}",
                f"fix the user, password or path in {BROKER}, or the broker's users",
            )
    return _network_cause(exc) or first_line(exc)


def probe_broker(settings: Settings) -> None:
    """One connection (for ``filesystem://``, writable queue folders); raises what failed."""
    from batchpress.worker.celery_app import broker_options

    options = broker_options(settings)
    if settings.uses_filesystem_broker:
        import tempfile

        for folder in (settings.queue_dir, Path(options["data_folder_in"])):
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
                pass
        return
    from kombu.connection import Connection

    connection: Any = Connection(  # type: ignore[no-untyped-call]  # kombu's __init__ has no annotations
        settings.broker_url, transport_options=options, connect_timeout=CONNECT_TIMEOUT_SECONDS
    )
    with connection:
        connection.connect()


def filesystem_problem(exc: OSError, settings: Settings) -> StartupError:
    return StartupError(
        f"{BROKER}=filesystem://: cannot write the queue under {settings.queue_dir} ({exc.strerror or exc})",
        "make it writable for this user, or fix BATCHPRESS_DATA_DIR",
    )


def wait_for(
    what: str,
    shown: str,
    attempt: Callable[[], None],
    problem: Callable[[BaseException], str],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Try ``attempt`` until it succeeds; ``problem`` turns a failure into a short cause, or raises when it is
    permanent. Runs until then or until a signal handler raises (SIGTERM stops ``serve`` and ``worker``)."""
    for number in itertools.count():
        try:
            attempt()
        except Exception as exc:
            cause = problem(exc)
            delay = backoff_delay(number)
            log.warning("waiting for the %s at %s: %s; retrying in %g s", what, shown, cause, delay)
            sleep(delay)
            continue
        if number:
            log.info("the %s at %s answers", what, shown)
        return


def wait_for_database(settings: Settings) -> None:
    if settings.is_sqlite:
        return  # a file: nothing to wait for, and ``upgrade`` creates it
    wait_for(
        "database",
        shown_url(settings.database_url),
        lambda: probe_database(settings),
        lambda exc: database_problem(exc, settings),
    )


def wait_for_broker(settings: Settings) -> None:
    if settings.uses_filesystem_broker:
        try:
            probe_broker(settings)
        except OSError as exc:
            raise filesystem_problem(exc, settings) from None
        return
    wait_for(
        "broker", shown_url(settings.broker_url), lambda: probe_broker(settings), lambda e: broker_problem(e, settings)
    )


def broker_not_ready(settings: Settings) -> str | None:
    """One try: None when the broker answers, the cause when it is unreachable; raises when it refused."""
    try:
        probe_broker(settings)
    except OSError as exc:
        if settings.uses_filesystem_broker:
            raise filesystem_problem(exc, settings) from None
        return broker_problem(exc, settings)
    except Exception as exc:
        return broker_problem(exc, settings)
    return None
