"""End-to-end runs: a CSV uploaded to a running service until its terminal status, and the naive baseline.

Services run with the production defaults for lease, sweep interval and API processes, read from ``Settings()``
(so a ``BATCHPRESS_*`` variable in the environment still wins), not with the short lease and sweep interval the test
harness (``Service``, ``Cluster``) sets for quick recovery in tests: a benchmark measures what a deployment gets.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from sqlalchemy import delete

from batchpress.config import Settings
from batchpress.db.engine import Database
from batchpress.models import SourceValidator, StoredOutput
from benchmarks import naive
from benchmarks.origin import Origin
from tests.support.cluster import Cluster, postgres_database
from tests.support.servers import REPO, Service

TERMINAL = {"completed", "completed_with_errors", "failed"}
PG_ADMIN = "postgresql://root@127.0.0.1:5432/test"
NAIVE_WORKER = (sys.executable, "-m", "celery", "-A", "benchmarks.naive", "worker", "--concurrency=1", "-l", "INFO")
_PRODUCTION = Settings()
# What the test harness overrides (a 5-s lease, a 1-s sweep, one API process for quicker starts), put back.
DEFAULTS = {
    "BATCHPRESS_LEASE_SECONDS": str(_PRODUCTION.lease_seconds),
    "BATCHPRESS_SWEEP_INTERVAL_SECONDS": str(_PRODUCTION.sweep_interval_seconds),
    "BATCHPRESS_API_WORKERS": str(_PRODUCTION.api_workers),
}


@dataclass(frozen=True)
class Run:
    seconds: float  # from the upload's 202 to the request's ``finished_at``, the moment the service finished it
    first_image_seconds: float  # from the upload's 202 to the first poll that shows processed >= 1
    processed: int
    seen_seconds: float  # from the 202 to the first status poll that showed the terminal status
    request_id: str = ""
    codec_seconds: float | None = None  # the codec limit's pass over the same set right before this run
    pillow_seconds: float | None = None  # plain Pillow quality 50's pass over the same set, also right before


def upload(base_url: str, csv_text: str, effort: str | None = None) -> tuple[str, float, float]:
    """POST the CSV (at the service's default effort unless given); returns the request id and the monotonic and
    wall-clock times the 202 arrived."""
    files = {"file": ("products.csv", csv_text.encode(), "text/csv")}
    fields = {"effort": effort} if effort else {}
    response = httpx.post(f"{base_url}/api/upload/", files=files, data=fields, timeout=120)
    answered, answered_at = time.monotonic(), time.time()
    if response.status_code != 202:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text[:300]}")
    return str(response.json()["request_id"]), answered, answered_at


def forget_outputs(api: Service) -> None:
    """Make the next upload compress every image again: the service forgets its stored outputs' recipes and the
    origins' validators (outputs and image rows stay). A throughput run must not reuse the last run's outputs."""
    settings = Settings(data_dir=api.data_dir, database_url=api.env.get("BATCHPRESS_DATABASE_URL", ""))
    db = Database(settings)
    try:
        with db.session() as session:
            session.execute(delete(StoredOutput))
            session.execute(delete(SourceValidator))
    finally:
        db.dispose()


def timed_run(
    api: Service,
    csv_text: str,
    images: int,
    timeout: float = 600,
    effort: str | None = None,
    *,
    warm: bool = False,
) -> Run:
    """Upload, poll every 20 ms until the first image is done, then every 0.25 s (with limit=1) until terminal.
    Cold (every image compressed, ``forget_outputs``) unless ``warm``.

    The batch's time ends at the ``finished_at`` the service stamps when it finishes the request (same machine,
    same clock): the poll that then sees it comes up to 0.25 s later, a delay of the benchmark's own polling.
    """
    if not warm:
        forget_outputs(api)
    request_id, answered, answered_at = upload(api.base_url, csv_text, effort)
    first: float | None = None
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        while True:
            status = client.get(f"/api/status/{request_id}/", params={"limit": 1}).json()
            now = time.monotonic()
            if first is None and status["progress"]["processed"] >= 1:
                first = now - answered
            if status["status"] in TERMINAL:
                break
            if now - answered > timeout:
                raise RuntimeError(f"request stuck at {status['progress']}:\n{api.log()}")
            time.sleep(0.02 if first is None else 0.25)
    if status["progress"]["processed"] != images:
        raise RuntimeError(f"expected {images} images processed, got {status['progress']}:\n{api.log()}")
    seen = now - answered
    finished_at = dt.datetime.fromisoformat(status["finished_at"]).timestamp()
    # A tiny batch can finish before its 202 reaches this client; it took at least the time since it was stored.
    stored_for = finished_at - dt.datetime.fromisoformat(status["created_at"]).timestamp()
    finished = max(finished_at - answered_at, stored_for, 1e-6)
    return Run(min(finished, seen), first if first is not None else seen, images, seen, request_id)


def output_urls(api: Service, request_id: str) -> dict[str, str | None]:
    """Input URL -> output URL (None where the image failed) of every image of a request, page by page."""
    found: dict[str, str | None] = {}
    offset: int | None = 0
    with httpx.Client(base_url=api.base_url, timeout=60) as client:
        while offset is not None:
            page = client.get(f"/api/status/{request_id}/", params={"offset": offset}).json()
            for product in page["products"]:
                found.update(zip(product["input_image_urls"], product["output_image_urls"], strict=True))
            offset = page["next_offset"]
    return found


def warm_up(api: Service, server: Origin, jpeg: bytes, images: int) -> None:
    """A small batch first, so every pool process has its connections and imports before anything is timed."""
    urls = [server.add(f"/warm/{uuid.uuid4().hex}.jpg", jpeg) for _ in range(images)]
    lines = ["S. No.,Product Name,Input Image Urls", *(f"{i},Warm {i},{u}" for i, u in enumerate(urls, 1))]
    timed_run(api, "\n".join(lines) + "\n", images, timeout=120)


@contextmanager
def embedded(root: Path, cores: int) -> Iterator[Service]:
    """``batchpress serve``: API plus its supervised worker, SQLite and the filesystem broker."""
    service = Service(root, {**DEFAULTS, "BATCHPRESS_WORKER_CONCURRENCY": str(cores)})
    try:
        yield service.start()
    finally:
        service.stop()


@contextmanager
def scaled_out(root: Path, broker_url: str, workers: int, concurrency: int) -> Iterator[Cluster]:
    """One API (``serve --no-worker``) and ``workers`` ``batchpress worker`` processes of ``concurrency`` pool
    processes each, on a fresh PostgreSQL database and a queue of their own on ``broker_url``."""
    with postgres_database(PG_ADMIN, f"bp_bench_{uuid.uuid4().hex[:8]}") as database:
        cluster = Cluster(
            root,
            {
                **DEFAULTS,
                "BATCHPRESS_DATABASE_URL": database,
                "BATCHPRESS_BROKER_URL": broker_url,
                "BATCHPRESS_QUEUE_NAME": f"bench-{uuid.uuid4().hex[:8]}",
            },
        )
        try:
            cluster.add_api()
            for _ in range(workers):
                cluster.add_worker(concurrency=concurrency)
            yield cluster
        finally:
            cluster.stop()


@contextmanager
def postgres_redis(root: Path, cores: int) -> Iterator[Service]:
    """One API and one ``batchpress worker`` with a pool process per core on PostgreSQL and Redis."""
    with scaled_out(root, "redis://127.0.0.1:6379/7", 1, cores) as cluster:
        yield cluster.apis[0]


def vm_hwm_bytes(pid: int) -> int:
    """Peak resident set size of a live process, from the kernel's VmHWM."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def worker_pool_peaks(serve_pid: int) -> list[int]:
    """VmHWM of each pool process: the children of the worker child that ``serve`` supervises."""
    peaks: list[int] = []
    for worker in psutil.Process(serve_pid).children():
        peaks.extend(vm_hwm_bytes(child.pid) for child in worker.children())
    return peaks


def naive_runs(url_sets: dict[str, list[str]], repeats: int) -> dict[str, list[float]]:
    """Seconds from enqueueing the one task to its marker file, per set and repeat, on one worker started
    beforehand."""
    with tempfile.TemporaryDirectory(prefix="bp-naive-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "NAIVE_QUEUE_DIR": str(root / "queue")}
        log_path = root / "worker.log"
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [*NAIVE_WORKER, "--pool=prefork", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 60
            while "ready." not in log_path.read_text(errors="replace"):
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"naive worker did not start:\n{log_path.read_text(errors='replace')}")
                time.sleep(0.1)
            app = naive.make_app(str(root / "queue"))
            runs: dict[str, list[float]] = {}
            for name, urls in url_sets.items():
                for repeat in range(repeats):
                    out_dir = root / f"out-{name}-{repeat}"
                    out_dir.mkdir()
                    marker = root / f"done-{name}-{repeat}.json"
                    started = time.monotonic()
                    app.send_task(naive.TASK, args=(urls, str(out_dir), str(marker)))
                    while not marker.exists():
                        if worker.poll() is not None or time.monotonic() - started > 900:
                            raise RuntimeError(f"naive run failed:\n{log_path.read_text(errors='replace')[-4000:]}")
                        time.sleep(0.02)
                    runs.setdefault(name, []).append(time.monotonic() - started)
            return runs
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
