"""Completion webhooks against a real receiver that verifies each delivery with the standardwebhooks library.

One test runs ``batchpress serve`` with its worker, so a finished batch is delivered by the real processes end to
end; the others run the API, the pipeline and the worker's delivery loop in this process, on the test's own
migrated database, and check what the receiver got, the rows the attempts left and the status API's ``webhook``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from batchpress.context import Context
from batchpress.db.base import as_utc, utcnow
from batchpress.lifecycle.sweep import sweep
from batchpress.models import DisabledWebhookUrl, WebhookAttempt, WebhookEvent
from batchpress.webhooks.signing import new_secret
from tests.conftest import StartService, migrated_copy
from tests.support.inprocess import api_client, deliver_inline, process_inline, service_context
from tests.support.photos import make_image
from tests.support.receiver import Receiver
from tests.support.servers import REPO, ImageServer, Service

SECRET = new_secret()
FAST = {
    "BATCHPRESS_WEBHOOK_SECRET": SECRET,
    "BATCHPRESS_WEBHOOK_RETRY_SCHEDULE": "0,1,1,1",
    "BATCHPRESS_WEBHOOK_TIMEOUT_SECONDS": "1",
}
# The byte figures of a request's counts, in the status and in the event alike.
BYTE_COUNTS = ("bytes_in", "bytes_out", "bytes_saved", "saved_percent")
# In this process: four attempts, each due at once, so the delivery loop never waits.
QUICK = {"webhook_secret": SECRET, "webhook_retry_schedule": "0,0,0,0", "webhook_timeout_seconds": 1}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """Module-wide, as closing one waits out its half-second poll; each test posts to a path of its own."""
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
    assert data["status_url"] == f"{service.base_url}/api/status/{request_id}/"
    shown = httpx.get(data["status_url"]).json()
    assert shown["status"] == "completed"
    assert data["progress"] == {"total_images": 1, "processed": 1, "failed": 0, "reused": 0} | {
        name: shown["progress"][name] for name in BYTE_COUNTS
    }
    assert data["progress"]["bytes_saved"] > 0
    assert webhook["attempts"] == 1
    assert webhook["last_attempt"]["status_code"] == 200


@dataclass
class InProcess:
    """The API, a worker's pipeline and its delivery loop, all in this process over one context."""

    context: Context
    api: TestClient

    def upload(self, csv_text: str, webhook_url: str | None = None) -> str:
        data = {"webhook_url": webhook_url} if webhook_url else {}
        response = self.api.post("/api/upload/", files={"file": ("p.csv", csv_text.encode())}, data=data)
        assert response.status_code == 202, response.text
        request_id: str = response.json()["request_id"]
        return request_id

    def finish(self, request_id: str) -> list[str]:
        """Process the request as a worker would; returns the webhook events its finish published."""
        return process_inline(self.context, uuid.UUID(request_id))

    def deliver(self, event_id: str) -> None:
        deliver_inline(self.context, event_id)

    def status(self, request_id: str) -> dict[str, Any]:
        response = self.api.get(f"/api/status/{request_id}/")
        assert response.status_code == 200, response.text
        status: dict[str, Any] = response.json()
        return status

    def webhook(self, request_id: str) -> dict[str, Any]:
        webhook: dict[str, Any] = self.status(request_id)["webhook"]
        return webhook

    def stored(self, request_id: str) -> tuple[WebhookEvent, list[WebhookAttempt]]:
        """The request's event row and its attempt rows, oldest first."""
        with self.context.db.session(read_only=True) as session:
            event = session.scalars(select(WebhookEvent).where(WebhookEvent.request_id == uuid.UUID(request_id))).one()
            attempts = session.scalars(
                select(WebhookAttempt).where(WebhookAttempt.event_id == event.id).order_by(WebhookAttempt.id)
            ).all()
        return event, list(attempts)

    def swept_events(self) -> list[str]:
        """The webhook events a worker's sweeper would send now: those due and not being sent."""
        published: list[str] = []
        sweep(self.context.db, self.context.settings, lambda *_: None, published.append)
        return published


Start = Callable[..., InProcess]


@pytest.fixture
def start(tmp_path: Path, migrated_template: str) -> Iterator[Start]:
    """The service in this process on the test's own migrated database, with QUICK webhook settings and
    ``overrides``."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> InProcess:
            url = stack.enter_context(migrated_copy(migrated_template, tmp_path / "data"))
            context = stack.enter_context(
                service_context(tmp_path / "data", url, migrate=False, **{**QUICK, **overrides})
            )
            return InProcess(context, stack.enter_context(api_client(context)))

        yield start


def test_failing_receiver_gets_it_on_the_third_attempt_with_one_id(
    start: Start, receiver: Receiver, csv_text: str
) -> None:
    service = start()
    receiver.scripts["/hooks/flaky"] = ["500", "500", "200"]
    request_id = service.upload(csv_text, receiver.url("/hooks/flaky"))
    [event_id] = service.finish(request_id)
    service.deliver(event_id)

    deliveries = receiver.at("/hooks/flaky")
    assert [d.answered for d in deliveries] == [500, 500, 200]
    assert all(d.verified for d in deliveries)
    assert {d.headers["webhook-id"] for d in deliveries} == {event_id}
    event, attempts = service.stored(request_id)
    assert (event.state, event.attempts, event.next_attempt_at) == ("delivered", 3, None)
    assert [(a.status_code, a.outcome) for a in attempts] == [(500, "retry"), (500, "retry"), (200, "delivered")]
    webhook = service.webhook(request_id)
    assert webhook["state"] == "delivered"
    assert webhook["event_id"] == event_id
    assert webhook["attempts"] == 3
    assert [a["status_code"] for a in webhook["log"]] == [500, 500, 200]
    assert [a["outcome"] for a in webhook["log"]] == ["retry", "retry", "delivered"]
    assert service.swept_events() == []
    print("\ndelivery log as the status API shows it:")
    for entry in webhook["log"]:
        print(
            f"  {entry['attempted_at']}  HTTP {entry['status_code']}  {entry['latency_ms']} ms  "
            f"{entry['outcome']:<9}  {entry['response_excerpt']}"
        )


def test_the_event_counts_the_reused_images_and_the_bytes_in_out_and_saved(
    start: Start, receiver: Receiver, image_server: ImageServer
) -> None:
    """Of the compressed images only, as the status counts them: a failed one has no output to weigh; an image
    whose source appeared earlier in the request took that output and is counted as reused."""
    service = start()
    tag = uuid.uuid4().hex[:8]
    sources = [make_image("jpeg", 5, (480, 360)), make_image("png", 6, (320, 240))]
    urls = [
        image_server.add(f"/{tag}/a.jpg", sources[0]),
        image_server.add(f"/{tag}/b.png", sources[1], "image/png"),
        image_server.url(f"/{tag}/gone.jpg"),
        image_server.url(f"/{tag}/a.jpg"),
    ]
    request_id = service.upload(
        f'S. No.,Product Name,Input Image Urls\n1,Shoe,"{",".join(urls)}"\n', receiver.url("/hooks/bytes")
    )
    [event_id] = service.finish(request_id)
    service.deliver(event_id)

    [delivery] = receiver.at("/hooks/bytes")
    assert delivery.verified
    progress = delivery.payload["data"]["progress"]
    [product] = service.status(request_id)["products"]
    assert product["reused"] == [None, None, None, "same source in this request"]
    bytes_in = sum(len(data) for data in sources) + len(sources[0])
    bytes_out = sum(len(service.api.get(url).content) for url in product["output_image_urls"] if url)
    assert progress == {
        "total_images": 4,
        "processed": 3,
        "failed": 1,
        "reused": 1,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "bytes_saved": bytes_in - bytes_out,
        "saved_percent": round(100 * (bytes_in - bytes_out) / bytes_in, 1),
    }
    assert {name: progress[name] for name in (*BYTE_COUNTS, "reused")} == {
        name: service.status(request_id)["progress"][name] for name in (*BYTE_COUNTS, "reused")
    }


def test_receiver_that_hangs_past_the_timeout_is_retried(start: Start, receiver: Receiver, csv_text: str) -> None:
    service = start()
    receiver.scripts["/hooks/slow"] = ["hang", "200"]
    request_id = service.upload(csv_text, receiver.url("/hooks/slow"))
    [event_id] = service.finish(request_id)
    service.deliver(event_id)

    assert [d.headers["webhook-id"] for d in receiver.at("/hooks/slow")] == [event_id, event_id]
    event, attempts = service.stored(request_id)
    assert (event.state, event.attempts) == ("delivered", 2)
    assert [(a.status_code, a.outcome) for a in attempts] == [(None, "retry"), (200, "delivered")]
    webhook = service.webhook(request_id)
    assert webhook["state"] == "delivered"
    assert webhook["attempts"] == 2
    assert "timed out" in webhook["log"][0]["error"]
    assert webhook["log"][1]["status_code"] == 200


def test_a_400_stops_retrying(start: Start, receiver: Receiver, csv_text: str) -> None:
    service = start()
    receiver.scripts["/hooks/bad"] = ["400"]
    request_id = service.upload(csv_text, receiver.url("/hooks/bad"))
    [event_id] = service.finish(request_id)
    service.deliver(event_id)

    assert len(receiver.at("/hooks/bad")) == 1
    event, attempts = service.stored(request_id)
    assert (event.state, event.attempts, event.next_attempt_at) == ("failed", 1, None)
    assert [(a.status_code, a.outcome) for a in attempts] == [(400, "gave_up")]
    assert service.swept_events() == []  # no worker would send it again
    webhook = service.webhook(request_id)
    assert webhook["state"] == "failed"
    assert webhook["attempts"] == 1
    assert webhook["last_attempt"]["outcome"] == "gave_up"


def test_retries_stop_when_the_schedule_runs_out(start: Start, receiver: Receiver, csv_text: str) -> None:
    service = start()
    receiver.scripts["/hooks/down"] = ["503"] * 10
    request_id = service.upload(csv_text, receiver.url("/hooks/down"))
    [event_id] = service.finish(request_id)
    service.deliver(event_id)

    assert len(receiver.at("/hooks/down")) == 4  # the schedule "0,0,0,0" allows four attempts
    event, attempts = service.stored(request_id)
    assert (event.state, event.attempts, event.next_attempt_at) == ("failed", 4, None)
    assert [(a.status_code, a.outcome) for a in attempts] == [(503, "retry")] * 3 + [(503, "gave_up")]
    assert service.swept_events() == []
    webhook = service.webhook(request_id)
    assert webhook["state"] == "failed"
    assert webhook["attempts"] == 4


def test_redeliver_sends_it_again_with_the_same_id(start: Start, receiver: Receiver, csv_text: str) -> None:
    service = start()
    request_id = service.upload(csv_text, receiver.url("/hooks/again"))
    [event_id] = service.finish(request_id)
    service.deliver(event_id)
    assert service.webhook(request_id)["state"] == "delivered"

    response = service.api.post(f"/api/requests/{request_id}/webhook/redeliver/")
    assert response.status_code == 202, response.text
    assert response.json() == {"request_id": request_id, "event_id": event_id, "state": "pending"}
    event, _ = service.stored(request_id)
    assert event.state == "pending"
    assert event.next_attempt_at is not None
    assert as_utc(event.next_attempt_at) <= utcnow()
    # Due at once: the API's publish sends it, and a sweeper would if that message were lost.
    assert service.swept_events() == [event_id]
    service.deliver(event_id)

    deliveries = receiver.at("/hooks/again")
    assert len(deliveries) == 2
    assert deliveries[1].verified
    assert deliveries[1].headers["webhook-id"] == event_id == deliveries[0].headers["webhook-id"]
    webhook = service.webhook(request_id)
    assert webhook["state"] == "delivered"
    assert webhook["attempts"] == 2

    unknown = service.api.post("/api/requests/00000000-0000-0000-0000-000000000000/webhook/redeliver/")
    assert unknown.status_code == 404
    plain = service.upload(csv_text)
    assert service.finish(plain) == []
    assert service.status(plain)["status"] == "completed"
    conflict = service.api.post(f"/api/requests/{plain}/webhook/redeliver/")
    assert conflict.status_code == 409
    assert "without a webhook_url" in conflict.json()["error"]["message"]


def test_410_disables_the_url_for_later_requests(start: Start, receiver: Receiver, csv_text: str) -> None:
    service = start()
    gone = receiver.url("/hooks/gone")
    receiver.scripts["/hooks/gone"] = ["410"]
    first = service.upload(csv_text, gone)
    [event_id] = service.finish(first)
    service.deliver(event_id)
    webhook = service.webhook(first)
    assert (webhook["state"], webhook["attempts"]) == ("failed", 1)
    with service.context.db.session(read_only=True) as session:
        [disabled] = session.scalars(select(DisabledWebhookUrl)).all()
    assert disabled.url == gone
    assert "410" in disabled.reason

    second = service.upload(csv_text, gone)
    assert service.finish(second) == []  # nothing published: the event is failed from the start
    event, attempts = service.stored(second)
    assert (event.state, event.attempts, event.next_attempt_at) == ("failed", 0, None)
    assert [(a.status_code, a.outcome) for a in attempts] == [(None, "gave_up")]
    webhook = service.webhook(second)
    assert webhook["state"] == "failed"
    assert webhook["attempts"] == 0
    assert "410" in webhook["last_attempt"]["error"]
    assert service.swept_events() == []
    assert len(receiver.at("/hooks/gone")) == 1


def test_server_default_url_key_rotation_and_bad_urls(start: Start, receiver: Receiver, csv_text: str) -> None:
    old, new = new_secret(), SECRET
    service = start(webhook_secret=f"{old} {new}", webhook_url=receiver.url("/hooks/default"))
    request_id = service.upload(csv_text)
    assert service.webhook(request_id)["url"] == receiver.url("/hooks/default")
    [event_id] = service.finish(request_id)
    service.deliver(event_id)

    [delivery] = receiver.at("/hooks/default")
    assert delivery.verified  # verified with the new secret alone
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    assert Receiver(old).verifier.verify(delivery.body, delivery.headers)["data"]["request_id"] == request_id
    assert delivery.payload["data"]["request_id"] == request_id
    assert service.webhook(request_id)["state"] == "delivered"

    for bad in ("ftp://example.com/hook", "not a url", "/relative"):
        response = service.api.post(
            "/api/upload/", files={"file": ("p.csv", csv_text.encode())}, data={"webhook_url": bad}
        )
        assert response.status_code == 400
        assert response.json()["error"]["message"].startswith("webhook_url:")


def test_generated_secret_is_printed_by_the_cli(start: Start, receiver: Receiver, csv_text: str) -> None:
    service = start(webhook_secret="", webhook_retry_schedule="0")
    settings = service.context.settings
    env = {
        **os.environ,
        "BATCHPRESS_DATA_DIR": str(settings.data_dir),
        "BATCHPRESS_DATABASE_URL": settings.database_url,
    }
    env.pop("BATCHPRESS_WEBHOOK_SECRET", None)
    printed = subprocess.run(
        [sys.executable, "-m", "batchpress", "webhook-secret"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert printed.startswith("whsec_")
    request_id = service.upload(csv_text, receiver.url("/hooks/generated"))
    [event_id] = service.finish(request_id)
    service.deliver(event_id)
    [delivery] = receiver.at("/hooks/generated")
    assert Receiver(printed).verifier.verify(delivery.body, delivery.headers)["data"]["request_id"] == request_id
