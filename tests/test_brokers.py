"""The same code on the machine's Redis and RabbitMQ (and PostgreSQL when BATCHPRESS_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import StartService
from tests.support.cluster import port_open
from tests.support.photos import make_image
from tests.support.servers import ImageServer

BROKERS = {
    "redis": ("redis://127.0.0.1:6379/3", 6379),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", 5672),
}


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_batch_completes_on_external_broker(
    broker: str, start_service: StartService, image_server: ImageServer
) -> None:
    url, port = BROKERS[broker]
    if not port_open(port):
        pytest.skip(f"{broker} is not running on 127.0.0.1:{port}")
    service = start_service(BATCHPRESS_BROKER_URL=url, BATCHPRESS_QUEUE_NAME=f"test-{uuid.uuid4().hex[:8]}")
    urls = [image_server.add(f"/{broker}/{i}.jpg", make_image("jpeg", i, (640, 480))) for i in range(6)]
    rows = "\n".join(f'{i + 1},Item {i},"{urls[2 * i]},{urls[2 * i + 1]}"' for i in range(3))
    request_id = service.upload(f"S. No.,Product Name,Input Image Urls\n{rows}\n").json()["request_id"]
    status = service.wait_until(request_id, timeout=90)
    assert status["status"] == "completed"
    assert status["progress"]["processed"] == 6
