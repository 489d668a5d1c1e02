"""API keys against the real service: who gets in, what each key can see, what stays open, and the warning an
open API on the network gets at start."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from batchpress.cli.serve import is_loopback
from batchpress.models import ProcessingRequest
from tests.api.test_processing_callback import new_secret, signed
from tests.conftest import StartService, fresh_database
from tests.support.servers import Service, free_port

KEY_A = "key-a-" + uuid.uuid4().hex
KEY_B = "key-b-" + uuid.uuid4().hex
CALLBACK_SECRET = new_secret()
HEADER = "S. No.,Product Name,Input Image Urls\n"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One API with two keys and no worker; every test uploads its own requests."""
    with fresh_database() as url:
        env = {
            "BATCHPRESS_API_KEYS": f" {KEY_A} , {KEY_B},",
            "BATCHPRESS_PROCESSING_CALLBACK_SECRET": CALLBACK_SECRET,
        }
        if url:
            env["BATCHPRESS_DATABASE_URL"] = url
        service = Service(tmp_path_factory.mktemp("keys") / "data", env, ("--no-worker",)).start()
        yield service
        service.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload(service: Service, headers: dict[str, str] | None = None) -> httpx.Response:
    # A loopback port nobody listens on: with no worker, nothing fetches it anyway.
    csv = f"{HEADER}1,Shoe,http://127.0.0.1:{free_port()}/a.jpg\n"
    return httpx.post(
        f"{service.base_url}/api/upload/",
        files={"file": ("p.csv", csv.encode(), "text/csv")},
        headers=headers or {},
        timeout=30,
    )


def uploaded(service: Service, key: str) -> str:
    response = upload(service, bearer(key))
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def status(service: Service, request_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{service.base_url}/api/status/{request_id}/", headers=headers or {}, timeout=30)


def redeliver(service: Service, request_id: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{service.base_url}/api/requests/{request_id}/webhook/redeliver/", headers=headers, timeout=30)


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert error["details"] is None
    assert "API key" in error["message"]


def stored_key_id(service: Service, request_id: str) -> str | None:
    url = service.env.get("BATCHPRESS_DATABASE_URL", "").replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(url or f"sqlite:///{service.data_dir / 'batchpress.db'}")
    try:
        with Session(engine) as session:
            return session.scalar(
                select(ProcessingRequest.api_key_id).where(ProcessingRequest.id == uuid.UUID(request_id))
            )
    finally:
        engine.dispose()


def test_upload_needs_a_valid_key(keyed: Service) -> None:
    assert_unauthorized(upload(keyed))
    assert_unauthorized(upload(keyed, bearer("not-" + KEY_A)))
    assert_unauthorized(upload(keyed, {"X-API-Key": KEY_A + "x"}))
    assert_unauthorized(upload(keyed, {"Authorization": f"Basic {KEY_A}"}))
    assert upload(keyed, bearer(KEY_A)).status_code == 202
    assert upload(keyed, {"Authorization": f"bearer {KEY_B}"}).status_code == 202
    assert upload(keyed, {"X-API-Key": KEY_B}).status_code == 202


def test_status_and_redeliver_need_a_key(keyed: Service) -> None:
    request_id = uploaded(keyed, KEY_A)
    assert_unauthorized(status(keyed, request_id))
    assert_unauthorized(status(keyed, request_id, bearer("wrong")))
    assert_unauthorized(status(keyed, request_id, {"Authorization": f"Basic {KEY_A}"}))
    assert_unauthorized(status(keyed, request_id, {"Authorization": "Bearer"}))
    assert status(keyed, request_id, {"Authorization": f"bearer {KEY_A}"}).status_code == 200
    assert status(keyed, request_id, {"Authorization": "Bearer wrong", "X-API-Key": KEY_A}).status_code == 200
    assert_unauthorized(redeliver(keyed, request_id, {}))


def test_a_request_is_visible_only_to_its_key(keyed: Service) -> None:
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


def test_the_request_stores_the_key_id_never_the_key(keyed: Service) -> None:
    request_id = uploaded(keyed, KEY_B)
    assert stored_key_id(keyed, request_id) == hashlib.sha256(KEY_B.encode()).hexdigest()[:16]
    database = keyed.data_dir / "batchpress.db"
    if database.exists():
        for path in keyed.data_dir.glob("batchpress.db*"):
            assert KEY_B.encode() not in path.read_bytes()


def test_health_images_docs_and_processing_callback_need_no_key(keyed: Service) -> None:
    assert httpx.get(f"{keyed.base_url}/healthz", timeout=10).status_code == 200

    image = keyed.data_dir / "images" / "served.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    served = httpx.get(f"{keyed.base_url}/images/served.jpg", timeout=10)
    assert served.status_code == 200
    assert served.content == image.read_bytes()

    schema = httpx.get(f"{keyed.base_url}/openapi.json", timeout=10)
    assert schema.status_code == 200
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schema.json()["components"]["securitySchemes"])
    assert httpx.get(f"{keyed.base_url}/docs", timeout=10).status_code == 200

    request_id = uploaded(keyed, KEY_A)
    body = json.dumps({"request_id": request_id, "serial_number": 1, "position": 1, "error": "origin said 404"})
    callback = httpx.post(
        f"{keyed.base_url}/api/webhooks/processing/",
        content=body,
        headers=signed(body.encode(), CALLBACK_SECRET),
        timeout=30,
    )
    assert callback.status_code == 200, callback.text
    assert callback.json()["request_status"] == "failed"
    assert status(keyed, request_id, bearer(KEY_A)).json()["status"] == "failed"


def test_without_keys_everything_is_open(api_only: Service) -> None:
    response = upload(api_only)
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    assert status(api_only, request_id).status_code == 200
    # A key sent to a server that has none is ignored, not refused.
    assert status(api_only, request_id, bearer("whatever")).status_code == 200
    assert stored_key_id(api_only, request_id) is None
    assert redeliver(api_only, request_id, {}).status_code == 409


WARNING = "the API is open to the network"


def test_an_open_api_on_the_network_warns_at_start(start_service: StartService) -> None:
    service = start_service("--no-worker", BATCHPRESS_HOST="0.0.0.0")
    log = service.log()
    assert WARNING in log
    assert "BATCHPRESS_API_KEYS" in log
    assert "WARNING" in log
    assert httpx.get(f"{service.base_url}/healthz", timeout=10).status_code == 200


def test_no_warning_with_keys_or_on_loopback(start_service: StartService, api_only: Service) -> None:
    service = start_service("--no-worker", BATCHPRESS_HOST="0.0.0.0", BATCHPRESS_API_KEYS=KEY_A)
    assert WARNING not in service.log()
    assert WARNING not in api_only.log()


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
