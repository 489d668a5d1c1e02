"""Reaching the database and the broker at start, through the probes ``/readyz`` and ``doctor`` also run
(observability/probes.py): a refusal is permanent (``StartupError``), anything that may clear up by itself (refused
connections, a timeout, a host name not resolving yet) is waited for with back-off, one line per attempt."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from batchpress.cli.backoff import backoff_delay
from batchpress.cli.startup import BROKER, DATABASE, StartupError, shown_url
from batchpress.config import Settings
from batchpress.observability.probes import ProbeFailed, probe_broker, probe_database

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_SECONDS = 5


def probe_engine(settings: Settings) -> Engine:
    """An engine that keeps no connection: for probing the database once, not for work."""
    from sqlalchemy import create_engine, pool

    connect_args: dict[str, Any] = {} if settings.is_sqlite else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return create_engine(settings.database_url, poolclass=pool.NullPool, connect_args=connect_args)


def reach_database(settings: Settings) -> None:
    engine = probe_engine(settings)
    try:
        probe_database(engine, CONNECT_TIMEOUT_SECONDS)
    finally:
        engine.dispose()


def database_cause(failure: ProbeFailed, settings: Settings) -> str:
    """The cause when it may clear up by itself; raises ``StartupError`` when the server refused."""
    if not failure.permanent:
        return failure.cause
    fix = (
        f"create that database or fix {DATABASE}"
        if "does not exist" in failure.cause and "database" in failure.cause
        else f"fix the user, password or database in {DATABASE}, or the server's access rules"
    )
    raise StartupError(f"{DATABASE}={shown_url(settings.database_url)}: {failure.cause}", fix)


def broker_cause(failure: ProbeFailed, settings: Settings) -> str:
    """The cause when it may clear up by itself; raises ``StartupError`` when the broker refused (credentials,
    virtual host, database index) or the filesystem queue cannot be written."""
    if not failure.permanent:
        return failure.cause
    if settings.uses_filesystem_broker:
        raise StartupError(
            f"{BROKER}=filesystem://: the queue is {failure}",
            "make it writable for this user, or fix BATCHPRESS_DATA_DIR",
        )
    raise StartupError(
        f"{BROKER}={shown_url(settings.broker_url)}: the broker refused: {failure.cause}",
        f"fix the user, password or path in {BROKER}, or the broker's users",
    )


def wait_for(
    what: str,
    shown: str,
    attempt: Callable[[], None],
    problem: Callable[[ProbeFailed], str],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Try ``attempt`` until it succeeds; ``problem`` turns a failure into a short cause, or raises when it is
    permanent. Runs until then or until a signal handler raises (SIGTERM stops ``serve`` and ``worker``)."""
    for number in itertools.count():
        try:
            attempt()
        except ProbeFailed as failure:
            cause = problem(failure)
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
        lambda: reach_database(settings),
        lambda failure: database_cause(failure, settings),
    )


def wait_for_broker(settings: Settings) -> None:
    """A ``filesystem://`` queue that cannot be written fails at the first attempt: waiting would not help."""
    wait_for(
        "broker",
        shown_url(settings.broker_url),
        lambda: probe_broker(settings, CONNECT_TIMEOUT_SECONDS),
        lambda failure: broker_cause(failure, settings),
    )


def broker_not_ready(settings: Settings) -> str | None:
    """One try: None when the broker answers, the cause when it is unreachable; raises when it refused."""
    try:
        probe_broker(settings, CONNECT_TIMEOUT_SECONDS)
    except ProbeFailed as failure:
        return broker_cause(failure, settings)
    return None
