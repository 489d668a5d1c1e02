"""One error shape for every 4xx and 5xx, each with the request id that is also in the ``X-Request-ID`` header and
in the log line the error produced."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from batchpress.context import Context
from batchpress.logs import RequestIdFilter
from tests.api.test_upload_validation import stored_rows
from tests.conftest import StartService
from tests.support.inprocess import api_client, api_with_settings
from tests.support.servers import Service

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def error_of(response: httpx.Response, status_code: int, code: str) -> dict[str, Any]:
    assert response.status_code == status_code, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return error


def test_unknown_route_is_a_404(api: TestClient) -> None:
    error_of(api.get("/api/nothing-here/"), 404, "not_found")


def test_wrong_method_is_a_405(api: TestClient) -> None:
    response = api.get("/api/upload/")
    error_of(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("params", "location", "message"),
    [
        ({"limit": "lots"}, "query.limit", "valid integer"),
        ({"limit": "0"}, "query.limit", "greater than or equal to 1"),
        ({"limit": "1001"}, "query.limit", "less than or equal to 1000"),
        ({"offset": "-1"}, "query.offset", "greater than or equal to 0"),
        ({"offset": "1.5"}, "query.offset", "valid integer"),
        # Past SQLite's 64-bit OFFSET: an OverflowError and a 500 once the read reached the database.
        ({"offset": "9223372036854775808"}, "query.offset", "less than or equal to 2147483647"),
        ({"offset": "9" * 5000}, "query.offset", "valid integer"),
    ],
)
def test_bad_query_parameter_is_a_422(api: TestClient, params: dict[str, str], location: str, message: str) -> None:
    upload = api.post(
        "/api/upload/",
        files={"file": ("p.csv", b"S. No.,Product Name,Input Image Urls\n1,Shoe,https://a.example/b.jpg\n")},
    )
    assert upload.status_code == 202, upload.text
    response = api.get(f"/api/status/{upload.json()['request_id']}/", params=params)
    error = error_of(response, 422, "invalid_request")
    assert error["details"][0]["location"] == location
    assert message in error["details"][0]["message"]
    assert location in error["message"]


def test_oversized_upload_is_a_413(context: Context) -> None:
    csv = "S. No.,Product Name,Input Image Urls\n" + "".join(
        f"{i},Item {i},https://cdn.example.com/{i}.jpg\n" for i in range(1, 200)
    )
    with api_with_settings(context, max_upload_bytes=2000) as api:
        response = api.post("/api/upload/", files={"file": ("products.csv", csv.encode(), "text/csv")})
    error_of(response, 413, "invalid_csv")
    assert stored_rows(context) == (0, 0, 0)


def test_an_incoming_request_id_is_echoed_and_a_bad_one_replaced(api: TestClient) -> None:
    mine = "client-req_42.v1"
    response = api.get("/api/nothing/", headers={"X-Request-ID": mine})
    assert response.headers["x-request-id"] == mine
    assert error_of(response, 404, "not_found")["request_id"] == mine

    for bad in ["has spaces", "x" * 65, "semi;colon"]:
        response = api.get("/api/nothing/", headers={"X-Request-ID": bad})
        assert GENERATED_ID.fullmatch(response.headers["x-request-id"]), bad

    ok = api.get("/healthz")
    assert ok.status_code == 200
    assert GENERATED_ID.fullmatch(ok.headers["x-request-id"])


def json_lines(service: Service) -> list[dict[str, Any]]:
    text = service.log_path.read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_logs_carry_the_request_id_of_an_error(start_service: StartService) -> None:
    """A process of its own: what a log collector reads is everything ``serve`` writes, each line a JSON object."""
    service = start_service("--no-worker", BATCHPRESS_LOG_FORMAT="json")
    request_id = f"json-log-{uuid.uuid4().hex}"
    response = httpx.get(f"{service.base_url}/api/missing/", headers={"X-Request-ID": request_id}, timeout=10)
    assert response.status_code == 404
    deadline = time.monotonic() + 10
    while not (found := [entry for entry in json_lines(service) if entry.get("request_id") == request_id]):
        assert time.monotonic() < deadline, service.log()
        time.sleep(0.1)
    assert found[0]["level"] == "INFO"
    assert "/api/missing/" in found[0]["message"]
    assert "404" in found[0]["message"]
    # Every line the service wrote is a JSON object (json_lines would have raised otherwise), with the basics.
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in json_lines(service))


def test_an_unexpected_error_is_a_500_without_details_but_logged_with_its_id(
    context: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The one failure a healthy real service cannot be made to show is an unexpected error."""

    def database_down(*_: object, **__: object) -> None:
        raise RuntimeError("connection to db.internal failed: password=hunter2")

    monkeypatch.setattr("batchpress.api.auth.read_revision", database_down)
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO), api_client(context) as api:
        response = api.get(f"/api/status/{uuid.uuid4()}/", headers={"X-Request-ID": "boom-1"})
    error = error_of(response, 500, "internal_error")
    assert error["request_id"] == "boom-1"
    assert "hunter2" not in response.text
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1
    assert logged[0].request_id == "boom-1"  # type: ignore[attr-defined]
    assert logged[0].exc_info is not None
    assert "hunter2" in caplog.text
