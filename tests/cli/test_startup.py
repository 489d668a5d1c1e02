"""``serve`` and ``worker`` that cannot start say why in one line and exit 78 within seconds; a dependency that is
only unreachable is waited for, one line per attempt; a child failing at start is not restarted in a tight loop."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from batchpress.cli.backoff import EXIT_STARTUP
from batchpress.cli.dependencies import broker_not_ready
from batchpress.cli.startup import StartupError
from batchpress.config import Settings
from batchpress.db.migrate import alembic_config
from tests.support.cluster import port_open, postgres_admin_url
from tests.support.servers import REPO, free_port

COMMANDS = ["serve", "worker"]


def environment(tmp_path: Path, **env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPRESS_")}
    return {
        **base,
        "BATCHPRESS_DATA_DIR": str(tmp_path / "data"),
        "BATCHPRESS_PORT": str(free_port()),
        "BATCHPRESS_WORKER_CONCURRENCY": "1",
        "BATCHPRESS_API_WORKERS": "1",
        **env,
    }


def batchpress(command: str, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "batchpress", command],
        env=environment(tmp_path, **env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return run, time.monotonic() - started


def fails_in_one_line(run: subprocess.CompletedProcess[str], elapsed: float, line: str) -> None:
    """Exit 78 within seconds, the line last on stderr, no traceback."""
    assert run.returncode == EXIT_STARTUP, run.stderr
    assert run.stderr.splitlines()[-1] == line, run.stderr
    assert "Traceback" not in run.stderr
    assert elapsed < 20


def migrated(tmp_path: Path, **env: str) -> None:
    run, _ = batchpress("migrate", tmp_path, **env)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_an_invalid_setting_is_named(command: str, tmp_path: Path) -> None:
    run, elapsed = batchpress(command, tmp_path, BATCHPRESS_PORT="abc")
    fails_in_one_line(
        run,
        elapsed,
        "error: BATCHPRESS_PORT=abc: input should be a valid integer, unable to parse string as an integer; "
        "set BATCHPRESS_PORT to an accepted value, or unset it for the default (8000)",
    )
    assert len(run.stderr.splitlines()) == 1


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unsupported_database_is_named_with_the_password_masked(command: str, tmp_path: Path) -> None:
    run, elapsed = batchpress(command, tmp_path, BATCHPRESS_DATABASE_URL="mysql://u:secret@127.0.0.1/db")
    fails_in_one_line(
        run,
        elapsed,
        "error: BATCHPRESS_DATABASE_URL=mysql://u:***@127.0.0.1/db: mysql is not supported; "
        "use sqlite:///path/to/file.db or postgresql://user@host/db",
    )
    assert "secret" not in run.stderr + run.stdout
    assert len(run.stderr.splitlines()) <= 3


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unsupported_broker_is_named(command: str, tmp_path: Path) -> None:
    run, elapsed = batchpress(command, tmp_path, BATCHPRESS_BROKER_URL="kafka://u:secret@127.0.0.1:9092")
    fails_in_one_line(
        run,
        elapsed,
        "error: BATCHPRESS_BROKER_URL=kafka://u:***@127.0.0.1:9092: kafka is not a supported broker; "
        "use filesystem:// (the default), redis://host:6379/0 or amqp://user:password@host//",
    )
    assert "secret" not in run.stderr + run.stdout


@pytest.mark.parametrize("command", [*COMMANDS, "doctor"])
def test_a_broker_transport_that_cannot_be_imported_is_named_with_the_fix(command: str, tmp_path: Path) -> None:
    """As with a production install that lacked ``packaging``, which kombu's Redis transport imports."""
    fake = tmp_path / "site" / "packaging"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'packaging'\")\n")
    line = (
        "BATCHPRESS_BROKER_URL=redis://127.0.0.1:6379/3: the Redis transport cannot be loaded "
        "(No module named 'packaging'); reinstall with `make run` (locked dependencies) "
        "or `pip install 'celery[redis]'`"
    )
    env = {"PYTHONPATH": str(fake.parent), "BATCHPRESS_BROKER_URL": "redis://127.0.0.1:6379/3"}
    run, elapsed = batchpress(command, tmp_path, **env)
    if command == "doctor":
        assert run.returncode == 1
        assert f"FAIL  broker     {line.replace('; reinstall', ' -> reinstall')}" in run.stdout
    else:
        fails_in_one_line(run, elapsed, f"error: {line}")
        assert len(run.stderr.splitlines()) <= 3


@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_that_does_not_exist_is_permanent(command: str, tmp_path: Path) -> None:
    admin = postgres_admin_url()
    url = f"{admin.rpartition('/')[0]}/does_not_exist_xyz"
    run, elapsed = batchpress(command, tmp_path, BATCHPRESS_DATABASE_URL=url)
    fails_in_one_line(
        run,
        elapsed,
        f'error: BATCHPRESS_DATABASE_URL={url}: database "does_not_exist_xyz" does not exist; '
        "create that database or fix BATCHPRESS_DATABASE_URL",
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_broker_refusing_the_password_is_permanent_and_masked(command: str, tmp_path: Path) -> None:
    if not port_open(5672):
        pytest.skip("needs RabbitMQ on 127.0.0.1:5672")
    migrated(tmp_path)
    run, elapsed = batchpress(command, tmp_path, BATCHPRESS_BROKER_URL="amqp://guest:wrong@127.0.0.1:5672//")
    fails_in_one_line(
        run,
        elapsed,
        "error: BATCHPRESS_BROKER_URL=amqp://guest:***@127.0.0.1:5672//: the broker refused: (403) ACCESS_REFUSED - "
        "Login was refused using authentication mechanism PLAIN; "
        "fix the user, password or path in BATCHPRESS_BROKER_URL, or the broker's users",
    )
    assert "wrong" not in run.stderr + run.stdout


def test_redis_refusing_the_password_is_permanent_and_masked(tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs redis-server on PATH")
    port = free_port()
    redis = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--requirepass", "right"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_open(port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        migrated(tmp_path)
        run, elapsed = batchpress("worker", tmp_path, BATCHPRESS_BROKER_URL=f"redis://:wrong@127.0.0.1:{port}/0")
    finally:
        redis.terminate()
        redis.wait(10)
    fails_in_one_line(
        run,
        elapsed,
        f"error: BATCHPRESS_BROKER_URL=redis://:***@127.0.0.1:{port}/0: the broker refused: invalid username-password "
        "pair or user is disabled; fix the user, password or path in BATCHPRESS_BROKER_URL, or the broker's users",
    )


def waits_then_stops(command: str, tmp_path: Path, expected: str, **env: str) -> None:
    """Two waiting lines a second or two apart, then SIGTERM: an ordinary exit, no traceback."""
    log_path = tmp_path / f"{command}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "batchpress", command],
            env=environment(tmp_path, **env),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while log_path.read_text().count(expected) < 2:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log_path.read_text()
    assert f"{expected}; retrying in 1 s" in text
    assert f"{expected}; retrying in 2 s" in text
    assert "Traceback" not in text


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreachable_database_is_waited_for(command: str, tmp_path: Path) -> None:
    port = free_port()
    waits_then_stops(
        command,
        tmp_path,
        f"waiting for the database at postgresql://root@127.0.0.1:{port}/test: connection refused",
        BATCHPRESS_DATABASE_URL=f"postgresql://root@127.0.0.1:{port}/test",
    )


def test_an_unreachable_broker_is_waited_for_by_the_worker(tmp_path: Path) -> None:
    migrated(tmp_path)
    port = free_port()
    waits_then_stops(
        "worker",
        tmp_path,
        f"waiting for the broker at amqp://guest:***@127.0.0.1:{port}//: connection refused",
        BATCHPRESS_BROKER_URL=f"amqp://guest:secret@127.0.0.1:{port}//",
    )
    assert "secret" not in (tmp_path / "worker.log").read_text()


def test_serve_is_told_why_the_broker_does_not_answer_yet() -> None:
    assert broker_not_ready(Settings(broker_url="redis://127.0.0.1:6379/9")) is None
    assert broker_not_ready(Settings(broker_url=f"redis://127.0.0.1:{free_port()}/9")) == "connection refused"


def test_a_filesystem_queue_that_cannot_be_written_is_permanent(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    messages = settings.queue_dir / "messages"
    settings.queue_dir.mkdir()
    messages.write_text("a file where the queue's folder should be")
    with pytest.raises(StartupError) as raised:
        broker_not_ready(settings)
    assert raised.value.line == (
        f"BATCHPRESS_BROKER_URL=filesystem://: the queue is not writable: {messages}: File exists; "
        "make it writable for this user, or fix BATCHPRESS_DATA_DIR"
    )


# The newest migration this code has: what a database behind it is told to reach.
HEAD = ScriptDirectory.from_config(alembic_config(Settings())).get_current_head()


def set_revision(tmp_path: Path, revision: str) -> None:
    with sqlite3.connect(tmp_path / "data" / "batchpress.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def test_a_worker_on_a_database_behind_says_migrate(tmp_path: Path) -> None:
    migrated(tmp_path)
    set_revision(tmp_path, "0005")
    run, elapsed = batchpress("worker", tmp_path)
    database = tmp_path / "data" / "batchpress.db"
    fails_in_one_line(
        run,
        elapsed,
        f"error: the database at sqlite:///{database} is at 0005, this version needs {HEAD}; "
        "run `batchpress migrate` (`batchpress serve` also does)",
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_newer_than_the_code_is_named(command: str, tmp_path: Path) -> None:
    migrated(tmp_path)
    set_revision(tmp_path, "0099")
    run, elapsed = batchpress(command, tmp_path)
    fails_in_one_line(
        run,
        elapsed,
        f"error: the database at sqlite:///{tmp_path / 'data' / 'batchpress.db'} is at 0099, a migration this "
        f"batchpress does not have (its newest is {HEAD}): the code is older than the database; "
        "run the batchpress version that migrated it, or a newer one",
    )


def failing_children(tmp_path: Path, code: int, which: str = "worker") -> dict[str, str]:
    """A sitecustomize that makes only ``serve``'s children of one kind (``worker``, or ``api``: the processes
    multiprocessing spawns) exit at once with ``code``."""
    site = tmp_path / "site"
    site.mkdir()
    test = "sys.orig_argv[-1:] == ['worker']" if which == "worker" else "'spawn_main' in ' '.join(sys.orig_argv)"
    (site / "sitecustomize.py").write_text(f"import os, sys\nif {test}:\n    os._exit({code})\n")
    return {"PYTHONPATH": str(site)}


def test_serve_gives_up_at_once_on_a_worker_that_cannot_start(tmp_path: Path) -> None:
    run, elapsed = batchpress("serve", tmp_path, **failing_children(tmp_path, EXIT_STARTUP))
    assert run.returncode == EXIT_STARTUP, run.stderr
    last = run.stderr.splitlines()[-1]
    assert last.startswith("error: worker process "), run.stderr
    assert last.endswith(" could not start (exit code 78); see its error above")
    assert run.stderr.count("worker started as process") == 1
    assert elapsed < 30


@pytest.mark.parametrize(
    ("which", "args", "env", "started"),
    [
        ("worker", (), {}, "worker started as process"),
        ("api", ("--no-worker",), {"BATCHPRESS_API_WORKERS": "2"}, "API process started as process"),
    ],
)
def test_serve_backs_off_from_children_failing_at_start(
    tmp_path: Path, which: str, args: tuple[str, ...], env: dict[str, str], started: str
) -> None:
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "batchpress", "serve", *args],
            env=environment(tmp_path, **failing_children(tmp_path, 1, which), **env),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    text: Callable[[], str] = log_path.read_text
    slots = int(env.get("BATCHPRESS_API_WORKERS", "1"))
    try:
        deadline = time.monotonic() + 60
        while text().count("starting another in 2 s") < slots:
            assert process.poll() is None, text()
            assert time.monotonic() < deadline, text()
            time.sleep(0.1)
        time.sleep(1)
        # Three starts per child in about four seconds, not one a second: 1 s, then 2 s, then (next) 4 s apart.
        assert text().count(started) <= 3 * slots, text()
        assert re.search(r"exited with code 1 at start \(\d+ s\); starting another in 1 s", text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
