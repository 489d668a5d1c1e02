"""The status pages of the largest requests the upload accepts: time to render each page cold, and its bytes.

Run with ``make bench-status`` (``python -m benchmarks.status_pages``). Each request is uploaded through the API in
this process (SQLite, and PostgreSQL when it answers on 127.0.0.1:5432), every image is then marked failed with a
300-character error (each error line repeats its URL, so this is the largest answer a request can have), and its
pages are read in order, following ``next_offset`` (``offset + limit`` on code from before it), with the answer
cache emptied before each read; CPU time is the whole process's, which is the API and its one reader. Then a
``serve --no-worker`` (two API processes) holds the widest request, all failed, while ``--readers`` clients read its
pages from offsets of their own for ``--seconds``, and another client's small status read is timed before and
during that.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import http.client
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import update
from starlette.testclient import TestClient

from batchpress.context import Context
from batchpress.db.engine import Database
from batchpress.models import Image, ProcessingRequest
from batchpress.processing.results import MAX_ERROR_CHARS
from benchmarks.endtoend import DEFAULTS, PG_ADMIN
from tests.support.inprocess import api_client, service_context
from tests.support.servers import Service

HEADER = "S. No.,Product Name,Input Image Urls\n"
GZIP = "gzip, deflate"


def url(i: int, k: int, length: int) -> str:
    """A URL of ``length`` characters ending in a random token, as signed CDN URLs do (it compresses like one)."""
    head = f"https://img.example.com/{i}/{k}/"
    token = random.Random(i * 100_003 + k).randbytes(length).hex()  # noqa: S311 (reproducible, not a secret)
    return head + token[: length - len(head) - 4] + ".jpg"


def wide_csv(rows: int = 1000, urls: int = 24) -> str:
    """Every product at the caps: a 1,000-character name and ``urls`` URLs of 2,048 characters (~50 MB)."""
    lines = [
        f'{i},{("Product " + str(i) + " ").ljust(1000, "n")},"{",".join(url(i, k, 2048) for k in range(urls))}"\n'
        for i in range(1, rows + 1)
    ]
    return HEADER + "".join(lines)


def tall_csv(rows: int = 100_000) -> str:
    """The row cap: 100,000 products with a 300-character name and one 180-character URL each (~50 MB)."""
    return HEADER + "".join(
        f"{i},{('Item ' + str(i) + ' ').ljust(300, 't')},{url(i, 0, 180)}\n" for i in range(1, rows + 1)
    )


def many_csv(rows: int = 200, urls: int = 1000) -> str:
    """Products of ``urls`` short URLs each (the most a row may list): the most images per byte of CSV."""
    lines = [
        f'{i},Many {i},"{",".join(f"https://i.example/{i}/{k}.jpg" for k in range(urls))}"\n'
        for i in range(1, rows + 1)
    ]
    return HEADER + "".join(lines)


def fat_csv(rows: int = 40, urls: int = 1000) -> str:
    """The largest single products: 1,000 URLs of 1,040 characters, a whole 1 MiB field, each (~42 MB)."""
    lines = [f'{i},Fat {i},"{",".join(url(i, k, 1040) for k in range(urls))}"\n' for i in range(1, rows + 1)]
    return HEADER + "".join(lines)


KINDS = {"wide": wide_csv, "tall": tall_csv, "many": many_csv, "fat": fat_csv}
# ``--quick`` (the suite's smoke run): rows of each kind, still enough for several pages.
QUICK_ROWS = {"wide": 30, "tall": 3000, "many": 12, "fat": 3}


@dataclass(frozen=True)
class PageRead:
    offset: int
    products: int
    images: int
    json_bytes: int
    gzip_bytes: int
    seconds: float
    cpu_seconds: float  # of this whole process, which is the API and its one reader


def upload_failed(context: Context, api: TestClient, body: str) -> str:
    """The CSV uploaded, and every image of it failed with the longest error a worker records."""
    response = api.post("/api/upload/", files={"file": ("p.csv", body.encode(), "text/csv")}, timeout=600)
    assert response.status_code == 202, response.text[:500]
    rid = response.json()["request_id"]
    fail_everything(context.db, uuid.UUID(rid))
    return rid


def fail_everything(db: Database, rid: uuid.UUID) -> None:
    error = ("connection failed: " + "e" * MAX_ERROR_CHARS)[:MAX_ERROR_CHARS]
    with db.session() as session:
        session.execute(update(Image).where(Image.request_id == rid).values(state="failed", error=error))
        session.execute(
            update(ProcessingRequest)
            .where(ProcessingRequest.id == rid)
            .values(status="failed", revision=ProcessingRequest.revision + 1)
        )
        session.commit()


def read_pages(api: TestClient, rid: str, limit: int | None = None, max_pages: int = 10_000) -> list[PageRead]:
    """Every page in order, each rendered cold (the process's answer cache emptied first)."""
    reads: list[PageRead] = []
    offset: int | None = 0
    reads_state = api.app.state.status_reads  # type: ignore[attr-defined]
    while offset is not None and len(reads) < max_pages:
        reads_state.answers = type(reads_state.answers)()
        params: dict[str, int] = {"offset": offset} | ({"limit": limit} if limit else {})
        started, cpu = time.perf_counter(), time.process_time()
        # Raw: the client's own gunzip is left out of the time (it was ~half of it for a 2.4 MB page).
        with api.stream("GET", f"/api/status/{rid}/", params=params, headers={"Accept-Encoding": "gzip"}) as response:
            sent = b"".join(response.iter_raw())
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert response.status_code == 200, sent[:500]
        body = gzip.decompress(sent) if response.headers.get("content-encoding") == "gzip" else sent
        page = json.loads(body)
        images = sum(len(p["input_image_urls"]) for p in page["products"])
        reads.append(PageRead(offset, len(page["products"]), images, len(body), len(sent), seconds, cpu))
        nxt = page.get("next_offset", "absent")
        if nxt == "absent":  # before paging by budget: the next page starts ``limit`` further on
            nxt = page["offset"] + page["limit"] if page["offset"] + page["limit"] < page["total_products"] else None
        offset = nxt
    return reads


@contextmanager
def database(kind: str, root: Path) -> Iterator[Context]:
    if kind == "sqlite":
        with service_context(root / "sqlite") as context:
            yield context
        return
    name = f"bp_bench_status_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with service_context(root / "pg", PG_ADMIN.rpartition("/")[0] + "/" + name) as context:
            yield context
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def summary(reads: list[PageRead]) -> dict[str, Any]:
    ms = [r.seconds * 1000 for r in reads]
    cpu = [r.cpu_seconds * 1000 for r in reads]
    worst = max(reads, key=lambda r: r.seconds)
    return {
        "pages": len(reads),
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": p95(ms),
        "max_ms": round(max(ms), 2),
        "cpu_median_ms": round(statistics.median(cpu), 2),
        "cpu_p95_ms": p95(cpu),
        "max_json_bytes": max(r.json_bytes for r in reads),
        "max_images": max(r.images for r in reads),
        "max_products": max(r.products for r in reads),
        "first_page": reads[0].__dict__,
        "slowest_page": worst.__dict__,
    }


def p95(values: list[float]) -> float:
    return round(statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0], 2)


def render_part(
    databases: list[str], kinds: list[str], max_pages: int, rows: dict[str, int] | None = None
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bp-status-") as tmp:
        for db in databases:
            for kind in kinds:
                with database(db, Path(tmp) / f"{db}-{kind}") as context, api_client(context) as api:
                    started = time.monotonic()
                    body = KINDS[kind](rows[kind]) if rows else KINDS[kind]()
                    rid = upload_failed(context, api, body)
                    log(f"{db} {kind}: stored in {time.monotonic() - started:.1f} s")
                    read_pages(api, rid, max_pages=2)  # warm the process: imports, statement caches
                    # As a served API process does after start-up (api/app.py): the CSV and the rest of this
                    # process's setup are left out of every full collection, which otherwise cost 100+ ms a page.
                    gc.collect()
                    gc.freeze()
                    reads = read_pages(api, rid, max_pages=max_pages)
                    results[f"{db} {kind}"] = summary(reads)
                    log(f"  {json.dumps(results[f'{db} {kind}'])}")
    return results


def get(conn: http.client.HTTPConnection, path: str) -> int:
    """One GET with gzip accepted, the body read but not inflated; returns its bytes."""
    conn.request("GET", path, headers={"Accept-Encoding": GZIP})
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {body[:200]!r}")
    return len(body)


def small_reads(port: int, rid: str, count: int) -> list[float]:
    """``count`` sequential reads of a 1-product page, as another client's progress poll (no ETag, gzip)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        get(conn, f"/api/status/{rid}/?limit=1")
        latencies.append(time.perf_counter() - started)
        time.sleep(0.01)
    conn.close()
    return latencies


def hammer(port: int, rid: str, readers: int, seconds: float) -> list[float]:
    """``readers`` threads reading the request's pages for ``seconds``, each from its own offset on, as clients
    walking the pages would (so that the cache does not answer every read); run in a process of its own."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    def reader(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        offset = n * 61
        while time.monotonic() < deadline:
            started = time.perf_counter()
            get(conn, f"/api/status/{rid}/?offset={offset % 1000}")
            latencies.append(time.perf_counter() - started)
            offset += 7
        conn.close()

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def interference_part(readers: int, seconds: float, wide_rows: int = 1000) -> dict[str, Any]:
    """Another client's small status read, idle and while ``readers`` clients read the widest request's pages."""
    with tempfile.TemporaryDirectory(prefix="bp-status-load-") as tmp:
        api = Service(Path(tmp) / "data", DEFAULTS, ("--no-worker",)).start()
        try:
            body = wide_csv(wide_rows).encode()
            response = httpx.post(f"{api.base_url}/api/upload/", files={"file": ("w.csv", body)}, timeout=600)
            huge = response.json()["request_id"]
            small = api.upload(HEADER + "1,Small,https://img.example.com/s.jpg\n").json()["request_id"]
            with service_context(Path(tmp) / "data", migrate=False) as context:
                fail_everything(context.db, uuid.UUID(huge))
            small_reads(api.port, small, 50)
            idle = small_reads(api.port, small, 200)
            rss_before = api_rss(api)
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                pending = pool.apply_async(hammer, (api.port, huge, readers, seconds))
                time.sleep(min(5.0, seconds / 4))
                loaded = small_reads(api.port, small, 100)
                huge_reads = pending.get()
            conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=300)
            load = {
                "readers": readers,
                "huge_first_page_gzip_bytes": get(conn, f"/api/status/{huge}/"),
                "huge_reads": len(huge_reads),
                "huge_read_median_ms": round(statistics.median(huge_reads) * 1000, 1),
                "small_idle_median_ms": round(statistics.median(idle) * 1000, 2),
                "small_idle_p95_ms": p95([x * 1000 for x in idle]),
                "small_loaded_median_ms": round(statistics.median(loaded) * 1000, 2),
                "small_loaded_p95_ms": p95([x * 1000 for x in loaded]),
                "api_rss_mb_before": round(rss_before / 1e6),
                "api_rss_mb_after": round(api_rss(api) / 1e6),
            }
            log(json.dumps(load))
            return load
        finally:
            api.stop()


def api_rss(api: Service) -> int:
    import psutil

    assert api.process is not None
    server = psutil.Process(api.process.pid)
    return sum(p.memory_info().rss for p in [server, *server.children(recursive=True)])


_STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[status {time.monotonic() - _STARTED:4.0f} s] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--max-pages", type=int, default=400, help="pages read per request")
    parser.add_argument("--readers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the readers read")
    parser.add_argument("--quick", action="store_true", help="small requests, SQLite, 4 readers for 3 s")
    parser.add_argument("--skip-render", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--json", type=Path, default=Path("bench-results/status-pages.json"))
    args = parser.parse_args()
    report: dict[str, Any] = {}
    quick = QUICK_ROWS if args.quick else None
    databases = ["sqlite"] if args.quick else args.databases
    if not args.skip_render:
        report["render"] = render_part(databases, args.kinds, args.max_pages, quick)
    if not args.skip_load:
        readers, seconds = (4, 3.0) if args.quick else (args.readers, args.seconds)
        report["load"] = interference_part(readers, seconds, QUICK_ROWS["wide"] if args.quick else 1000)
    print(json.dumps(report, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
