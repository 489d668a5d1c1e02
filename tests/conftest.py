from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from starlette.testclient import TestClient

from batchpress.config import Settings
from batchpress.context import Context
from batchpress.db.migrate import upgrade
from tests.support.inprocess import api_client, service_context
from tests.support.servers import ImageServer, Service, reap

PG_URL = os.environ.get("BATCHPRESS_TEST_DATABASE_URL", "")


@contextmanager
def fresh_database(template: str | None = None) -> Iterator[str]:
    """A new, empty database (or a copy of ``template``): PostgreSQL when BATCHPRESS_TEST_DATABASE_URL names a
    server, otherwise "" so the service uses its embedded SQLite file in its data directory."""
    if not PG_URL:
        yield ""
        return
    name = f"bp_test_{uuid.uuid4().hex[:12]}"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    base, _, _ = admin.rpartition("/")
    yield f"{base}/{name}"
    _dropper.submit(_drop, admin, name)


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# A drop takes 0.5-0.8 s (PostgreSQL removes the files and checkpoints); one thread does them while tests go on,
# and the session waits for the last ones at its end.
_dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-database")


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated once per session, which each in-process test gets a copy of: a SQLite file, or the
    name of a PostgreSQL template database."""
    if not PG_URL:
        data_dir = tmp_path_factory.mktemp("template")
        upgrade(Settings(data_dir=data_dir))  # a rollback-journal file: one file holds it all
        yield str(data_dir / "batchpress.db")
        return
    with fresh_database() as url:
        upgrade(Settings(data_dir=tmp_path_factory.mktemp("template"), database_url=url))
        yield url.rpartition("/")[2]


@contextmanager
def migrated_copy(template: str, data_dir: Path) -> Iterator[str]:
    """A test's own migrated database, copied from the template (a file copy, or CREATE DATABASE ... TEMPLATE):
    tens of milliseconds where migrating measured seconds on PostgreSQL."""
    if not PG_URL:
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, data_dir / "batchpress.db")
        yield ""
        return
    with fresh_database(template=template) as url:
        yield url


@pytest.fixture
def context(tmp_path: Path, migrated_template: str) -> Iterator[Context]:
    """The service's context on a database of its own, migrated (PostgreSQL in the second pass of ``.ci/run``)."""
    with (
        migrated_copy(migrated_template, tmp_path / "data") as url,
        service_context(tmp_path / "data", url, migrate=False) as built,
    ):
        yield built


@pytest.fixture
def api(context: Context) -> Iterator[TestClient]:
    """The API in this process over ``context``: for behaviour that needs no process of its own."""
    with api_client(context) as client:
        yield client


@pytest.fixture(scope="session")
def image_server() -> Iterator[ImageServer]:
    with ImageServer() as server:
        yield server


StartService = Callable[..., Service]


@pytest.fixture
def start_service(tmp_path: Path, database_url: str) -> Iterator[StartService]:
    """Start ``batchpress serve`` processes; each is stopped at the end of the test."""
    started: list[Service] = []

    def start(*args: str, data_dir: Path | None = None, **env: str) -> Service:
        if database_url:
            env.setdefault("BATCHPRESS_DATABASE_URL", database_url)
        service = Service(data_dir or tmp_path / "data", env, args).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop_soon()


@pytest.fixture(scope="session", autouse=True)
def _reap_services() -> Iterator[None]:
    """Services stop in the background while later tests run; the session waits for them all at its end."""
    yield
    reap()
    _dropper.shutdown(wait=True)


@pytest.fixture(scope="module")
def api_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The API with no worker, shared by a module's tests that only talk to the API."""
    with fresh_database() as url:
        env = {"BATCHPRESS_DATABASE_URL": url} if url else {}
        service = Service(tmp_path_factory.mktemp("api") / "data", env, ("--no-worker",)).start()
        yield service
        service.stop()
