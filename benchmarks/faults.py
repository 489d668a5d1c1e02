"""What a fault costs a batch: the same batch without and with a fault injected a third of the way through.

Run with ``make bench-faults`` (``python -m benchmarks.faults``; ``--images 60`` for a smoke run, ``--only`` and
``--setups`` to pick). Each case gets a fresh deployment with the production lease and sweep interval
(``benchmarks.endtoend.DEFAULTS``), a warm-up batch, then the batch without the fault and the batch with it. Every
batch is checked as the fault tests check it: every image compressed (none lost), one stored output per image (none
duplicated), exactly one terminal transition (the worker logs' ``request <id> finished`` lines); images claimed more
than once (``attempts > 1``) are counted as retried, which is how recovery works, not a fault of its own. It prints
a markdown table and writes every run to ``bench-results/faults.json`` and each case's logs under
``bench-results/faults-logs/``. Not a test: the suite asserts the same
invariants with a generous time bound (tests/test_scale_faults.py, tests/test_crash_recovery.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg
from kombu.connection import Connection
from sqlalchemy import create_engine, func, select

from batchpress.config import Settings
from batchpress.models import Image
from benchmarks.corpus import build, products_csv, serve
from benchmarks.endtoend import DEFAULTS, PG_ADMIN, TERMINAL, embedded, scaled_out, upload, warm_up
from benchmarks.origin import Origin
from benchmarks.report import machine
from tests.support.cluster import Cluster, RedisServer, port_open
from tests.support.photos import make_image
from tests.support.servers import Service

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

_STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[faults {time.monotonic() - _STARTED:4.0f} s] {message}", file=sys.stderr, flush=True)


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


@dataclass
class Case:
    fault: str
    setup: str
    without: list[Batch] = field(default_factory=list)
    with_fault: list[Batch] = field(default_factory=list)
    error: str = ""


def serve_worker(service: Service) -> psutil.Process:
    """The worker child ``serve`` supervises (waiting for a restarted one to appear)."""
    assert service.process is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child in psutil.Process(service.process.pid).children():
            if "worker" in child.cmdline():
                return child
        time.sleep(0.1)
    raise RuntimeError("serve has no worker child")


def kill_serve_worker(service: Service) -> None:
    """SIGKILL the worker child of ``serve`` and wait until its pool processes died with it (parent-death signal);
    ``serve`` starts another worker."""
    worker = serve_worker(service)
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
                lambda: serve_worker(service),
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


def run_case(case: Case, server: Origin, csv_text: str, images: int, root: Path, cores: int, timeout: float) -> None:
    warm_jpeg = make_image("jpeg", 1, (640, 480))
    with deploy(case.setup, root, cores, private_redis=case.fault == "redis-restart") as target:
        warm_up(target.api, server, warm_jpeg, 4 * cores)
        case.without.append(run_batch(target, csv_text, images, None, timeout))
        case.with_fault.append(run_batch(target, csv_text, images, case.fault, timeout))
    for label, batch in (("without", case.without[-1]), ("with", case.with_fault[-1])):
        log(
            f"  {label}: {batch.seconds:.2f} s, {batch.status}, lost {batch.lost}, duplicated {batch.duplicated}, "
            f"retried {batch.retried}, terminal {batch.terminal_transitions}"
            + (f"; at {batch.fault_at}/{images}: {batch.fault_note}" if batch.fault_at is not None else "")
        )


def keep_logs(root: Path, to: Path) -> None:
    """Copy the case's serve, API and worker logs out of its temporary directory: they say how a fault went."""
    shutil.rmtree(to, ignore_errors=True)
    for path in root.rglob("*.log"):
        target = to / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def median(batches: list[Batch]) -> float | None:
    return statistics.median(b.seconds for b in batches) if batches else None


def table(cases: list[Case], images: int) -> str:
    header = (
        "fault",
        "setup",
        "without (s)",
        "with (s)",
        "difference (s)",
        "injected at",
        "lost",
        "duplicated",
        "retried",
        "terminal transitions",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for case in cases:
        without, with_fault = median(case.without), median(case.with_fault)
        if case.error or without is None or with_fault is None:
            cells = [FAULTS[case.fault], SETUPS[case.setup], f"FAILED: {case.error[:120]}", *[""] * 7]
        else:
            every = case.without + case.with_fault
            cells = [
                FAULTS[case.fault],
                SETUPS[case.setup],
                f"{without:.1f}",
                f"{with_fault:.1f}",
                f"{with_fault - without:+.1f}",
                ", ".join(f"{b.fault_at}/{images}" for b in case.with_fault),
                str(max(b.lost for b in every)),
                str(max(b.duplicated for b in every)),
                ", ".join(str(b.retried) for b in case.with_fault),
                ", ".join(str(b.terminal_transitions) for b in case.with_fault),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def unavailable(setup: str, fault: str) -> str | None:
    """Why a case cannot run here, or None."""
    if setup != "embedded":
        try:
            psycopg.connect(PG_ADMIN, connect_timeout=3).close()
        except psycopg.Error:
            return f"no PostgreSQL at {PG_ADMIN}"
    if setup == "rabbitmq" and not port_open(5672):
        return "no RabbitMQ on 127.0.0.1:5672"
    if setup == "redis" and fault != "redis-restart" and not port_open(6379):
        return "no Redis on 127.0.0.1:6379"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300, help="images in the batch (default 300)")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of batches per case, each on a fresh setup")
    parser.add_argument("--only", nargs="+", choices=FAULTS, default=list(FAULTS), help="run only these faults")
    parser.add_argument("--setups", nargs="+", choices=SETUPS, default=list(SETUPS), help="and on these setups")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--timeout", type=float, default=300, help="seconds a batch may take before it fails")
    parser.add_argument("--json", type=Path, default=Path("bench-results/faults.json"))
    parser.add_argument("--logs", type=Path, default=Path("bench-results/faults-logs"), help="each case's logs")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    info = machine()
    cases = [Case(f, s) for f, s in CASES if f in args.only and s in args.setups]

    # The mixed set: about 70 % JPEG of 1-12 MP, 15 % PNG, 15 % WebP, as product photos come.
    others = 2 * round(args.images * 0.15)
    log(f"building the corpus ({args.images} images)")
    _, corpus = build(args.images - others, args.images, args.seed)
    with Origin() as server, tempfile.TemporaryDirectory(prefix="bp-faults-") as tmp:
        csv_text = products_csv(serve(server, corpus), args.seed)
        for n, case in enumerate(cases):
            reason = unavailable(case.setup, case.fault)
            log(f"{FAULTS[case.fault]}, {SETUPS[case.setup]}" + (f": skipped ({reason})" if reason else ""))
            if reason:
                case.error = f"skipped: {reason}"
                continue
            for repeat in range(args.repeats):
                root = Path(tmp) / f"{n}-{repeat}"
                try:
                    run_case(case, server, csv_text, args.images, root, cores, args.timeout)
                except Exception as exc:
                    log(f"  FAILED: {type(exc).__name__}: {exc}"[:4000])
                    case.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                    break
                finally:
                    keep_logs(root, args.logs / f"{case.fault}-{case.setup}-{repeat}")
    wall = time.monotonic() - _STARTED
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

    described = corpus.describe()
    print(
        f"\nmachine: {info['cores']} cores, {info['cpu']}; load average {info['load_average_at_start']} at start, "
        f"{info['load_average_at_end']} at end; wall time {wall:.0f} s"
    )
    print(
        f"batch: {described['images']} images, {described['megapixels']} MP, {described['by_format']}; lease "
        f"{DEFAULTS['BATCHPRESS_LEASE_SECONDS']} s, sweep every {DEFAULTS['BATCHPRESS_SWEEP_INTERVAL_SECONDS']} s; "
        f"median of {args.repeats} pair(s)\n"
    )
    print(table(cases, args.images), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": info,
        "images": args.images,
        "repeats": args.repeats,
        "seed": args.seed,
        "corpus": described,
        "settings": {k: v for k, v in DEFAULTS.items()},
        "wall_seconds": round(wall, 1),
        "cases": [
            {
                "fault": FAULTS[c.fault],
                "setup": SETUPS[c.setup],
                "error": c.error,
                "without": [asdict(b) for b in c.without],
                "with": [asdict(b) for b in c.with_fault],
            }
            for c in cases
        ],
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    dirty = [c for c in cases if any(not b.clean for b in c.without + c.with_fault)]
    for case in dirty:
        print(f"NOT CLEAN: {FAULTS[case.fault]}, {SETUPS[case.setup]}: images lost, duplicated or finished twice")
    if dirty or any(c.error and not c.error.startswith("skipped") for c in cases):
        sys.exit(1)


if __name__ == "__main__":
    main()
