"""The API under load: accepting large CSVs, and the status endpoint with many clients polling at once."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks.corpus import Corpus, products_csv, serve
from benchmarks.endtoend import DEFAULTS, TERMINAL, upload, vm_hwm_bytes
from benchmarks.http_load import closed_loop
from benchmarks.origin import Origin
from tests.support.photos import make_image
from tests.support.servers import Service

CLIENTS = 32
GZIP = "gzip, deflate"  # what httpx and requests send; browsers add br and zstd


@dataclass(frozen=True)
class Variant:
    label: str
    params: dict[str, int] | None
    accept_encoding: str | None
    goals: bool = True  # whether the targets apply to it


# The status as a client polls progress, the full first page (every product of a 1,000-product request), and that
# page to a client that does not accept gzip, for comparison.
VARIANTS = {
    "poll": Variant("progress poll (limit=1)", {"limit": 1}, GZIP),
    "full": Variant("full page ({products} products)", None, GZIP),
    "full-identity": Variant("full page, no gzip", None, None, goals=False),
}


def ingest_csv(rows: int) -> str:
    """``rows`` products of three URLs each; the hosts need not exist, since the API that takes it has no worker."""
    lines = ["S. No.,Product Name,Input Image Urls"]
    lines.extend(
        f'{i},Product {i},"https://img.example.com/p/{i}-1.jpg,https://img.example.com/p/{i}-2.jpg,'
        f'https://img.example.com/p/{i}-3.jpg"'
        for i in range(1, rows + 1)
    )
    return "\n".join(lines) + "\n"


def ingest_runs(root: Path, rows: int, repeats: int) -> tuple[list[float], int]:
    """Seconds from the POST to the 202, per repeat, on a fresh ``serve --no-worker``; and the peak RSS of its
    largest API process after (with several, Uvicorn's spawned processes serve and ``serve`` only waits)."""
    csv_text = ingest_csv(rows)
    api = Service(root, DEFAULTS, ("--no-worker",)).start()
    assert api.process is not None
    try:
        runs = []
        for _ in range(repeats):
            started = time.monotonic()
            _, answered, _ = upload(api.base_url, csv_text)
            runs.append(answered - started)
        server = psutil.Process(api.process.pid)
        return runs, max(vm_hwm_bytes(p.pid) for p in [server, *server.children()])
    finally:
        api.stop()


@dataclass(frozen=True)
class Latencies:
    p50: float
    p99: float
    requests_per_second: float
    cpu_percent: float  # whole machine, during the round

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 5) for k, v in self.__dict__.items()}


def status_round(base_url: str, request_id: str, clients: int, requests: int, variant: Variant) -> Latencies:
    """``clients`` keep-alive connections share ``requests`` GETs of the status as ``variant`` asks for it (one of
    ``VARIANTS``), from a load process of their own."""
    params = variant.params
    query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
    psutil.cpu_percent(None)
    result = closed_loop(f"{base_url}/api/status/{request_id}/{query}", clients, requests, variant.accept_encoding)
    cpu = psutil.cpu_percent(None)
    samples = result.latencies
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return Latencies(statistics.median(samples), cuts[98], len(samples) / result.wall_seconds, cpu)


def wait_terminal(api: Service, request_id: str, timeout: float = 600) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while (status := api.status(request_id, limit=1))["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise RuntimeError(f"request {request_id} stuck at {status['progress']}:\n{api.log()}")
        time.sleep(0.2)
    return status


def status_request(api: Service, server: Origin, products: int) -> tuple[str, int, float]:
    """A finished request of ``products`` products (one to three tiny images each) to read the status of. Run
    first, it is also the warm-up: every pool process has imported, connected and compressed by its end.
    Returns its id, its image count and the seconds it took, a measure of the per-image overhead."""
    tiny = make_image("jpeg", 0, (64, 48))
    urls = [server.add(f"/status/{n}.jpg", tiny) for n in range(products * 3)]
    lines = products_csv(urls).splitlines()[: products + 1]
    request_id, answered, _ = upload(api.base_url, "\n".join(lines) + "\n")
    status = wait_terminal(api, request_id)
    progress = status["progress"]
    assert isinstance(progress, dict)
    return request_id, int(progress["total_images"]), time.monotonic() - answered


def status_latency(
    api: Service,
    server: Origin,
    request_id: str,
    jpeg_set: Corpus,
    e2e_rate: float,
    plan: dict[str, tuple[int, int]],
) -> dict[str, Any]:
    """Status rounds, idle and then while a batch of copies of the JPEG set keeps the workers busy. ``plan`` maps
    each of ``VARIANTS`` to (rounds, requests per round)."""
    results: dict[str, dict[str, list[Latencies]]] = {name: {"idle": [], "busy": []} for name in plan}

    def measure(phase: str) -> None:
        for name, (rounds, requests) in plan.items():
            for _ in range(rounds):
                results[name][phase].append(status_round(api.base_url, request_id, CLIENTS, requests, VARIANTS[name]))

    measure("idle")
    # A batch sized to outlast the loaded rounds, assuming they run at a third of the idle request rate.
    seconds = 10.0
    for name, (rounds, requests) in plan.items():
        seconds += rounds * requests / (statistics.median(r.requests_per_second for r in results[name]["idle"]) / 3)
    copies = min(40, max(1, math.ceil(seconds * e2e_rate / len(jpeg_set.photos))))
    batch_urls = [url for copy in range(1, copies + 1) for url in serve(server, jpeg_set, copy=copy)]
    batch_id, _, _ = upload(api.base_url, products_csv(batch_urls))
    while api.status(batch_id, limit=1)["progress"]["processed"] < 1:
        time.sleep(0.05)
    measure("busy")
    after = api.status(batch_id, limit=1)
    wait_terminal(api, batch_id)  # what runs next (the fair-share part) measures a batch alone
    return {
        "latencies": results,
        "batch_images": len(batch_urls),
        "batch_still_running_after": after["status"] not in TERMINAL,
        "batch_progress_after": after["progress"],
    }
