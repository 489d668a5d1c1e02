"""API keys: who gets in, what each key can see, what stays open, and the warning an open API on the network gets
at start (the one part that needs ``batchpress serve`` itself)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from batchpress.cli.serve import is_loopback
from batchpress.context import Context
from batchpress.models import ProcessingRequest
from tests.api.test_processing_callback import new_secret, signed
from tests.conftest import StartService
from tests.support.inprocess import api_with_settings
from tests.support.servers import free_port

KEY_A = "key-a-" + uuid.uuid4().hex
KEY_B = "key-b-" + uuid.uuid4().hex
CALLBACK_SECRET = new_secret()
HEADER = "S. No.,Product Name,Input Image Urls\n"


@pytest.fixture
def keyed(context: Context) -> Iterator[TestClient]:
    """The API with two keys (as an operator might list them, with spaces and a trailing comma) and no worker."""
    with api_with_settings(
        context, api_keys=f" {KEY_A} , {KEY_B},", processing_callback_secret=CALLBACK_SECRET
    ) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload(api: TestClient, headers: dict[str, str] | None = None) -> httpx.Response:
    # A loopback port nobody listens on: with no worker, nothing fetches it anyway.
    csv = f"{HEADER}1,Shoe,http://127.0.0.1:{free_port()}/a.jpg\n"
    return api.post("/api/upload/", files={"file": ("p.csv", csv.encode(), "text/csv")}, headers=headers or {})


def uploaded(api: TestClient, key: str) -> str:
    response = upload(api, bearer(key))
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def status(api: TestClient, request_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return api.get(f"/api/status/{request_id}/", headers=headers or {})


def redeliver(api: TestClient, request_id: str, headers: dict[str, str]) -> httpx.Response:
    return api.post(f"/api/requests/{request_id}/webhook/redeliver/", headers=headers)


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert error["details"] is None
    assert "API key" in error["message"]


def stored_requests(context: Context) -> dict[str, str | None]:
    """Every stored request's id and the key id it was stored with."""
    with context.db.session(read_only=True) as session:
        rows = session.execute(select(ProcessingRequest.id, ProcessingRequest.api_key_id)).all()
    return {str(request_id): key_id for request_id, key_id in rows}


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def test_upload_needs_a_valid_key(context: Context, keyed: TestClient) -> None:
    assert_unauthorized(upload(keyed))
    assert_unauthorized(upload(keyed, bearer("not-" + KEY_A)))
    assert_unauthorized(upload(keyed, {"X-API-Key": KEY_A + "x"}))
    assert_unauthorized(upload(keyed, {"Authorization": f"Basic {KEY_A}"}))
    assert stored_requests(context) == {}
    accepted = [
        upload(keyed, bearer(KEY_A)),
        upload(keyed, {"Authorization": f"bearer {KEY_B}"}),
        upload(keyed, {"X-API-Key": KEY_B}),
    ]
    assert [response.status_code for response in accepted] == [202, 202, 202]
    assert stored_requests(context) == {
        response.json()["request_id"]: key_id(key) for response, key in zip(accepted, [KEY_A, KEY_B, KEY_B])
    }


def test_status_and_redeliver_need_a_key(keyed: TestClient) -> None:
    request_id = uploaded(keyed, KEY_A)
    assert_unauthorized(status(keyed, request_id))
    assert_unauthorized(status(keyed, request_id, bearer("wrong")))
    assert_unauthorized(status(keyed, request_id, {"Authorization": f"Basic {KEY_A}"}))
    assert_unauthorized(status(keyed, request_id, {"Authorization": "Bearer"}))
    assert status(keyed, request_id, {"Authorization": f"bearer {KEY_A}"}).status_code == 200
    assert status(keyed, request_id, {"Authorization": "Bearer wrong", "X-API-Key": KEY_A}).status_code == 200
    assert_unauthorized(redeliver(keyed, request_id, {}))


def test_a_request_is_visible_only_to_its_key(keyed: TestClient) -> None:
    request_id = uploaded(keyed, KEY_A)

    mine = status(keyed, request_id, {"X-API-Key": KEY_A})
    assert mine.status_code == 200, mine.text
    assert mine.json()["request_id"] == request_id

    theirs = status(keyed, request_id, bearer(KEY_B))
    unknown_id = str(uuid.uuid4())
    unknown = status(keyed, unknown_id, bearer(KEY_B))
    assert theirs.status_code == unknown.status_code == 404
    hidden, missing = theirs.json()["error"], unknown.json()["error"]
    assert hidden["message"] == missing["message"].replace(unknown_id, request_id)
    assert (hidden["code"], hidden["details"]) == (missing["code"], missing["details"]) == ("not_found", None)

    # Redeliver: the owner learns there is nothing to send yet; another key learns nothing at all.
    assert redeliver(keyed, request_id, bearer(KEY_A)).status_code == 409
    other = redeliver(keyed, request_id, bearer(KEY_B))
    assert other.status_code == 404
    assert other.json()["error"]["message"] == f"no request with id {request_id}"


def test_the_request_stores_the_key_id_never_the_key(context: Context, keyed: TestClient) -> None:
    request_id = uploaded(keyed, KEY_B)
    assert stored_requests(context) == {request_id: key_id(KEY_B)}
    database = context.settings.data_dir / "batchpress.db"
    if database.exists():
        for path in context.settings.data_dir.glob("batchpress.db*"):
            assert KEY_B.encode() not in path.read_bytes()


def test_health_images_docs_and_processing_callback_need_no_key(context: Context, keyed: TestClient) -> None:
    assert keyed.get("/healthz").status_code == 200

    image = context.settings.images_dir / "served.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    served = keyed.get("/images/served.jpg")
    assert served.status_code == 200
    assert served.content == image.read_bytes()

    schema = keyed.get("/openapi.json")
    assert schema.status_code == 200
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schema.json()["components"]["securitySchemes"])
    assert keyed.get("/docs").status_code == 200

    request_id = uploaded(keyed, KEY_A)
    body = json.dumps({"request_id": request_id, "serial_number": 1, "position": 1, "error": "origin said 404"})
    callback = keyed.post("/api/webhooks/processing/", content=body, headers=signed(body.encode(), CALLBACK_SECRET))
    assert callback.status_code == 200, callback.text
    assert callback.json()["request_status"] == "failed"
    assert status(keyed, request_id, bearer(KEY_A)).json()["status"] == "failed"


def test_without_keys_everything_is_open(context: Context, api: TestClient) -> None:
    response = upload(api)
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    assert status(api, request_id).status_code == 200
    # A key sent to a server that has none is ignored, not refused.
    assert status(api, request_id, bearer("whatever")).status_code == 200
    assert stored_requests(context) == {request_id: None}
    assert redeliver(api, request_id, {}).status_code == 409


WARNING = "the API is open to the network"


def test_an_open_api_on_the_network_warns_at_start(start_service: StartService) -> None:
    service = start_service("--no-worker", BATCHPRESS_HOST="0.0.0.0")
    log = service.log()
    assert WARNING in log
    assert "BATCHPRESS_API_KEYS" in log
    assert "WARNING" in log
    assert httpx.get(f"{service.base_url}/healthz", timeout=10).status_code == 200


def test_no_warning_with_keys_or_on_loopback(start_service: StartService, tmp_path: Path) -> None:
    keyed = start_service("--no-worker", BATCHPRESS_HOST="0.0.0.0", BATCHPRESS_API_KEYS=KEY_A)
    loopback = start_service("--no-worker", data_dir=tmp_path / "loopback", BATCHPRESS_HOST="127.0.0.1")
    assert WARNING not in keyed.log()
    assert WARNING not in loopback.log()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.10", False),
        ("batchpress.example.com", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
