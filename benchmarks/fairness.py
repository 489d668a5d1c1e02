"""Fair share: how long a 3-image request takes while a large batch runs, and what it costs the large batch.

Run alone with ``make bench-fairness`` (``python -m benchmarks.fairness``); ``make bench`` runs it as its
``fairness`` part. The large batch is the JPEG corpus served ``copies`` times under other paths; small requests of
three fresh images each are uploaded one a second from 1 s after the large one's 202, each polled until finished.
The large batch also runs alone, alternating with the runs beside small requests, for its throughput ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.corpus import Corpus, build, products_csv, serve
from benchmarks.endtoend import TERMINAL, embedded, forget_outputs, postgres_redis, timed_run, upload, warm_up
from benchmarks.origin import Origin
from tests.support.photos import make_image, tagged
from tests.support.servers import Service

SMALL_IMAGES = 3
GOAL_SECONDS = 2.0
GOAL_THROUGHPUT = 0.95
# Turns, not codecs, are measured here: at the default effort its large batch would take ~4x as long.
FAIR_EFFORT = "fast"


@dataclass
class FairShare:
    large_images: int
    alone_seconds: list[float] = field(default_factory=list)
    beside_seconds: list[float] = field(default_factory=list)
    small_seconds: list[float] = field(default_factory=list)  # upload's 202 to the small request's finished_at

    @property
    def throughput_ratio(self) -> float:
        """The large batch's images/s beside the small requests against alone (medians)."""
        return statistics.median(self.alone_seconds) / statistics.median(self.beside_seconds)

    def p95(self) -> float:
        ordered = sorted(self.small_seconds)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def finished_after(
    client: httpx.Client, request_id: str, answered_at: float, *, every: float, timeout: float = 900
) -> float:
    """Poll a request every ``every`` seconds until it is terminal; seconds from ``answered_at`` (wall clock) to
    its ``finished_at``, which the service stamps: the polling interval only sets what the polls cost."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/status/{request_id}/", params={"limit": 1}).json()
        if status["status"] in TERMINAL:
            finished = dt.datetime.fromisoformat(status["finished_at"]).timestamp()
            return max(finished - answered_at, 0.0)
        time.sleep(every)
    raise RuntimeError(f"request {request_id} not finished after {timeout:.0f} s")


def small_csv(server: Origin, photo: bytes) -> str:
    """Each image other bytes, as a shop's would be: the same bytes would be compressed once and then reused."""
    paths = [f"/small/{uuid.uuid4().hex}.jpg" for _ in range(SMALL_IMAGES)]
    urls = [server.add(path, tagged(photo, path), "image/jpeg") for path in paths]
    return "S. No.,Product Name,Input Image Urls\n" + "".join(f"{n},Small {n},{u}\n" for n, u in enumerate(urls, 1))


def beside_small_requests(
    api: Service, server: Origin, large_csv: str, photo: bytes, tries: int
) -> tuple[float, list[float]]:
    """Upload the large batch, then ``tries`` small requests a second apart; returns the large batch's seconds and
    each small request's."""
    csvs = [small_csv(server, photo) for _ in range(tries)]
    forget_outputs(api)  # compressed again, as alone
    large_id, answered, answered_at = upload(api.base_url, large_csv, effort=FAIR_EFFORT)
    small: list[float] = [0.0] * tries
    errors: list[BaseException] = []

    def one(index: int) -> None:
        try:
            time.sleep(max(0.0, answered + 1.0 + index - time.monotonic()))
            request_id, _, at = upload(api.base_url, csvs[index], effort=FAIR_EFFORT)
            with httpx.Client(base_url=api.base_url, timeout=30) as client:
                small[index] = finished_after(client, request_id, at, every=0.05)
        except BaseException as exc:  # reported below, in the benchmark's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(tries)]
    for thread in threads:
        thread.start()
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        # As often as ``timed_run`` polls the batch alone, so both runs pay the same for their polls.
        large = finished_after(client, large_id, answered_at, every=0.25)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return large, small


def fair_share(api: Service, server: Origin, corpus: Corpus, *, copies: int, tries: int, rounds: int) -> FairShare:
    """``rounds`` pairs of runs of the large batch: alone, then beside ``tries`` small requests."""
    urls = [u for copy in range(1, copies + 1) for u in serve(server, corpus, copy=900 + copy)]
    large_csv = products_csv(urls)
    photo = make_image("jpeg", 7, (800, 600))
    result = FairShare(len(urls))
    for _ in range(rounds):
        result.alone_seconds.append(timed_run(api, large_csv, len(urls), timeout=900, effort=FAIR_EFFORT).seconds)
        large, small = beside_small_requests(api, server, large_csv, photo, tries)
        result.beside_seconds.append(large)
        result.small_seconds.extend(small)
    return result


def describe(result: FairShare) -> str:
    small = result.small_seconds
    return (
        f"{SMALL_IMAGES}-image request beside a {result.large_images}-image batch: median "
        f"{statistics.median(small):.2f} s, p95 {result.p95():.2f} s, max {max(small):.2f} s "
        f"(goal < {GOAL_SECONDS:.0f} s); large batch {statistics.median(result.alone_seconds):.1f} s alone, "
        f"{statistics.median(result.beside_seconds):.1f} s beside them: {result.throughput_ratio:.3f}x its throughput "
        f"(goal >= {GOAL_THROUGHPUT})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jpegs", type=int, default=480)
    parser.add_argument("--copies", type=int, default=3, help="times the JPEG set is repeated in the large batch")
    parser.add_argument("--tries", type=int, default=10, help="small requests per run beside the large batch")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--postgres", action="store_true", help="one API and one worker on PostgreSQL + Redis")
    args = parser.parse_args()
    jpegs, _ = build(args.jpegs, 0, args.seed)
    cores = os.cpu_count() or 1
    with (
        Origin() as server,
        tempfile.TemporaryDirectory(prefix="bp-fair-") as tmp,
        (postgres_redis if args.postgres else embedded)(Path(tmp) / "service", cores) as api,
    ):
        warm_up(api, server, make_image("jpeg", 1, (640, 480)), 4 * cores)
        result = fair_share(api, server, jpegs, copies=args.copies, tries=args.tries, rounds=args.rounds)
    print(describe(result))
    print("small requests (s):", ", ".join(f"{s:.2f}" for s in result.small_seconds))
    print("large batch alone (s):", ", ".join(f"{s:.1f}" for s in result.alone_seconds))
    print("large batch beside them (s):", ", ".join(f"{s:.1f}" for s in result.beside_seconds))


if __name__ == "__main__":
    main()
