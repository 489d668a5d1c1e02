"""A worker's pool process stays inside its memory budget on hostile files and 50 MP photos, and one that passes
its ceiling is replaced without losing an image."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StartService
from tests.support import hostile
from tests.support.photos import make_image
from tests.support.servers import Service, worker_main
from tests.support.traps import TrapServer

BUDGET_MB = 600


@pytest.fixture
def traps() -> Iterator[TrapServer]:
    server = TrapServer()
    yield server
    server.close()


def pool_pids(service: Service) -> set[int]:
    """The worker's pool processes, waiting for them to start."""
    deadline = time.monotonic() + 30
    while not (pids := {p.pid for p in worker_main(service).children()}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pids, "the worker has no pool process"
    return pids


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_hostile_files_and_50_mp_photos_stay_under_the_budget(start_service: StartService, traps: TrapServer) -> None:
    cases: dict[str, str] = {
        traps.static("/app3.jpg", hostile.empty_markers_jpeg(0xE3)): "more than 1000 metadata segments",
        traps.static("/com.jpg", hostile.empty_markers_jpeg(0xFE)): "more than 1000 metadata segments",
        traps.static("/exif.jpg", hostile.many_exif_jpeg()): "more than 1000 metadata segments",
        traps.static("/scans.jpg", hostile.many_scans_jpeg()): "more than 500 scans",
        **{
            traps.static(f"/bomb.{f.lower()}", hostile.bomb(f)): "MP, over the 50.0 MP limit"
            for f in hostile.BOMB_FORMATS
        },
        traps.static("/png16.png", hostile.png16_rgba(), "image/png"): "ok",
        traps.static("/50mp.jpg", hostile.PHOTOS_50_MP["exif_rotated_jpeg"]()): "ok",
        traps.static("/50mp-cmyk.jpg", hostile.PHOTOS_50_MP["cmyk_jpeg"]()): "ok",
    }
    # One pool process meets them all in turn; no ceiling, so it cannot be replaced and hide its peak.
    service = start_service(BATCHPRESS_WORKER_CONCURRENCY="1", BATCHPRESS_WORKER_MAX_RSS_MB="0")
    pools = pool_pids(service)
    rows = "\n".join(f"{n},Hostile {n},{traps.url(p)}" for n, p in enumerate(cases, 1))
    started = time.monotonic()
    request_id = service.upload(f"S. No.,Product Name,Input Image Urls\n{rows}\n").json()["request_id"]
    status = service.wait_until(request_id, timeout=240)
    elapsed = time.monotonic() - started

    for path, product in zip(cases, status["products"], strict=True):
        if cases[path] == "ok":
            assert product["errors"] == [], (path, product["errors"])
        else:
            assert product["output_image_urls"] == [None], path
            assert cases[path] in product["errors"][0], (path, product["errors"])
    # The refusals cost milliseconds; the three decoded images a few seconds each on a shared core.
    assert elapsed < 90, elapsed
    assert pool_pids(service) == pools
    peaks = {pid: peak_rss_mb(pid) for pid in pools}
    print(f"\npool process peak RSS (MB) over the hostile batch: {peaks}")
    assert max(peaks.values()) < BUDGET_MB


def test_a_pool_process_past_its_ceiling_is_replaced_and_no_image_is_lost(
    start_service: StartService, traps: TrapServer
) -> None:
    paths = [traps.static(f"/p{n}.jpg", make_image("jpeg", n, (800, 600))) for n in range(6)]
    # Every pool process is past 1 MiB: each is replaced after every task, one image a task at this batch size.
    service = start_service(BATCHPRESS_WORKER_CONCURRENCY="1", BATCHPRESS_WORKER_MAX_RSS_MB="1")
    first = pool_pids(service)
    rows = "\n".join(f"{n},Item {n},{traps.url(p)}" for n, p in enumerate(paths, 1))
    request_id = service.upload(f"S. No.,Product Name,Input Image Urls\n{rows}\n").json()["request_id"]
    status = service.wait_until(request_id, timeout=120)

    assert status["status"] == "completed", [p["errors"] for p in status["products"]]
    assert status["progress"]["processed"] == len(paths)
    assert all(product["output_image_urls"][0] for product in status["products"])
    assert not pool_pids(service) & first, "the pool process past its ceiling was not replaced"
