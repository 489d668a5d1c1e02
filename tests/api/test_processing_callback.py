"""An external processor reports image results to the API; with no worker running, its reports are the only thing
that can finish a request."""

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
from sqlalchemy import select
from standardwebhooks import Webhook
from starlette.testclient import TestClient

from batchpress.context import Context
from batchpress.models import Image, ProcessingRequest, Product
from tests.support.inprocess import api_with_settings
from tests.support.servers import free_port, image_counts

PATH = "/api/webhooks/processing/"
HEADER = "S. No.,Product Name,Input Image Urls\n"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


SECRET = new_secret()


@pytest.fixture
def api(context: Context) -> Iterator[TestClient]:
    """The API with a callback secret and no worker; every test uploads its own request on its own database."""
    with api_with_settings(context, processing_callback_secret=SECRET) as client:
        yield client


def upload(api: TestClient, products: int = 1, images: int = 2) -> str:
    """A request whose images point at a loopback port nobody listens on; nothing fetches them anyway."""
    port = free_port()
    rows = "".join(
        f'{s},Item {s},"{",".join(f"http://127.0.0.1:{port}/{s}/{p}.jpg" for p in range(1, images + 1))}"\n'
        for s in range(1, products + 1)
    )
    response = api.post("/api/upload/", files={"file": ("products.csv", (HEADER + rows).encode(), "text/csv")})
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def status_of(api: TestClient, request_id: str) -> dict[str, Any]:
    response = api.get(f"/api/status/{request_id}/")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def image_ids(context: Context, request_id: str) -> list[int]:
    """The request's image ids in CSV order, read from the database (the API does not show them)."""
    with context.db.session(read_only=True) as session:
        return list(
            session.scalars(
                select(Image.id)
                .join(Product, Product.id == Image.product_id)
                .where(Image.request_id == uuid.UUID(request_id))
                .order_by(Product.serial_number, Image.position)
            )
        )


def stored(context: Context, request_id: str) -> tuple[str, int, list[tuple[str, str | None, str | None]]]:
    """What the database holds for a request: its status, its revision and each image's state, output and error."""
    rid = uuid.UUID(request_id)
    with context.db.session(read_only=True) as session:
        request = session.get(ProcessingRequest, rid)
        assert request is not None
        images = session.execute(
            select(Image.state, Image.output_url, Image.error)
            .join(Product, Product.id == Image.product_id)
            .where(Image.request_id == rid)
            .order_by(Product.serial_number, Image.position)
        ).all()
        return request.status, request.revision, [(state, url, error) for state, url, error in images]


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
    api: TestClient, payload: dict[str, Any] | bytes, secret: str = SECRET, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return api.post(PATH, content=body, headers=signed(body, secret) if headers is None else headers)


def output(request_id: str, n: int) -> str:
    return f"https://cdn.example.com/{request_id}/{n}.jpg"


def test_reported_outputs_complete_the_request(context: Context, api: TestClient) -> None:
    request_id = upload(api, products=2, images=1)
    first, second = image_ids(context, request_id)

    response = report(api, {"request_id": request_id, "image_id": first, "output_url": output(request_id, 1)})
    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": True, "image_id": first, "request_status": "processing"}
    status = status_of(api, request_id)
    assert status["status"] == "processing"
    assert [p["output_image_urls"] for p in status["products"]] == [[output(request_id, 1)], [None]]

    payload = {"request_id": request_id, "image_id": second, "output_url": output(request_id, 2)}
    response = report(api, {**payload, "input_bytes": 2000, "output_bytes": 900})
    assert response.json() == {"recorded": True, "image_id": second, "request_status": "completed"}
    status = status_of(api, request_id)
    assert status["status"] == "completed"
    assert status["finished_at"] is not None
    assert image_counts(status) == {"total_images": 2, "processed": 2, "failed": 0, "pending": 0}
    assert [p["output_image_urls"] for p in status["products"]] == [[output(request_id, 1)], [output(request_id, 2)]]
    with context.db.session(read_only=True) as session:
        sizes = session.execute(select(Image.input_bytes, Image.output_bytes).where(Image.id == second)).one()
    assert tuple(sizes) == (2000, 900)


def test_images_addressed_by_serial_and_position_and_a_reported_error(context: Context, api: TestClient) -> None:
    request_id = upload(api, products=2, images=2)
    ids = image_ids(context, request_id)

    ok = report(api, {"request_id": request_id, "serial_number": 2, "position": 1, "output_url": output(request_id, 1)})
    assert ok.status_code == 200, ok.text
    assert ok.json()["image_id"] == ids[2]
    for serial, position in [(1, 1), (1, 2)]:
        payload = {"request_id": request_id, "serial_number": serial, "position": position}
        assert report(api, {**payload, "output_url": output(request_id, 10 * serial + position)}).json()["recorded"]
    failed = report(api, {"request_id": request_id, "serial_number": 2, "position": 2, "error": "origin said 404"})
    assert failed.json() == {"recorded": True, "image_id": ids[3], "request_status": "completed_with_errors"}

    status = status_of(api, request_id)
    assert status["status"] == "completed_with_errors"
    assert status["products"][1]["output_image_urls"] == [output(request_id, 1), None]
    [error] = status["products"][1]["errors"]
    assert "image 2" in error
    assert "origin said 404" in error


def test_repeated_delivery_is_harmless(context: Context, api: TestClient) -> None:
    request_id = upload(api)
    image_id = image_ids(context, request_id)[0]
    body = json.dumps({"request_id": request_id, "image_id": image_id, "output_url": output(request_id, 1)}).encode()
    headers = signed(body)
    assert report(api, body, headers=headers).json()["recorded"] is True
    before, held = status_of(api, request_id), stored(context, request_id)

    again = report(api, body, headers=headers)
    assert again.status_code == 200
    assert again.json() == {"recorded": False, "image_id": image_id, "request_status": "processing"}
    late_error = report(api, {"request_id": request_id, "image_id": image_id, "error": "changed its mind"})
    assert late_error.json()["recorded"] is False
    assert status_of(api, request_id) == before
    assert stored(context, request_id) == held


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
def test_unverified_reports_are_refused(
    context: Context, api: TestClient, make_headers: Callable[[bytes], dict[str, str]]
) -> None:
    request_id = upload(api)
    before, held = status_of(api, request_id), stored(context, request_id)
    body = json.dumps(
        {"request_id": request_id, "image_id": image_ids(context, request_id)[0], "output_url": output(request_id, 1)}
    ).encode()
    response = report(api, body, headers=make_headers(body))
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_signature"
    assert status_of(api, request_id) == before
    assert stored(context, request_id) == held


def test_unknown_request_or_image_is_404(context: Context, api: TestClient) -> None:
    request_id, other_id = upload(api), upload(api)
    before, held = status_of(api, request_id), stored(context, request_id)
    cases = [
        {"request_id": str(uuid.uuid4()), "image_id": image_ids(context, request_id)[0]},
        {"request_id": request_id, "image_id": image_ids(context, other_id)[0]},
        {"request_id": request_id, "serial_number": 1, "position": 3},
        {"request_id": request_id, "serial_number": 2, "position": 1},
    ]
    for case in cases:
        response = report(api, {**case, "output_url": output(request_id, 1)})
        assert response.status_code == 404, (case, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert status_of(api, request_id) == before
    assert stored(context, request_id) == held
    assert status_of(api, other_id)["progress"]["pending"] == 2


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
def test_malformed_reports_are_422(
    context: Context, api: TestClient, change: dict[str, Any] | None, words: str
) -> None:
    request_id = upload(api)
    before, held = status_of(api, request_id), stored(context, request_id)
    payload = {"request_id": request_id, "image_id": image_ids(context, request_id)[0]}
    payload["output_url"] = output(request_id, 1)
    response = report(api, b"{not json" if change is None else json.dumps({**payload, **change}).encode())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert words.lower() in error["message"].lower()
    assert status_of(api, request_id) == before
    assert stored(context, request_id) == held


def test_no_secret_means_callbacks_are_disabled(context: Context) -> None:
    with api_with_settings(context, processing_callback_secret="") as disabled:
        request_id = upload(disabled)
        image_id = image_ids(context, request_id)[0]
        payload = {"request_id": request_id, "image_id": image_id, "output_url": output(request_id, 1)}
        response = report(disabled, payload)
        assert response.status_code == 401
        assert "BATCHPRESS_PROCESSING_CALLBACK_SECRET" in response.json()["error"]["message"]
        assert status_of(disabled, request_id)["progress"]["pending"] == 2


def test_any_secret_of_a_rotation_is_accepted(context: Context) -> None:
    old, new = new_secret(), new_secret()
    with api_with_settings(context, processing_callback_secret=f"{old} {new}") as rotating:
        request_id = upload(rotating)
        first, second = image_ids(context, request_id)
        payload = {"request_id": request_id, "image_id": first, "output_url": output(request_id, 1)}
        with_new = report(rotating, payload, new)
        assert with_new.status_code == 200, with_new.text
        assert report(rotating, {"request_id": request_id, "image_id": second, "error": "x"}, SECRET).status_code == 401
        with_old = report(rotating, {"request_id": request_id, "image_id": second, "error": "gone"}, old)
        assert with_old.json() == {"recorded": True, "image_id": second, "request_status": "completed_with_errors"}


def test_status_etag_changes_with_every_reported_result(context: Context, api: TestClient) -> None:
    """Status answers are cached per revision: a poller sending its ETag back gets 304 until something changes,
    and the first answer after a change already shows it."""
    request_id = upload(api, products=1, images=2)
    first, second = image_ids(context, request_id)
    url = f"/api/status/{request_id}/"

    before = api.get(url)
    etag = before.headers["etag"]
    assert api.get(url).headers["etag"] == etag
    unchanged = api.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert api.get(url, params={"limit": 1}).headers["etag"] != etag  # another page, another tag

    assert report(api, {"request_id": request_id, "image_id": first, "output_url": output(request_id, 1)}).json()[
        "recorded"
    ]
    changed = api.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["products"][0]["output_image_urls"] == [output(request_id, 1), None]

    assert report(api, {"request_id": request_id, "image_id": second, "error": "origin said 404"}).json()["recorded"]
    final = api.get(url, headers={"If-None-Match": changed.headers["etag"]})
    assert final.status_code == 200
    assert final.json()["status"] == "completed_with_errors"
    assert image_counts(final.json()) == {"total_images": 2, "processed": 1, "failed": 1, "pending": 0}


def test_status_is_gzipped_for_clients_that_accept_it(api: TestClient) -> None:
    """A page of many products is mostly repeated URLs: gzip shrinks it many times over, and each encoding has an
    ETag of its own, so a 304 always refers to the bytes the client holds."""
    request_id = upload(api, products=200, images=3)
    url = f"/api/status/{request_id}/"

    plain = api.get(url, headers={"Accept-Encoding": "identity"})
    packed = api.get(url, headers={"Accept-Encoding": "br, gzip;q=0.8"})
    refused = api.get(url, headers={"Accept-Encoding": "gzip;q=0, deflate"})

    assert "content-encoding" not in plain.headers
    assert "content-encoding" not in refused.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) * 5 < int(plain.headers["content-length"])
    assert packed.json() == plain.json() == refused.json()  # httpx inflates the gzipped body
    assert len(plain.json()["products"]) == 200
    assert all(r.headers["vary"] == "Accept-Encoding" for r in (plain, packed, refused))
    assert packed.headers["etag"] != plain.headers["etag"] == refused.headers["etag"]

    for response, encoding in ((plain, "identity"), (packed, "gzip")):
        again = api.get(url, headers={"Accept-Encoding": encoding, "If-None-Match": response.headers["etag"]})
        assert again.status_code == 304
    cross = api.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": plain.headers["etag"]})
    assert cross.status_code == 200
    assert cross.headers["content-encoding"] == "gzip"
