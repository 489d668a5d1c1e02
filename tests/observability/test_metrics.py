"""/metrics counts what the worker processes did, read from the database by the API process that serves it.

In this process: the API over the test's own migrated database, and the worker's pipeline and webhook delivery
run inline, so every count comes from the rows they wrote, as it would across processes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, literal, select
from starlette.testclient import TestClient

from batchpress.context import Context
from batchpress.observability.metrics import REASON_LABELS, failure_reason
from batchpress.processing.compress import ImageRejected, compress_image
from batchpress.webhooks.signing import new_secret
from tests.conftest import migrated_copy
from tests.support.inprocess import deliver_inline, process_inline, service_context
from tests.support.photos import make_image
from tests.support.receiver import Receiver
from tests.support.servers import ImageServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SECRET = new_secret()


def scrape(api: TestClient) -> Samples:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """Module-wide, as closing one waits out its half-second poll; one test posts to it."""
    receiver = Receiver(SECRET)
    yield receiver
    receiver.close()


@pytest.fixture
def context(tmp_path: Path, migrated_template: str, receiver: Receiver) -> Iterator[Context]:
    """The conftest's context, with the server's webhook at the receiver and one retry, due at once."""
    with (
        migrated_copy(migrated_template, tmp_path / "data") as url,
        service_context(
            tmp_path / "data",
            url,
            migrate=False,
            webhook_url=receiver.url("/hook"),
            webhook_secret=SECRET,
            webhook_retry_schedule="0,0",
        ) as built,
    ):
        yield built


def upload(api: TestClient, csv_text: str) -> str:
    response = api.post("/api/upload/", files={"file": ("products.csv", csv_text.encode(), "text/csv")})
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def test_a_batch_moves_every_metric_by_what_it_did(
    context: Context, api: TestClient, image_server: ImageServer, receiver: Receiver
) -> None:
    receiver.scripts["/hook"] = ["500"]  # one retry, then delivered
    inputs = {
        image_server.add(f"/metrics/{i}-{kind}", make_image(kind, i, (640, 480)), content_type): make_image(
            kind, i, (640, 480)
        )
        for i, (kind, content_type) in enumerate([("jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")])
    }
    missing = image_server.url("/metrics/missing.jpg")
    page = image_server.add("/metrics/page.jpg", b"<!doctype html><html><body>gone</body></html>", "image/jpeg")
    urls = [*inputs, missing, page]
    before = scrape(api)

    rows = "\n".join(f"{n},Item {n},{url}" for n, url in enumerate(urls, start=1))
    request_id = upload(api, f"S. No.,Product Name,Input Image Urls\n{rows}\n")
    [event_id] = process_inline(context, uuid.UUID(request_id))
    deliver_inline(context, event_id)
    assert [d.answered for d in receiver.at("/hook")] == [500, 200]
    status = api.get(f"/api/status/{request_id}/").json()
    assert status["status"] == "completed_with_errors"
    assert status["webhook"]["state"] == "delivered"
    after = scrape(api)

    outputs = [api.get(p["output_image_urls"][0]).content for p in status["products"][:3]]

    assert delta(before, after, "batchpress_images_processed_total") == 3
    assert delta(before, after, "batchpress_image_input_bytes_total") == sum(len(data) for data in inputs.values())
    assert delta(before, after, "batchpress_image_output_bytes_total") == sum(len(data) for data in outputs)
    # What storage holds: each distinct output once (docs/reuse.md).
    assert delta(before, after, "batchpress_stored_outputs") == 3
    assert delta(before, after, "batchpress_stored_output_bytes") == sum(len(data) for data in outputs)
    failed = {reason: delta(before, after, "batchpress_images_failed_total", reason=reason) for reason in REASON_LABELS}
    assert failed == {reason: 0 for reason in REASON_LABELS} | {"http_error": 1, "not_an_image": 1}

    # Every image was downloaded (the 404 too); four reached the compressor (the HTML page was rejected there).
    assert delta(before, after, "batchpress_image_download_seconds_count") == 5
    assert delta(before, after, "batchpress_image_process_seconds_count") == 4
    for name in ("batchpress_image_download_seconds", "batchpress_image_process_seconds"):
        buckets = sorted(
            (float(dict(labels)["le"]), v) for (sample, labels), v in after.items() if sample == f"{name}_bucket"
        )
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), name
        assert buckets[-1] == (float("inf"), value(after, f"{name}_count"))
        assert value(after, f"{name}_sum") > 0

    assert value(after, "batchpress_queue_depth", state="pending") == 0
    assert value(after, "batchpress_queue_depth", state="processing") == 0
    assert delta(before, after, "batchpress_webhook_delivery_attempts_total", outcome="retry") == 1
    assert delta(before, after, "batchpress_webhook_delivery_attempts_total", outcome="delivered") == 1
    assert delta(before, after, "batchpress_webhook_delivery_attempts_total", outcome="gave_up") == 0
    assert value(after, "batchpress_metrics_database_up") == 1

    schema = api.get("/openapi.json").json()
    assert "/metrics" not in schema["paths"]
    assert "/readyz" in schema["paths"]


def test_queue_depth_counts_images_no_worker_has_taken(api: TestClient, image_server: ImageServer) -> None:
    # Seven URLs: a URL repeated in a request is one image to take, its repeats wait for it (processing/repeats.py).
    urls = [image_server.add(f"/metrics/queued-{n}.jpg", make_image("jpeg", 1, (320, 240))) for n in range(1, 8)]
    rows = "\n".join(f"{n},Item {n},{url}" for n, url in enumerate(urls, 1))
    upload(api, f"S. No.,Product Name,Input Image Urls\n{rows}\n")
    samples = scrape(api)
    assert value(samples, "batchpress_queue_depth", state="pending") == 7
    assert value(samples, "batchpress_images_processed_total") == 0


def rejection(data: bytes, **limits: int) -> str:
    try:
        compress_image(data, quality=50, **limits)
    except ImageRejected as exc:
        return str(exc)
    raise AssertionError("the image was accepted")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("HTTP 404 Not Found", "http_error"),
        ("HTTP 503 Service Unavailable", "http_error"),
        ("more than 5 redirects", "http_error"),
        ("timed out (ReadTimeout)", "timeout"),
        ("took longer than the 60-second total deadline", "timeout"),
        ("timed out waiting for a free connection to example.com", "timeout"),
        ("connection failed: [Errno 111] Connection refused", "connection_failed"),
        ("blocked: 10.0.0.1 is a private address (set BATCHPRESS_ALLOW_PRIVATE_NETWORKS=true to allow)", "blocked"),
        ("image is 30000000 bytes, over the 26214400-byte limit", "too_large"),
        ("image is over the 26214400-byte limit", "too_large"),
        ("image is 70000x300, over the JPEG limit of 65500 pixels a side", "too_many_pixels"),
        ("gave up after 5 attempts: the worker died or timed out each time", "worker_lost"),
        ("could not compress the image (MemoryError)", "other"),
        ("the external processor ran out of credits", "other"),
    ],
)
def test_failure_reasons_are_a_fixed_set(error: str, reason: str) -> None:
    with create_engine("sqlite://").connect() as conn:
        assert conn.scalar(select(failure_reason(literal(error)))) == reason


def test_failure_reasons_of_real_rejections() -> None:
    jpeg = make_image("jpeg", 0, (320, 240))
    with create_engine("sqlite://").connect() as conn:
        label = lambda text: conn.scalar(select(failure_reason(literal(text))))  # noqa: E731
        assert label(rejection(b"<!doctype html><html></html>")) == "not_an_image"
        assert label(rejection(b'<svg xmlns="http://www.w3.org/2000/svg"/>')) == "not_an_image"
        assert label(rejection(jpeg[: len(jpeg) // 3])) == "corrupt"
        assert label(rejection(jpeg, max_pixels=1000)) == "too_many_pixels"
