"""/readyz says whether the database, broker and storage answer, and always answers quickly itself."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from batchpress.config import Settings
from batchpress.observability.probes import probe_broker, probe_storage
from batchpress.observability.readiness import check_pool, run_checks
from batchpress.storage import make_storage
from tests.conftest import StartService
from tests.support.photos import make_image
from tests.support.servers import ImageServer

DEAD_REDIS = "redis://127.0.0.1:1/0"


def test_ready_on_the_embedded_default_without_an_api_key(start_service: StartService) -> None:
    service = start_service(BATCHPRESS_API_KEYS="sekret-key")
    response = httpx.get(f"{service.base_url}/readyz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "storage": "ok"},
        "warnings": [],
    }
    assert httpx.get(f"{service.base_url}/metrics", timeout=10).status_code == 200
    assert httpx.get(f"{service.base_url}/api/status/{'0' * 32}/", timeout=10).status_code == 401


def test_a_dead_broker_is_named_and_neither_probe_nor_upload_hangs(
    start_service: StartService, image_server: ImageServer
) -> None:
    service = start_service("--no-worker", BATCHPRESS_BROKER_URL=DEAD_REDIS)
    started = time.monotonic()
    response = httpx.get(f"{service.base_url}/readyz", timeout=10)
    assert time.monotonic() - started < 4
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["broker"].startswith("unreachable: ")
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["storage"] == "ok"

    url = image_server.add("/readyz/a.jpg", make_image("jpeg", 0, (320, 240)))
    started = time.monotonic()
    upload = service.upload(f"S. No.,Product Name,Input Image Urls\n1,Shoe,{url}\n")
    assert upload.status_code == 202
    assert time.monotonic() - started < 20
    # Stored, and waiting for the broker to come back.
    assert service.status(upload.json()["request_id"])["progress"]["pending"] == 1


def test_a_hung_check_is_reported_as_timed_out() -> None:
    release = threading.Event()
    started = time.monotonic()
    report = run_checks(
        check_pool(), {"database": lambda: None, "broker": lambda: release.wait(10) and None}, timeout=0.3
    )
    release.set()
    assert time.monotonic() - started < 2
    assert report == {"database": "ok", "broker": "timed out after 0.3 s"}


def test_filesystem_broker_and_local_storage_need_writable_folders(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    storage = make_storage(settings)
    assert run_checks(
        check_pool(), {"broker": lambda: probe_broker(settings, 2), "storage": lambda: probe_storage(storage)}, 2
    ) == {
        "broker": "ok",
        "storage": "ok",
    }
    settings.images_dir.rmdir()
    settings.images_dir.write_text("a file where the images folder should be")
    report = run_checks(check_pool(), {"storage": lambda: probe_storage(storage)}, timeout=2)
    assert report["storage"].startswith(f"not writable: {settings.images_dir}: ")
