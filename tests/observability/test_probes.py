"""The probes ``/readyz``, ``doctor`` and the start-up waits share, against the real thing: SQLite files, the
machine's PostgreSQL, Redis and RabbitMQ, moto's S3 server, and closed ports for what does not answer."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, pool

from batchpress.config import Settings
from batchpress.db.engine import make_engine
from batchpress.observability.probes import (
    NOT_WRITABLE,
    REFUSED,
    UNAVAILABLE,
    UNREACHABLE,
    ProbeFailed,
    first_line,
    mask_url,
    probe_broker,
    probe_database,
    probe_storage,
)
from batchpress.storage.local import LocalStorage
from batchpress.storage.s3 import S3Storage
from tests.support.cluster import port_open, postgres_admin_url, postgres_database
from tests.support.moto import moto_server
from tests.support.servers import free_port


def failure(probe: object, *args: object) -> ProbeFailed:
    with pytest.raises(ProbeFailed) as raised:
        probe(*args)  # type: ignore[operator]
    return raised.value


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_database(postgres_admin_url(), f"bp_probe_{uuid.uuid4().hex[:12]}") as url:
        yield url


def engine_for(url: str) -> Engine:
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=pool.NullPool)


# The database


def test_sqlite_answers_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    """A probe that took the write lock would wait out the 60 s busy timeout behind any long write."""
    engine = make_engine(Settings(data_dir=tmp_path))
    probe_database(engine, 2)  # creates the file, in WAL mode
    writer = sqlite3.connect(tmp_path / "batchpress.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        probe_database(engine, 2)
        assert time.monotonic() - started < 1
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        engine.dispose()


def test_sqlite_in_a_missing_folder_is_unreachable(tmp_path: Path) -> None:
    failed = failure(probe_database, create_engine(f"sqlite:///{tmp_path}/missing/batchpress.db"), 2)
    assert (failed.how, failed.cause, failed.permanent) == (UNREACHABLE, "unable to open database file", False)


def test_postgresql_answers(postgres_url: str) -> None:
    engine = engine_for(postgres_url)
    probe_database(engine, 2)
    engine.dispose()


def test_a_postgresql_database_that_does_not_exist_is_refused_for_good(postgres_url: str) -> None:
    missing = f"{postgres_url.rpartition('/')[0]}/bp_missing_{uuid.uuid4().hex[:12]}"
    failed = failure(probe_database, engine_for(missing), 2)
    assert failed.how == REFUSED
    assert failed.permanent
    assert failed.cause == f'database "{missing.rpartition("/")[2]}" does not exist'


def test_postgresql_on_a_closed_port_is_unreachable_for_now() -> None:
    failed = failure(probe_database, engine_for(f"postgresql://root@127.0.0.1:{free_port()}/test"), 2)
    assert str(failed) == "unreachable: connection refused"
    assert not failed.permanent


# The broker


def test_redis_answers() -> None:
    probe_broker(Settings(broker_url="redis://127.0.0.1:6379/9"), 2)


def test_redis_on_a_closed_port_is_unreachable_for_now() -> None:
    started = time.monotonic()
    failed = failure(probe_broker, Settings(broker_url=f"redis://:secret@127.0.0.1:{free_port()}/9"), 2)
    assert time.monotonic() - started < 2  # one attempt, not kombu's retries
    assert str(failed) == "unreachable: connection refused"
    assert not failed.permanent


def test_a_redis_database_index_out_of_range_is_refused_for_good() -> None:
    failed = failure(probe_broker, Settings(broker_url="redis://127.0.0.1:6379/99"), 2)
    assert (failed.how, failed.permanent) == (REFUSED, True)
    assert "DB index is out of range" in failed.cause


def test_rabbitmq_refusing_the_password_is_refused_for_good() -> None:
    if not port_open(5672):
        pytest.skip("needs RabbitMQ on 127.0.0.1:5672")
    failed = failure(probe_broker, Settings(broker_url="amqp://guest:wrong@127.0.0.1:5672//"), 2)
    assert str(failed) == "refused: (403) ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN"
    assert failed.permanent


def test_a_filesystem_queue_needs_writable_folders(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    probe_broker(settings, 2)
    messages = settings.queue_dir / "messages"
    messages.rmdir()
    messages.write_text("a file where the queue's folder should be")
    failed = failure(probe_broker, settings, 2)
    assert failed.how == NOT_WRITABLE
    assert failed.cause.startswith(f"{messages}: ")
    assert failed.permanent


# The storage


def test_local_storage_is_written_through_its_save_and_left_clean(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "images", tmp_path / "tmp", "http://127.0.0.1/images")
    probe_storage(storage)
    assert list((tmp_path / "images").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("folder", ["images", "tmp"])
def test_local_storage_names_the_folder_it_cannot_write(tmp_path: Path, folder: str) -> None:
    storage = LocalStorage(tmp_path / "images", tmp_path / "tmp", "http://127.0.0.1/images")
    (tmp_path / folder).write_text("a file where the folder should be")
    failed = failure(probe_storage, storage)
    assert failed.how == NOT_WRITABLE
    assert failed.cause.startswith(f"{tmp_path / folder}: ")


def test_s3_needs_the_bucket() -> None:
    with moto_server() as moto:
        settings = Settings(
            storage="s3",
            s3_bucket=moto.new_bucket(),
            s3_endpoint_url=moto.endpoint,
            s3_access_key_id="test",
            s3_secret_access_key="test",
        )
        probe_storage(S3Storage.from_settings(settings))
        missing = S3Storage.from_settings(settings.model_copy(update={"s3_bucket": "bp-no-such-bucket"}))
        failed = failure(probe_storage, missing)
    assert str(failed) == f"{UNAVAILABLE}: S3 bucket 'bp-no-such-bucket' at {moto.endpoint} does not exist"


# Causes


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql+psycopg://app:s3cret@db:5432/bp", "postgresql+psycopg://app:***@db:5432/bp"),
        ("redis://:pw@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("redis://:p@ss@host:6379/0", "redis://:***@host:6379/0"),
        ("amqp://guest@rabbit//", "amqp://guest@rabbit//"),
        ("sqlite:////data/batchpress.db", "sqlite:////data/batchpress.db"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        (
            "cannot connect to amqp://u:secret@rabbit:5672//: refused; mail admin@example.com",
            "cannot connect to amqp://u:***@rabbit:5672//: refused; mail admin@example.com",
        ),
    ],
)
def test_passwords_are_masked(text: str, shown: str) -> None:
    assert mask_url(text) == shown


def test_a_cause_is_one_short_line_without_passwords() -> None:
    error = RuntimeError("Error connecting to redis://:hunter2@cache:6379/0\nTraceback follows\n" + "x" * 300)
    assert first_line(error) == "Error connecting to redis://:***@cache:6379/0"
    assert len(first_line(RuntimeError("y" * 300))) == 200
    assert first_line(RuntimeError()) == "RuntimeError"
