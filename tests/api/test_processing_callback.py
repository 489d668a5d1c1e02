"""An external processor reports image results to the real service; with no worker running, its reports are the
only thing that can finish a request."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from batchpress.models import Image, Product
from tests.conftest import StartService, fresh_database
from tests.support.servers import Service, free_port, image_counts

PATH = "/api/webhooks/processing/"
HEADER = "S. No.,Product Name,Input Image Urls\n"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


SECRET = new_secret()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One API without a worker for the module; every test uploads its own request, so they stay independent."""
    with fresh_database() as url:
        env = {"BATCHPRESS_PROCESSING_CALLBACK_SECRET": SECRET}
        if url:
            env["BATCHPRESS_DATABASE_URL"] = url
        started = Service(tmp_path_factory.mktemp("callbacks") / "data", env, ("--no-worker",)).start()
        yield started
        started.stop()


def upload(service: Service, products: int = 1, images: int = 2) -> str:
    """A request whose images point at a loopback port nobody listens on; nothing fetches them anyway."""
    port = free_port()
    rows = "".join(
        f'{s},Item {s},"{",".join(f"http://127.0.0.1:{port}/{s}/{p}.jpg" for p in range(1, images + 1))}"\n'
        for s in range(1, products + 1)
    )
    response = service.upload(HEADER + rows)
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def image_ids(service: Service, request_id: str) -> list[int]:
    """The request's image ids in CSV order, read from the service's database (the API does not show them)."""
    url = service.env.get("BATCHPRESS_DATABASE_URL", "").replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(url or f"sqlite:///{service.data_dir / 'batchpress.db'}")
    try:
        with Session(engine) as session:
            return list(
                session.scalars(
                    select(Image.id)
                    .join(Product, Product.id == Image.product_id)
                    .where(Image.request_id == uuid.UUID(request_id))
                    .order_by(Product.serial_number, Image.position)
                )
            )
    finally:
        engine.dispose()


def signed(body: bytes, secret: str = SECRET, age: dt.timedelta = dt.timedelta(0)) -> dict[str, str]:
    msg_id = f"msg_{uuid.uuid4().hex}"
    timestamp = dt.datetime.now(dt.UTC) - age
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, timestamp, body.decode()),
    }


def report(
    service: Service, payload: dict[str, Any] | bytes, secret: str = SECRET, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return httpx.post(
        service.base_url + PATH, content=body, headers=signed(body, secret) if headers is None else headers, timeout=30
    )


def output(request_id: str, n: int) -> str:
    return f"https://cdn.example.com/{request_id}/{n}.jpg"


def test_reported_outputs_complete_the_request(service: Service) -> None:
    request_id = upload(service, products=2, images=1)
    first, second = image_ids(service, request_id)

    response = report(service, {"request_id": request_id, "image_id": first, "output_url": output(request_id, 1)})
    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": True, "image_id": first, "request_status": "processing"}
    status = service.status(request_id)
    assert status["status"] == "processing"
    assert [p["output_image_urls"] for p in status["products"]] == [[output(request_id, 1)], [None]]

    payload = {"request_id": request_id, "image_id": second, "output_url": output(request_id, 2)}
    response = report(service, {**payload, "input_bytes": 2000, "output_bytes": 900})
    assert response.json() == {"recorded": True, "image_id": second, "request_status": "completed"}
    status = service.status(request_id)
    assert status["status"] == "completed"
    assert status["finished_at"] is not None
    assert image_counts(status) == {"total_images": 2, "processed": 2, "failed": 0, "pending": 0}
    assert [p["output_image_urls"] for p in status["products"]] == [[output(request_id, 1)], [output(request_id, 2)]]


def test_images_addressed_by_serial_and_position_and_a_reported_error(service: Service) -> None:
    request_id = upload(service, products=2, images=2)
    ids = image_ids(service, request_id)

    ok = report(
        service, {"request_id": request_id, "serial_number": 2, "position": 1, "output_url": output(request_id, 1)}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["image_id"] == ids[2]
    for serial, position in [(1, 1), (1, 2)]:
        payload = {"request_id": request_id, "serial_number": serial, "position": position}
        assert report(service, {**payload, "output_url": output(request_id, 10 * serial + position)}).json()["recorded"]
    failed = report(service, {"request_id": request_id, "serial_number": 2, "position": 2, "error": "origin said 404"})
    assert failed.json() == {"recorded": True, "image_id": ids[3], "request_status": "completed_with_errors"}

    status = service.status(request_id)
    assert status["status"] == "completed_with_errors"
    assert status["products"][1]["output_image_urls"] == [output(request_id, 1), None]
    [error] = status["products"][1]["errors"]
    assert "image 2" in error
    assert "origin said 404" in error


def test_repeated_delivery_is_harmless(service: Service) -> None:
    request_id = upload(service)
    image_id = image_ids(service, request_id)[0]
    body = json.dumps({"request_id": request_id, "image_id": image_id, "output_url": output(request_id, 1)}).encode()
    headers = signed(body)
    assert report(service, body, headers=headers).json()["recorded"] is True
    before = service.status(request_id)

    again = report(service, body, headers=headers)
    assert again.status_code == 200
    assert again.json() == {"recorded": False, "image_id": image_id, "request_status": "processing"}
    late_error = report(service, {"request_id": request_id, "image_id": image_id, "error": "changed its mind"})
    assert late_error.json()["recorded"] is False
    assert service.status(request_id) == before


def tampered(body: bytes) -> dict[str, str]:
    return signed(body.replace(b".jpg", b".png"))


def unsigned(body: bytes) -> dict[str, str]:
    return {"content-type": "application/json"}


def no_timestamp(body: bytes) -> dict[str, str]:
    headers = signed(body)
    del headers["webhook-timestamp"]
    return headers


def other_secret(body: bytes) -> dict[str, str]:
    return signed(body, new_secret())


def stale(body: bytes) -> dict[str, str]:
    return signed(body, age=dt.timedelta(minutes=6))


def garbled(body: bytes) -> dict[str, str]:
    return {**signed(body), "webhook-signature": "v1,not*base64"}


def no_comma(body: bytes) -> dict[str, str]:
    return {**signed(body), "webhook-signature": "v1"}


@pytest.mark.parametrize("make_headers", [tampered, unsigned, no_timestamp, other_secret, stale, garbled, no_comma])
def test_unverified_reports_are_refused(service: Service, make_headers: Callable[[bytes], dict[str, str]]) -> None:
    request_id = upload(service)
    before = service.status(request_id)
    body = json.dumps(
        {"request_id": request_id, "image_id": image_ids(service, request_id)[0], "output_url": output(request_id, 1)}
    ).encode()
    response = report(service, body, headers=make_headers(body))
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_signature"
    assert service.status(request_id) == before


def test_unknown_request_or_image_is_404(service: Service) -> None:
    request_id, other_id = upload(service), upload(service)
    before = service.status(request_id)
    cases = [
        {"request_id": str(uuid.uuid4()), "image_id": image_ids(service, request_id)[0]},
        {"request_id": request_id, "image_id": image_ids(service, other_id)[0]},
        {"request_id": request_id, "serial_number": 1, "position": 3},
        {"request_id": request_id, "serial_number": 2, "position": 1},
    ]
    for case in cases:
        response = report(service, {**case, "output_url": output(request_id, 1)})
        assert response.status_code == 404, (case, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert service.status(request_id) == before
    assert service.status(other_id)["progress"]["pending"] == 2


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (None, "JSON"),
        ({"error": "broken"}, "exactly one of output_url or error"),
        ({"output_url": None}, "exactly one of output_url or error"),
        ({"image_id": None, "serial_number": 1, "position": 0}, "greater than or equal to 1"),
        ({"image_id": None, "serial_number": 1}, "serial_number and position"),
        ({"serial_number": 1, "position": 1}, "serial_number and position"),
        ({"output_url": "ftp://cdn.example.com/1.jpg"}, "http"),
        ({"request_id": "not-a-uuid"}, "UUID"),
    ],
)
def test_malformed_reports_are_422(service: Service, change: dict[str, Any] | None, words: str) -> None:
    request_id = upload(service)
    before = service.status(request_id)
    payload = {"request_id": request_id, "image_id": image_ids(service, request_id)[0]}
    payload["output_url"] = output(request_id, 1)
    response = report(service, b"{not json" if change is None else json.dumps({**payload, **change}).encode())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert words.lower() in error["message"].lower()
    assert service.status(request_id) == before


def test_no_secret_means_callbacks_are_disabled(start_service: StartService) -> None:
    disabled = start_service("--no-worker", BATCHPRESS_PROCESSING_CALLBACK_SECRET="")
    request_id = upload(disabled)
    image_id = image_ids(disabled, request_id)[0]
    response = report(disabled, {"request_id": request_id, "image_id": image_id, "output_url": output(request_id, 1)})
    assert response.status_code == 401
    assert "BATCHPRESS_PROCESSING_CALLBACK_SECRET" in response.json()["error"]["message"]
    assert disabled.status(request_id)["progress"]["pending"] == 2


def test_any_secret_of_a_rotation_is_accepted(start_service: StartService) -> None:
    old, new = new_secret(), new_secret()
    rotating = start_service("--no-worker", BATCHPRESS_PROCESSING_CALLBACK_SECRET=f"{old} {new}")
    request_id = upload(rotating)
    first, second = image_ids(rotating, request_id)
    with_new = report(rotating, {"request_id": request_id, "image_id": first, "output_url": output(request_id, 1)}, new)
    assert with_new.status_code == 200, with_new.text
    assert report(rotating, {"request_id": request_id, "image_id": second, "error": "x"}, SECRET).status_code == 401
    with_old = report(rotating, {"request_id": request_id, "image_id": second, "error": "gone"}, old)
    assert with_old.json() == {"recorded": True, "image_id": second, "request_status": "completed_with_errors"}


def test_status_etag_changes_with_every_reported_result(service: Service) -> None:
    """Status answers are cached per revision: a poller sending its ETag back gets 304 until something changes,
    and the first answer after a change already shows it."""
    request_id = upload(service, products=1, images=2)
    first, second = image_ids(service, request_id)
    url = f"{service.base_url}/api/status/{request_id}/"

    before = httpx.get(url, timeout=30)
    etag = before.headers["etag"]
    assert httpx.get(url, timeout=30).headers["etag"] == etag
    unchanged = httpx.get(url, headers={"If-None-Match": etag}, timeout=30)
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert httpx.get(url, params={"limit": 1}, timeout=30).headers["etag"] != etag  # another page, another tag

    assert report(service, {"request_id": request_id, "image_id": first, "output_url": output(request_id, 1)}).json()[
        "recorded"
    ]
    changed = httpx.get(url, headers={"If-None-Match": etag}, timeout=30)
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["products"][0]["output_image_urls"] == [output(request_id, 1), None]

    assert report(service, {"request_id": request_id, "image_id": second, "error": "origin said 404"}).json()[
        "recorded"
    ]
    final = httpx.get(url, headers={"If-None-Match": changed.headers["etag"]}, timeout=30)
    assert final.status_code == 200
    assert final.json()["status"] == "completed_with_errors"
    assert image_counts(final.json()) == {"total_images": 2, "processed": 1, "failed": 1, "pending": 0}


def test_status_is_gzipped_for_clients_that_accept_it(service: Service) -> None:
    """A page of many products is mostly repeated URLs: gzip shrinks it many times over, and each encoding has an
    ETag of its own, so a 304 always refers to the bytes the client holds."""
    request_id = upload(service, products=200, images=3)
    url = f"{service.base_url}/api/status/{request_id}/"

    plain = httpx.get(url, headers={"Accept-Encoding": "identity"}, timeout=30)
    packed = httpx.get(url, headers={"Accept-Encoding": "br, gzip;q=0.8"}, timeout=30)
    refused = httpx.get(url, headers={"Accept-Encoding": "gzip;q=0, deflate"}, timeout=30)

    assert "content-encoding" not in plain.headers
    assert "content-encoding" not in refused.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) * 5 < int(plain.headers["content-length"])
    assert packed.json() == plain.json() == refused.json()  # httpx inflates the gzipped body
    assert len(plain.json()["products"]) == 200
    assert all(r.headers["vary"] == "Accept-Encoding" for r in (plain, packed, refused))
    assert packed.headers["etag"] != plain.headers["etag"] == refused.headers["etag"]

    for response, encoding in ((plain, "identity"), (packed, "gzip")):
        again = httpx.get(
            url, headers={"Accept-Encoding": encoding, "If-None-Match": response.headers["etag"]}, timeout=30
        )
        assert again.status_code == 304
    cross = httpx.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": plain.headers["etag"]}, timeout=30)
    assert cross.status_code == 200
    assert cross.headers["content-encoding"] == "gzip"
