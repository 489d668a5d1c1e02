"""What ``serve``, ``worker`` and ``migrate`` check before they start, so a failure explains itself in one line.

Two kinds of failure, handled differently. A permanent one (a setting that does not parse, a database or broker
of a kind batchpress does not support or whose driver or transport cannot be imported, credentials refused, a schema
that is not at this code's head) raises ``StartupError``: the command prints its one line, naming the setting, the
cause and the fix, and exits with ``EXIT_STARTUP``, since restarting would fail the same way. A dependency that is
only unreachable (refused connections, a timeout, a host name not resolving yet, as while an orchestrator starts
things in another order) is waited for with back-off, one line per attempt (cli/dependencies.py). ``doctor``
reports the same causes.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pydantic import SecretStr, ValidationError

from batchpress.cli.backoff import EXIT_STARTUP
from batchpress.config import Settings
from batchpress.observability.probes import first_line, mask_url

log = logging.getLogger(__name__)

DATABASE = "BATCHPRESS_DATABASE_URL"
BROKER = "BATCHPRESS_BROKER_URL"
DATABASE_KINDS = "use sqlite:///path/to/file.db or postgresql://user@host/db"
BROKER_KINDS = "use filesystem:// (the default), redis://host:6379/0 or amqp://user:password@host//"
REINSTALL = "reinstall with `make run` (locked dependencies)"
# Broker URL schemes, the transport's name, and the package its kombu transport needs beyond kombu itself.
BROKER_TRANSPORTS = {
    "redis": ("Redis", "redis", "celery[redis]"),
    "rediss": ("Redis", "redis", "celery[redis]"),
    "amqp": ("AMQP", "amqp", "celery"),
    "amqps": ("AMQP", "amqp", "celery"),
    "pyamqp": ("AMQP", "amqp", "celery"),
}


class StartupError(Exception):
    """A permanent start-up failure: ``problem`` names the setting and the cause, ``fix`` says what to do."""

    def __init__(self, problem: str, fix: str = "", code: int = EXIT_STARTUP) -> None:
        self.problem = problem
        self.fix = fix
        self.code = code
        super().__init__(f"{problem}; {fix}" if fix else problem)

    @property
    def line(self) -> str:
        return str(self)


def report(error: StartupError) -> None:
    """The one line on stderr: plain text, or one JSON record when BATCHPRESS_LOG_FORMAT=json."""
    if os.environ.get("BATCHPRESS_LOG_FORMAT", "").strip().lower() == "json":
        from batchpress.logs import JsonFormatter, configure_logging

        if not any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers):
            configure_logging("json")
        log.error("%s", error.line)
    else:
        print(f"error: {error.line}", file=sys.stderr, flush=True)


def shown_url(url: str) -> str:
    """The URL as an operator wrote it, password masked (config.py adds ``+psycopg`` to ``postgresql://``)."""
    return mask_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


def import_error(exc: ImportError) -> StartupError:
    """A module of batchpress or of a dependency that does not import: the installation is incomplete."""
    return StartupError(
        f"cannot import {exc.name or 'a module'} ({first_line(exc)})", f"the installation is incomplete: {REINSTALL}"
    )


# Settings


def settings_problems(exc: ValidationError) -> list[StartupError]:
    """One error per invalid variable, naming it, the value given (secrets hidden) and what is accepted."""
    problems = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # the model validator's messages name their variables already
            problems.append(StartupError(message, "fix those variables"))
            continue
        field = str(error["loc"][0])
        name = f"BATCHPRESS_{field.upper()}"
        info = Settings.model_fields.get(field)
        value = str(error.get("input", ""))
        if info is not None and info.annotation is SecretStr:
            value = "***"
        elif field.endswith("_url"):
            value = mask_url(value)
        default = "" if info is None or info.default_factory is not None else f" ({info.default})"
        problems.append(
            StartupError(
                f"{name}={value}: {message[:1].lower()}{message[1:]}",
                f"set {name} to an accepted value, or unset it for the default{default}",
            )
        )
    return problems


def load_settings() -> Settings:
    """The ``BATCHPRESS_*`` settings, read once by each command that starts, with pydantic's validation error turned
    into lines that name the variables."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = settings_problems(exc)
        if len(problems) == 1:
            raise problems[0] from None
        raise StartupError("; ".join(p.line for p in problems)) from None


# What kind of database and broker, and whether this installation can talk to them


def check_database_url(settings: Settings) -> None:
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = shown_url(settings.database_url)
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        raise StartupError(f"{DATABASE}={shown}: not a database URL", DATABASE_KINDS) from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StartupError(f"{DATABASE}={shown}: {backend} is not supported", DATABASE_KINDS)
    try:
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise StartupError(f"{DATABASE}={shown}: SQLAlchemy has no driver {url.drivername!r}", DATABASE_KINDS) from None
    except ImportError as exc:
        fix = (
            f"use postgresql://... (psycopg 3, which batchpress installs) or pip install {exc.name}"
            if backend == "postgresql" and url.get_driver_name() != "psycopg"
            else REINSTALL
        )
        raise StartupError(
            f"{DATABASE}={shown}: the {url.get_driver_name()} driver cannot be imported ({first_line(exc)})", fix
        ) from None


def check_broker_transport(settings: Settings) -> None:
    """The broker URL names a supported transport, and kombu's module for it imports (with its own imports)."""
    import importlib

    shown = shown_url(settings.broker_url)
    scheme = settings.broker_url.partition("://")[0].lower() if "://" in settings.broker_url else ""
    if scheme == "filesystem":
        return  # batchpress's own transport, imported with the worker's Celery app
    if scheme not in BROKER_TRANSPORTS:
        raise StartupError(f"{BROKER}={shown}: {scheme or 'this'} is not a supported broker", BROKER_KINDS)
    kind, package, requirement = BROKER_TRANSPORTS[scheme]
    from kombu.transport import get_transport_cls

    try:
        get_transport_cls(scheme)
        importlib.import_module(package)  # kombu's Redis transport imports without it and fails at first use
    except ImportError as exc:
        raise StartupError(
            f"{BROKER}={shown}: the {kind} transport cannot be loaded ({first_line(exc)})",
            f"{REINSTALL} or `pip install '{requirement}'`",
        ) from None


# The schema


def schema_revisions(settings: Settings) -> tuple[set[str], set[str], set[str]]:
    """The database's revisions, this code's heads, and the database's revisions this code does not know."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, make_url, pool

    from batchpress.db.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config(settings))
    heads = set(script.get_heads())
    database = make_url(settings.database_url).database
    if settings.is_sqlite and database and not Path(database).exists():
        return set(), heads, set()  # not created yet; connecting would create it (or fail on a missing folder)
    engine = create_engine(settings.database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    unknown = set()
    for revision in current:
        try:
            known = script.get_revision(revision) is not None
        except Exception:  # alembic raises rather than return None for an id it has never seen
            known = False
        if not known:
            unknown.add(revision)
    return current, heads, unknown


def check_schema(settings: Settings, *, will_migrate: bool) -> None:
    """The schema is at this code's head, or (``will_migrate``) behind it; never ahead of it."""
    current, heads, unknown = schema_revisions(settings)
    shown = shown_url(settings.database_url)
    head = ", ".join(sorted(heads))
    if unknown:
        raise StartupError(
            f"the database at {shown} is at {', '.join(sorted(unknown))}, a migration this batchpress does not have "
            f"(its newest is {head}): the code is older than the database",
            "run the batchpress version that migrated it, or a newer one",
        )
    if will_migrate or current == heads:
        return
    if not current:
        raise StartupError(
            f"the database at {shown} has no schema yet", "run `batchpress migrate` (`batchpress serve` also does)"
        )
    raise StartupError(
        f"the database at {shown} is at {', '.join(sorted(current))}, this version needs {head}",
        "run `batchpress migrate` (`batchpress serve` also does)",
    )
