"""kill -9 in the middle of a batch: every image still completes, once, with one output each."""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, select

from batchpress.config import Settings
from batchpress.models import Image
from tests.conftest import StartService
from tests.support.photos import make_image, tagged
from tests.support.servers import ImageServer, Route, Service, worker_main

# Few enough to keep the suite quick; a slow origin for half of them keeps every fault mid-batch (checked).
IMAGES = 60


@pytest.fixture(scope="module")
def batch_csv(image_server: ImageServer) -> str:
    lines = ["S. No.,Product Name,Input Image Urls"]
    for serial in range(1, IMAGES // 2 + 1):
        # The second half comes from a slow origin, so the batch is still running when the fault lands.
        delay = 0.5 if serial > IMAGES // 4 else 0
        urls = [
            # Other bytes for each: equal sources would share one output (processing/reuse.py).
            image_server.add(
                f"/crash/{serial}-{k}.jpg",
                tagged(make_image("jpeg", serial + k, (1200, 900)), f"{serial}-{k}"),
                delay=delay,
            )
            for k in range(2)
        ]
        lines.append(f'{serial},Item {serial},"{",".join(urls)}"')
    return "\n".join(lines) + "\n"


def wait_for_progress(service: Service, request_id: str, at_least: int) -> int:
    status = service.wait_until(request_id, lambda s: s["progress"]["processed"] >= at_least, timeout=120)
    processed: int = status["progress"]["processed"]
    assert processed < IMAGES, "the batch finished before the fault: nothing was tested"
    return processed


def assert_complete_without_duplicates(service: Service, request_id: str) -> None:
    status = service.wait_until(request_id, timeout=240)
    assert status["status"] == "completed", status["progress"]
    assert status["progress"]["processed"] == IMAGES
    outputs = [url for p in status["products"] for url in p["output_image_urls"]]
    assert len(outputs) == IMAGES
    assert len(set(outputs)) == IMAGES
    stored = [p for p in Path(service.data_dir, "images", "c").iterdir() if p.is_file()]
    assert len(stored) == IMAGES, "one file per image, no duplicates"
    for url in outputs[:: IMAGES // 10]:
        assert httpx.get(url).status_code == 200


def test_kill_9_worker_mid_batch(start_service: StartService, batch_csv: str) -> None:
    service = start_service()
    request_id = service.upload(batch_csv).json()["request_id"]
    before = wait_for_progress(service, request_id, 10)
    victim = worker_main(service)
    pool = victim.children()
    victim.send_signal(signal.SIGKILL)
    psutil.wait_procs([victim, *pool], timeout=10)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in pool), "pool children orphaned"
    started = time.monotonic()
    assert_complete_without_duplicates(service, request_id)
    print(
        f"\nkill -9 worker at {before}/{IMAGES} done: all {IMAGES} completed {time.monotonic() - started:.1f} s later"
    )


def test_kill_9_one_pool_process_mid_batch(start_service: StartService, batch_csv: str) -> None:
    """The worker's main process lives on: the killed process's task goes back to the queue, and its images, whose
    heartbeat stopped with it, are handed out again once their lease lapses."""
    service = start_service()
    request_id = service.upload(batch_csv).json()["request_id"]
    before = wait_for_progress(service, request_id, 10)
    worker = worker_main(service)
    victim = worker.children()[0]
    victim.send_signal(signal.SIGKILL)
    started = time.monotonic()
    assert_complete_without_duplicates(service, request_id)
    assert worker.is_running(), "the worker's main process survives a pool process"
    print(f"\nkill -9 pool process at {before}/{IMAGES} done: all completed {time.monotonic() - started:.1f} s later")


def test_kill_9_serve_mid_batch(start_service: StartService, batch_csv: str, tmp_path: Path) -> None:
    service = start_service()
    request_id = service.upload(batch_csv).json()["request_id"]
    before = wait_for_progress(service, request_id, 10)
    worker = worker_main(service)
    service.stop(signal.SIGKILL)
    psutil.wait_procs([worker], timeout=30)
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE, "worker outlived serve"

    started = time.monotonic()
    restarted = start_service(data_dir=service.data_dir, BATCHPRESS_PORT=str(service.port))
    assert_complete_without_duplicates(restarted, request_id)
    print(f"\nkill -9 serve at {before}/{IMAGES} done: all {IMAGES} completed {time.monotonic() - started:.1f} s later")


def test_poison_image_stops_after_capped_attempts(start_service: StartService, image_server: ImageServer) -> None:
    """An image that kills its worker every time is failed after BATCHPRESS_MAX_ATTEMPTS, and takes no other
    image down with it, even the ones that shared its task."""
    service = start_service(BATCHPRESS_MAX_ATTEMPTS="3", BATCHPRESS_LEASE_SECONDS="2")
    image_server.routes["/poison/deadly.jpg"] = Route(kill_client=True)
    good = [image_server.add(f"/poison/{i}.jpg", make_image("jpeg", i, (320, 240))) for i in range(6)]
    deadly = image_server.url("/poison/deadly.jpg")
    csv_text = (
        "S. No.,Product Name,Input Image Urls\n"
        f'1,A,"{good[0]},{good[1]}"\n2,B,"{good[2]},{deadly},{good[3]}"\n3,C,"{good[4]},{good[5]}"\n'
    )
    request_id = service.upload(csv_text).json()["request_id"]
    status = service.wait_until(request_id, timeout=120)

    assert status["status"] == "completed_with_errors"
    assert status["progress"]["processed"] == 6
    assert status["progress"]["failed"] == 1
    poisoned = status["products"][1]
    assert poisoned["output_image_urls"][1] is None
    assert "gave up after 3 attempts" in poisoned["errors"][0]
    assert image_server.hits["/poison/deadly.jpg"] == 3


def image_rows(service: Service, request_id: str) -> list[tuple[str, int]]:
    """Each image's state and attempts, read from the service's own database."""
    settings = Settings(data_dir=service.data_dir, database_url=service.env.get("BATCHPRESS_DATABASE_URL", ""))
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(Image.state, Image.attempts).where(Image.request_id == uuid.UUID(request_id))
            ).all()
    finally:
        engine.dispose()
    return [(row.state, row.attempts) for row in rows]


def test_sigterm_mid_batch_leaves_nothing_to_redo(start_service: StartService, batch_csv: str) -> None:
    """Results are written behind the compressor; a clean stop still lets the chunks in hand finish and writes
    their results before the pool processes exit, so no image is left leased for the sweeper to hand out again."""
    service = start_service()
    request_id = service.upload(batch_csv).json()["request_id"]
    before = wait_for_progress(service, request_id, 10)
    assert service.stop(signal.SIGTERM) == 0

    stopped = image_rows(service, request_id)
    states = Counter(state for state, _ in stopped)
    assert states["processing"] == 0, f"left leased by a clean stop: {states}"
    assert states["done"] >= before

    restarted = start_service(data_dir=service.data_dir, BATCHPRESS_PORT=str(service.port))
    assert_complete_without_duplicates(restarted, request_id)
    attempts = Counter(n for _, n in image_rows(restarted, request_id))
    assert attempts == {1: IMAGES}, f"images redone after a clean stop: {attempts}"
    print(f"\nSIGTERM at {before}/{IMAGES} done: {states['done']} written before exit, none redone")


def test_a_chunk_that_outlasts_its_lease_keeps_it(start_service: StartService, image_server: ImageServer) -> None:
    """The heartbeat renews the leases while the worker lives: a chunk whose four images arrive 0.6 s apart takes
    2.4 s, longer than its 1.5-s lease, and no sweep may hand any of them out again."""
    service = start_service(BATCHPRESS_LEASE_SECONDS="1.5", BATCHPRESS_SWEEP_INTERVAL_SECONDS="0.5")
    photo = make_image("jpeg", 3, (320, 240))
    # 64 images make chunks of four; the first chunk's arrive one by one
    urls = [image_server.add(f"/lease/{n}.jpg", photo, delay=0.6 * (n + 1) if n < 4 else 0) for n in range(64)]
    lines = ["S. No.,Product Name,Input Image Urls", *(f"{n},Item {n},{url}" for n, url in enumerate(urls, 1))]
    request_id = service.upload("\n".join(lines) + "\n").json()["request_id"]

    status = service.wait_until(request_id, timeout=60)
    assert status["status"] == "completed", status["progress"]
    attempts = Counter(n for _, n in image_rows(service, request_id))
    assert attempts == {1: 64}, f"handed out again while their worker held them: {attempts}"
    assert all(image_server.hits[f"/lease/{n}.jpg"] == 1 for n in range(4))


def test_a_slow_image_on_a_live_worker_keeps_its_lease(start_service: StartService, image_server: ImageServer) -> None:
    """A 12 MP photo from an origin that takes four leases to answer: the worker holding it lives, so nobody else
    gets it, however many sweeps pass."""
    service = start_service(BATCHPRESS_LEASE_SECONDS="1.5", BATCHPRESS_SWEEP_INTERVAL_SECONDS="0.3")
    slow = image_server.add("/slow/12mp.jpg", make_image("jpeg", 2, (4000, 3000)), delay=6.0)
    quick = image_server.add("/slow/quick.jpg", make_image("jpeg", 3, (320, 240)))
    request_id = service.upload(f'S. No.,Product Name,Input Image Urls\n1,Big,{slow}\n2,Small,"{quick}"\n').json()[
        "request_id"
    ]
    status = service.wait_until(request_id, timeout=60)
    assert status["status"] == "completed", status["progress"]
    assert Counter(n for _, n in image_rows(service, request_id)) == {1: 2}
    assert image_server.hits["/slow/12mp.jpg"] == 1
