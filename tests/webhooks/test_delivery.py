"""Completion webhooks against a real receiver that verifies each delivery with the standardwebhooks library."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from batchpress.webhooks.signing import new_secret
from tests.conftest import StartService
from tests.support.photos import make_image
from tests.support.receiver import Receiver
from tests.support.servers import REPO, ImageServer, Service

SECRET = new_secret()
FAST = {
    "BATCHPRESS_WEBHOOK_SECRET": SECRET,
    "BATCHPRESS_WEBHOOK_RETRY_SCHEDULE": "0,1,1,1",
    "BATCHPRESS_WEBHOOK_TIMEOUT_SECONDS": "1",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(SECRET)
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def csv_text(image_server: ImageServer) -> str:
    url = image_server.add("/webhooks/a.jpg", make_image("jpeg", 2, (320, 240)))
    return f"S. No.,Product Name,Input Image Urls\n1,Shoe,{url}\n"


def upload(service: Service, csv_text: str, webhook_url: str | None = None) -> str:
    data = {"webhook_url": webhook_url} if webhook_url else {}
    response = httpx.post(
        f"{service.base_url}/api/upload/", files={"file": ("p.csv", csv_text.encode())}, data=data, timeout=30
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def webhook_when(service: Service, request_id: str, state: str, timeout: float = 30) -> dict[str, Any]:
    status = service.wait_until(
        request_id, lambda s: s["webhook"] is not None and s["webhook"]["state"] == state, timeout=timeout
    )
    webhook: dict[str, Any] = status["webhook"]
    return webhook


def test_finished_batch_is_delivered_once_and_signed(
    start_service: StartService, receiver: Receiver, csv_text: str
) -> None:
    service = start_service(**FAST)
    request_id = upload(service, csv_text, receiver.url("/hooks/ok"))
    webhook = webhook_when(service, request_id, "delivered")
    time.sleep(1.5)
    [delivery] = receiver.at("/hooks/ok")
    assert delivery.verified
    assert delivery.headers["webhook-id"] == webhook["event_id"]
    assert delivery.payload["type"] == "request.completed"
    data = delivery.payload["data"]
    assert data["request_id"] == request_id
    assert data["status"] == "completed"
    assert data["progress"] == {"total_images": 1, "processed": 1, "failed": 0}
    assert data["status_url"] == f"{service.base_url}/api/status/{request_id}/"
    assert httpx.get(data["status_url"]).json()["status"] == "completed"
    assert webhook["attempts"] == 1
    assert webhook["last_attempt"]["status_code"] == 200


def test_failing_receiver_gets_it_on_the_third_attempt_with_one_id(
    start_service: StartService, receiver: Receiver, csv_text: str
) -> None:
    service = start_service(**FAST)
    receiver.scripts["/hooks/flaky"] = ["500", "500", "200"]
    request_id = upload(service, csv_text, receiver.url("/hooks/flaky"))
    webhook = webhook_when(service, request_id, "delivered")
    deliveries = receiver.at("/hooks/flaky")
    assert [d.answered for d in deliveries] == [500, 500, 200]
    assert all(d.verified for d in deliveries)
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    assert webhook["attempts"] == 3
    assert [a["status_code"] for a in webhook["log"]] == [500, 500, 200]
    assert [a["outcome"] for a in webhook["log"]] == ["retry", "retry", "delivered"]
    print("\ndelivery log as the status API shows it:")
    for entry in webhook["log"]:
        print(
            f"  {entry['attempted_at']}  HTTP {entry['status_code']}  {entry['latency_ms']} ms  "
            f"{entry['outcome']:<9}  {entry['response_excerpt']}"
        )


def test_receiver_that_hangs_past_the_timeout_is_retried(
    start_service: StartService, receiver: Receiver, csv_text: str
) -> None:
    service = start_service(**FAST)
    receiver.scripts["/hooks/slow"] = ["hang", "200"]
    request_id = upload(service, csv_text, receiver.url("/hooks/slow"))
    webhook = webhook_when(service, request_id, "delivered")
    assert webhook["attempts"] == 2
    assert "timed out" in webhook["log"][0]["error"]
    assert webhook["log"][1]["status_code"] == 200


def test_a_400_stops_retrying(start_service: StartService, receiver: Receiver, csv_text: str) -> None:
    service = start_service(**FAST)
    receiver.scripts["/hooks/bad"] = ["400"]
    request_id = upload(service, csv_text, receiver.url("/hooks/bad"))
    webhook = webhook_when(service, request_id, "failed")
    time.sleep(3)
    assert len(receiver.at("/hooks/bad")) == 1
    assert webhook["attempts"] == 1
    assert webhook["last_attempt"]["outcome"] == "gave_up"


def test_retries_stop_when_the_schedule_runs_out(
    start_service: StartService, receiver: Receiver, csv_text: str
) -> None:
    service = start_service(**FAST)
    receiver.scripts["/hooks/down"] = ["503"] * 10
    request_id = upload(service, csv_text, receiver.url("/hooks/down"))
    webhook = webhook_when(service, request_id, "failed")
    assert webhook["attempts"] == 4  # the schedule "0,1,1,1" allows four attempts
    assert len(receiver.at("/hooks/down")) == 4


def test_redeliver_sends_it_again_with_the_same_id(
    start_service: StartService, receiver: Receiver, csv_text: str
) -> None:
    service = start_service(**FAST)
    request_id = upload(service, csv_text, receiver.url("/hooks/again"))
    first = webhook_when(service, request_id, "delivered")
    response = httpx.post(f"{service.base_url}/api/requests/{request_id}/webhook/redeliver/")
    assert response.status_code == 202, response.text
    deliveries = receiver.wait_for("/hooks/again", 2)
    assert deliveries[1].verified
    assert deliveries[1].headers["webhook-id"] == first["event_id"] == deliveries[0].headers["webhook-id"]
    assert webhook_when(service, request_id, "delivered")["attempts"] == 2

    unknown = httpx.post(f"{service.base_url}/api/requests/00000000-0000-0000-0000-000000000000/webhook/redeliver/")
    assert unknown.status_code == 404
    plain = upload(service, csv_text)
    service.wait_until(plain)
    conflict = httpx.post(f"{service.base_url}/api/requests/{plain}/webhook/redeliver/")
    assert conflict.status_code == 409
    assert "without a webhook_url" in conflict.json()["error"]["message"]


def test_410_disables_the_url_for_later_requests(
    start_service: StartService, receiver: Receiver, csv_text: str
) -> None:
    service = start_service(**FAST)
    receiver.scripts["/hooks/gone"] = ["410"]
    first = upload(service, csv_text, receiver.url("/hooks/gone"))
    assert webhook_when(service, first, "failed")["attempts"] == 1
    second = upload(service, csv_text, receiver.url("/hooks/gone"))
    webhook = webhook_when(service, second, "failed")
    assert webhook["attempts"] == 0
    assert "410" in webhook["last_attempt"]["error"]
    time.sleep(1)
    assert len(receiver.at("/hooks/gone")) == 1


def test_server_default_url_key_rotation_and_bad_urls(
    start_service: StartService, receiver: Receiver, csv_text: str
) -> None:
    old, new = new_secret(), SECRET
    service = start_service(
        **{
            **FAST,
            "BATCHPRESS_WEBHOOK_SECRET": f"{old} {new}",
            "BATCHPRESS_WEBHOOK_URL": receiver.url("/hooks/default"),
        }
    )
    request_id = upload(service, csv_text)
    [delivery] = receiver.wait_for("/hooks/default", 1)
    assert delivery.verified  # verified with the new secret alone
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    assert delivery.payload["data"]["request_id"] == request_id

    for bad in ("ftp://example.com/hook", "not a url", "/relative"):
        response = httpx.post(
            f"{service.base_url}/api/upload/", files={"file": ("p.csv", csv_text.encode())}, data={"webhook_url": bad}
        )
        assert response.status_code == 400
        assert response.json()["error"]["message"].startswith("webhook_url:")


def test_generated_secret_is_printed_by_the_cli(start_service: StartService, receiver: Receiver, csv_text: str) -> None:
    service = start_service(BATCHPRESS_WEBHOOK_RETRY_SCHEDULE="0")
    printed = subprocess.run(
        [sys.executable, "-m", "batchpress", "webhook-secret"],
        env=service.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert printed.startswith("whsec_")
    request_id = upload(service, csv_text, receiver.url("/hooks/generated"))
    service.wait_until(request_id)
    [delivery] = receiver.wait_for("/hooks/generated", 1)
    assert Receiver(printed).verifier.verify(delivery.body, delivery.headers)["data"]["request_id"] == request_id
