"""Images per second with 1 and with 2 worker processes on PostgreSQL + Redis, and their ratio.

Run with ``make bench-scaling``. Each worker process runs one Celery pool process, so the comparison is one core's
worth of workers against two. Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.endtoend import DEFAULTS
from benchmarks.origin import Origin
from tests.support.cluster import Cluster, port_open, postgres_database
from tests.support.photos import make_image, tagged

PG_ADMIN = "postgresql://root@127.0.0.1:5432/test"


def corpus_csv(server: Origin, images: int, size: tuple[int, int]) -> str:
    lines = ["S. No.,Product Name,Input Image Urls"]
    for serial in range(1, images // 2 + 1):
        paths = [f"/bench/{serial}-{k}.jpg" for k in range(2)]
        # Other bytes for every image, as a shop's are: the service compresses equal bytes once.
        urls = [server.add(p, tagged(make_image("jpeg", serial * 2 + k, size), p)) for k, p in enumerate(paths)]
        lines.append(f'{serial},Item {serial},"{",".join(urls)}"')
    return "\n".join(lines) + "\n"


def run_once(workers: int, csv_text: str, images: int) -> float:
    """Seconds from the upload's answer to the terminal status, on a fresh database and queue."""
    with tempfile.TemporaryDirectory() as tmp, postgres_database(PG_ADMIN, f"bp_bench_{uuid.uuid4().hex[:8]}") as db:
        cluster = Cluster(
            Path(tmp),
            {
                "BATCHPRESS_DATABASE_URL": db,
                "BATCHPRESS_BROKER_URL": "redis://127.0.0.1:6379/6",
                "BATCHPRESS_QUEUE_NAME": f"bench-{uuid.uuid4().hex[:8]}",
                **DEFAULTS,
            },
        )
        try:
            api = cluster.add_api()
            for _ in range(workers):
                cluster.add_worker(concurrency=1)
            request_id = api.upload(csv_text).json()["request_id"]
            started = time.monotonic()
            status = api.wait_until(request_id, timeout=600)
            elapsed = time.monotonic() - started
            assert status["progress"]["processed"] == images, status["progress"]
            return elapsed
        finally:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1200)
    parser.add_argument("--json", type=Path, default=Path("bench-results/scaling.json"))
    args = parser.parse_args()
    if not (port_open(5432) and port_open(6379)):
        raise SystemExit("needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379")

    with Origin() as server:
        csv_text = corpus_csv(server, args.images, (args.width, args.height))
        megapixels = args.width * args.height / 1e6
        results: dict[int, float] = {}
        for workers in (1, 2):
            runs = [run_once(workers, csv_text, args.images) for _ in range(args.repeats)]
            results[workers] = statistics.median(runs)
            print(f"  {workers} worker(s): runs {', '.join(f'{r:.2f}' for r in runs)} s", flush=True)

    print(f"\n{args.images} JPEGs of {megapixels:.1f} MP, PostgreSQL + Redis, median of {args.repeats}")
    print(f"{'workers':>8} {'seconds':>9} {'images/s':>9} {'MP/s':>7}")
    for workers, seconds in results.items():
        rate = args.images / seconds
        print(f"{workers:>8} {seconds:>9.2f} {rate:>9.1f} {rate * megapixels:>7.1f}")
    ratio = results[1] / results[2]
    print(f"2 workers / 1 worker throughput ratio: {ratio:.2f}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "images": args.images,
                "megapixels_per_image": megapixels,
                "seconds": {str(k): v for k, v in results.items()},
                "images_per_second": {str(k): args.images / v for k, v in results.items()},
                "ratio_2_to_1": ratio,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
