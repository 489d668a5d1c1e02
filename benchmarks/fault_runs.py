"""Deployments for the fault benchmark, the faults themselves, and one timed, checked batch (benchmarks/faults.py)."""

from __future__ import annotations

import datetime as dt
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg
from kombu.connection import Connection
from sqlalchemy import create_engine, func, select

from batchpress.config import Settings
from batchpress.models import Image
from benchmarks.endtoend import PG_ADMIN, TERMINAL, embedded, forget_outputs, scaled_out, upload
from tests.support.cluster import Cluster, RedisServer
from tests.support.servers import Service, worker_main

MACHINE_REDIS = "redis://127.0.0.1:6379/8"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
SETUPS = {
    "embedded": "embedded (serve: SQLite, filesystem queue)",
    "redis": "PostgreSQL + Redis, 2 workers",
    "rabbitmq": "PostgreSQL + RabbitMQ, 2 workers",
}
FAULTS = {
    "worker-kill": "worker kill -9",
    "pool-kill": "pool process kill -9",
    "serve-kill": "serve kill -9 and restart",
    "redis-restart": "Redis restart (nothing saved)",
    "db-drop": "database connections dropped",
}
CASES = (
    ("worker-kill", "embedded"),
    ("worker-kill", "redis"),
    ("worker-kill", "rabbitmq"),
    ("pool-kill", "embedded"),
    ("pool-kill", "redis"),
    ("pool-kill", "rabbitmq"),
    ("serve-kill", "embedded"),
    ("redis-restart", "redis"),
    ("db-drop", "redis"),
)
REDIS_DOWN_SECONDS = 2.0

STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[faults {time.monotonic() - STARTED:4.0f} s] {message}", file=sys.stderr, flush=True)


@dataclass
class Deployment:
    """What a fault and the checks need of a running setup."""

    api: Service
    data_dir: Path
    database_url: str  # "" for the embedded SQLite under data_dir
    worker_log: Callable[[], str]  # every line the workers logged, for the terminal transitions
    worker_main: Callable[[], psutil.Process]  # the worker main process a fault picks
    kill_worker: Callable[[], None]
    redis: RedisServer | None = None


@dataclass
class Batch:
    seconds: float  # from the upload's 202 to the request's finished_at
    status: str
    processed: int
    failed: int
    lost: int  # images not compressed
    stored: int  # output files under the request's folder
    duplicated: int  # output files beyond one per compressed image
    retried: int  # images claimed more than once
    terminal_transitions: int
    fault_at: int | None = None  # images processed when the fault was injected
    fault_note: str = ""
    poll_errors: int = 0  # status polls refused or failed while the fault lasted

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.terminal_transitions == 1


def kill_serve_worker(service: Service) -> None:
    """SIGKILL the worker child of ``serve`` and wait until its pool processes died with it (parent-death signal);
    ``serve`` starts another worker."""
    worker = worker_main(service)
    pool = worker.children()
    worker.send_signal(signal.SIGKILL)
    psutil.wait_procs([worker, *pool], timeout=10)


@contextmanager
def deploy(setup: str, root: Path, cores: int, private_redis: bool) -> Iterator[Deployment]:
    if setup == "embedded":
        with embedded(root / "embedded", cores) as service:
            yield Deployment(
                service,
                service.data_dir,
                "",
                lambda: service.log_path.read_text(errors="replace"),
                lambda: worker_main(service),
                lambda: kill_serve_worker(service),
            )
        return
    redis = RedisServer(root / "redis").start() if private_redis else None
    broker = RABBITMQ if setup == "rabbitmq" else redis.url if redis else MACHINE_REDIS
    try:
        with scaled_out(root / "cluster", broker, workers=2, concurrency=max(1, cores // 2)) as cluster:
            try:
                yield cluster_deployment(cluster, redis)
            finally:
                if setup == "rabbitmq":
                    delete_amqp_queue(cluster.env["BATCHPRESS_QUEUE_NAME"])
    finally:
        if redis is not None:
            redis.stop()


def cluster_deployment(cluster: Cluster, redis: RedisServer | None) -> Deployment:
    def main() -> psutil.Process:
        process = cluster.workers[0].process
        assert process is not None
        return psutil.Process(process.pid)

    return Deployment(
        cluster.apis[0],
        Path(cluster.env["BATCHPRESS_DATA_DIR"]),
        cluster.env["BATCHPRESS_DATABASE_URL"],
        cluster.worker_logs,
        main,
        cluster.workers[0].kill,
        redis,
    )


def delete_amqp_queue(name: str) -> None:
    """RabbitMQ keeps a durable queue after its consumers leave; the benchmark's are of no use to anyone."""
    try:
        with Connection(RABBITMQ, connect_timeout=5) as connection:  # type: ignore[no-untyped-call]  # kombu is not annotated
            connection.default_channel.queue_delete(name)
    except Exception as exc:  # a leftover queue is harmless; say so and go on
        log(f"could not delete RabbitMQ queue {name}: {exc}")


def inject(fault: str, target: Deployment) -> str:
    """Do the fault; returns what was done, for the JSON."""
    if fault == "worker-kill":
        victim = target.worker_main()
        target.kill_worker()
        return f"killed worker {victim.pid}"
    if fault == "pool-kill":
        main = target.worker_main()
        pool = main.children()
        if not pool:
            raise RuntimeError(f"worker {main.pid} has no pool process")
        pool[0].send_signal(signal.SIGKILL)
        return f"killed pool process {pool[0].pid} of worker {main.pid} ({len(pool)} in its pool)"
    if fault == "serve-kill":
        service = target.api
        assert service.process is not None
        descendants = psutil.Process(service.process.pid).children(recursive=True)
        killed = time.monotonic()
        service.stop(signal.SIGKILL)
        _, alive = psutil.wait_procs(descendants, timeout=30)
        if alive:
            raise RuntimeError(f"outlived serve: {[p.pid for p in alive]}")
        started = time.monotonic()
        service.start()
        return (
            f"killed serve; its {len(descendants)} descendants gone {started - killed:.1f} s later; "
            f"restarted, answering {time.monotonic() - started:.1f} s after that"
        )
    if fault == "redis-restart":
        assert target.redis is not None
        target.redis.shutdown_nosave()
        time.sleep(REDIS_DOWN_SECONDS)
        target.redis.start()
        return f"Redis killed, started again {REDIS_DOWN_SECONDS:.0f} s later"
    if fault == "db-drop":
        database = target.database_url.rpartition("/")[2]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()) AS t",
                (database,),
            ).fetchone()
        return f"{row[0] if row else 0} connections terminated"
    raise ValueError(fault)


def run_batch(target: Deployment, csv_text: str, images: int, fault: str | None, timeout: float) -> Batch:
    """Upload, poll (every 0.1 s until the fault, then every 0.25 s; a failed poll is counted and retried) until
    terminal, then count what the request left behind."""
    forget_outputs(target.api)  # every batch compresses its images, not the last batch's outputs again
    request_id, answered, answered_at = upload(target.api.base_url, csv_text)
    fault_at: int | None = None
    note = ""
    errors = 0
    with httpx.Client(base_url=target.api.base_url, timeout=10) as client:
        while True:
            try:
                response = client.get(f"/api/status/{request_id}/", params={"limit": 1})
                status = response.json() if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                status = None
            errors += status is None
            if status is not None:
                if fault and fault_at is None and status["progress"]["processed"] >= images // 3:
                    fault_at = status["progress"]["processed"]
                    note = inject(fault, target)
                    continue
                if status["status"] in TERMINAL:
                    break
            if time.monotonic() - answered > timeout:
                raise RuntimeError(f"request {request_id} not finished in {timeout:.0f} s: {status}")
            time.sleep(0.1 if fault and fault_at is None else 0.25)
    finished = dt.datetime.fromisoformat(status["finished_at"]).timestamp() - answered_at
    time.sleep(1.0)  # room for a second, wrong, terminal transition to reach the log
    processed, failed = status["progress"]["processed"], status["progress"]["failed"]
    folder = Settings(data_dir=target.data_dir).images_dir / request_id
    stored = sum(1 for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0
    return Batch(
        seconds=finished,
        status=status["status"],
        processed=processed,
        failed=failed,
        lost=images - processed,
        stored=stored,
        duplicated=max(0, stored - processed),
        retried=retried_images(target, request_id),
        terminal_transitions=target.worker_log().count(f"request {request_id} finished"),
        fault_at=fault_at,
        fault_note=note,
        poll_errors=errors,
    )


def retried_images(target: Deployment, request_id: str) -> int:
    settings = Settings(data_dir=target.data_dir, database_url=target.database_url)
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            count = connection.scalar(
                select(func.count()).where(Image.request_id == uuid.UUID(request_id), Image.attempts > 1)
            )
    finally:
        engine.dispose()
    return int(count or 0)
