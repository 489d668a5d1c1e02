"""Scaled out on PostgreSQL + Redis with separate worker processes, under faults: nothing lost, nothing twice."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from batchpress.webhooks.signing import new_secret
from tests.support.cluster import Cluster, RedisServer, port_open, postgres_admin_url, postgres_database
from tests.support.photos import make_image, tagged
from tests.support.receiver import Receiver
from tests.support.servers import ImageServer, Service, image_counts

pytestmark = pytest.mark.cluster
# Few enough to keep the suite quick; a slow origin for the last of them keeps every fault mid-batch (checked).
IMAGES = 150


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_database(postgres_admin_url(), f"bp_cluster_{uuid.uuid4().hex[:10]}") as url:
        yield url


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, {"BATCHPRESS_DATABASE_URL": pg_url})
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def big_batch(image_server: ImageServer) -> str:
    lines = ["S. No.,Product Name,Input Image Urls"]
    for serial in range(1, IMAGES // 3 + 1):
        # The last third comes from a slow origin, so the batch is still running when the fault lands.
        delay = 1.0 if serial > IMAGES // 3 * 2 // 3 else 0
        urls = [
            # Other bytes for each: equal sources would share one output (processing/reuse.py).
            image_server.add(
                f"/scale/{serial}-{k}.jpg",
                tagged(make_image("jpeg", serial * 3 + k, (800, 600)), f"{serial}-{k}"),
                delay=delay,
            )
            for k in range(3)
        ]
        lines.append(f'{serial},Item {serial},"{",".join(urls)}"')
    return "\n".join(lines) + "\n"


def machine_redis() -> str:
    if not port_open(6379):
        pytest.skip("needs Redis on 127.0.0.1:6379")
    return "redis://127.0.0.1:6379/4"


def wait_processed(api: Service, request_id: str, at_least: int) -> int:
    status = api.wait_until(request_id, lambda s: s["progress"]["processed"] >= at_least, timeout=180)
    processed: int = status["progress"]["processed"]
    assert processed < IMAGES, "the batch finished before the fault: nothing was tested"
    return processed


def check_complete(cluster: Cluster, api: Service, request_id: str, pg_url: str, label: str) -> None:
    """Every image done once, one output each, and exactly one terminal transition; prints the figures."""
    status = api.wait_until(request_id, timeout=300)
    assert status["status"] == "completed", status["progress"]
    assert image_counts(status) == {"total_images": IMAGES, "processed": IMAGES, "failed": 0, "pending": 0}
    outputs = [url for p in status["products"] for url in p["output_image_urls"]]
    assert len(set(outputs)) == IMAGES
    stored = [p for p in Path(cluster.env["BATCHPRESS_DATA_DIR"], "images", "c").iterdir() if p.is_file()]
    assert len(stored) == IMAGES
    for url in outputs[::50]:
        assert httpx.get(url).status_code == 200
    finishes = cluster.worker_logs().count(f"request {request_id} finished")
    assert finishes == 1, f"terminal transition logged {finishes} times"
    with psycopg.connect(pg_url) as conn:
        retried = conn.execute("SELECT count(*) FROM image WHERE attempts > 1").fetchone()
    print(f"\n{label}: {IMAGES} images, lost 0, duplicated 0, retried {retried[0]}, terminal transitions {finishes}")


def machine_rabbitmq() -> str:
    if not port_open(5672):
        pytest.skip("needs RabbitMQ on 127.0.0.1:5672")
    return "amqp://guest:guest@127.0.0.1:5672//"


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
@pytest.mark.parametrize("victim", ["worker", "pool process"])
def test_kill_9_one_of_two_workers(cluster: Cluster, big_batch: str, pg_url: str, broker: str, victim: str) -> None:
    """The killed worker's (or pool process's) images are taken over within seconds: its leases lapse once its
    heartbeat stops, and the sweeper hands them, and the pending images of messages it had reserved, out again."""
    url = machine_redis() if broker == "redis" else machine_rabbitmq()
    cluster.env |= {"BATCHPRESS_BROKER_URL": url, "BATCHPRESS_QUEUE_NAME": f"t-{uuid.uuid4().hex[:8]}"}
    api = cluster.add_api()
    doomed = cluster.add_worker(concurrency=2)
    cluster.add_worker(concurrency=2)
    request_id = api.upload(big_batch).json()["request_id"]
    at = wait_processed(api, request_id, 30)
    if victim == "worker":
        doomed.kill()
    else:
        assert doomed.process is not None
        psutil.Process(doomed.process.pid).children()[0].kill()
    killed = time.monotonic()
    check_complete(cluster, api, request_id, pg_url, f"{broker}: kill -9 {victim} at {at}/{IMAGES}")
    print(f"{broker}: finished {time.monotonic() - killed:.1f} s after the kill")


def test_redis_restart_mid_batch(cluster: Cluster, big_batch: str, pg_url: str, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        cluster.env["BATCHPRESS_BROKER_URL"] = redis.url
        api = cluster.add_api()
        cluster.add_worker()
        cluster.add_worker()
        request_id = api.upload(big_batch).json()["request_id"]
        at = wait_processed(api, request_id, 30)
        redis.shutdown_nosave()
        time.sleep(2)
        redis.start()
        check_complete(cluster, api, request_id, pg_url, f"Redis killed (nothing saved) at {at}/{IMAGES}")
    finally:
        redis.stop()


def test_database_connections_dropped_mid_batch(cluster: Cluster, big_batch: str, pg_url: str) -> None:
    cluster.env |= {"BATCHPRESS_BROKER_URL": machine_redis(), "BATCHPRESS_QUEUE_NAME": f"t-{uuid.uuid4().hex[:8]}"}
    api = cluster.add_api()
    cluster.add_worker()
    cluster.add_worker()
    request_id = api.upload(big_batch).json()["request_id"]
    at = wait_processed(api, request_id, 30)
    database = pg_url.rpartition("/")[2]
    with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
        dropped = conn.execute(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()) AS t",
            (database,),
        ).fetchone()
    assert dropped is not None
    assert dropped[0] > 0
    check_complete(cluster, api, request_id, pg_url, f"{dropped[0]} database connections dropped at {at}/{IMAGES}")


def test_simultaneous_last_images_finish_a_request_once(
    cluster: Cluster, image_server: ImageServer, pg_url: str
) -> None:
    """Requests of two images, split over two workers, so both finish their last image at once; uploads and
    status reads spread over two API processes. Each request sends exactly one webhook event."""
    secret = new_secret()
    receiver = Receiver(secret)
    cluster.env |= {
        "BATCHPRESS_BROKER_URL": machine_redis(),
        "BATCHPRESS_QUEUE_NAME": f"t-{uuid.uuid4().hex[:8]}",
        "BATCHPRESS_WEBHOOK_SECRET": secret,
        "BATCHPRESS_WEBHOOK_URL": receiver.url("/race"),
    }
    apis = [cluster.add_api(), cluster.add_api()]
    cluster.add_worker()
    cluster.add_worker()
    a = image_server.add("/race/a.jpg", make_image("jpeg", 1, (320, 240)))
    b = image_server.add("/race/b.jpg", make_image("jpeg", 2, (320, 240)))
    csv_text = f'S. No.,Product Name,Input Image Urls\n1,Pair,"{a},{b}"\n'
    ids = [apis[n % 2].upload(csv_text).json()["request_id"] for n in range(40)]
    for n, request_id in enumerate(ids):
        assert apis[(n + 1) % 2].wait_until(request_id, timeout=120)["status"] == "completed"
    deliveries = receiver.wait_for("/race", len(ids))
    # The terminal move creates the request's webhook event in its own transaction: one event each means one move.
    with psycopg.connect(pg_url) as conn:
        events = dict(conn.execute("SELECT request_id::text, count(*) FROM webhook_event GROUP BY 1").fetchall())
        finished = conn.execute("SELECT count(*) FROM processing_request WHERE finished_at IS NOT NULL").fetchone()
    assert events == dict.fromkeys(ids, 1)
    assert finished == (len(ids),)
    assert all(d.verified for d in receiver.at("/race"))
    assert sorted(d.payload["data"]["request_id"] for d in receiver.at("/race")) == sorted(ids)
    assert len({d.headers["webhook-id"] for d in deliveries}) == len(ids)
    receiver.close()


def test_upload_while_broker_is_down_is_kept_and_processed_later(
    cluster: Cluster, image_server: ImageServer, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis")  # not started yet
    cluster.env["BATCHPRESS_BROKER_URL"] = redis.url
    api = cluster.add_api()
    url = image_server.add("/down/a.jpg", make_image("jpeg", 4, (320, 240)))
    started = time.monotonic()
    answer = api.upload(f"S. No.,Product Name,Input Image Urls\n1,Item,{url}\n")
    elapsed = time.monotonic() - started
    assert answer.status_code == 202, answer.text
    assert elapsed < 10
    request_id = answer.json()["request_id"]
    assert api.status(request_id)["status"] == "pending"
    redis.start()
    try:
        cluster.add_worker()
        assert api.wait_until(request_id, timeout=60)["status"] == "completed"
    finally:
        cluster.stop()
        redis.stop()


def test_redeliver_while_the_broker_is_down_is_accepted_and_sent_later(
    cluster: Cluster, image_server: ImageServer, tmp_path: Path
) -> None:
    """The redelivery is stored before it is enqueued: with the broker down the API still answers 202, and the
    sweeper sends the event once the broker is back."""
    secret = new_secret()
    receiver = Receiver(secret)
    redis = RedisServer(tmp_path / "redis").start()
    try:
        cluster.env |= {"BATCHPRESS_BROKER_URL": redis.url, "BATCHPRESS_WEBHOOK_SECRET": secret}
        api = cluster.add_api()
        cluster.add_worker()
        url = image_server.add("/redeliver/a.jpg", make_image("jpeg", 5, (320, 240)))
        answer = httpx.post(
            f"{api.base_url}/api/upload/",
            files={"file": ("p.csv", f"S. No.,Product Name,Input Image Urls\n1,Item,{url}\n".encode(), "text/csv")},
            data={"webhook_url": receiver.url("/again")},
            timeout=30,
        )
        request_id = answer.json()["request_id"]
        assert api.wait_until(request_id, timeout=60)["status"] == "completed"
        receiver.wait_for("/again", 1)
        redis.shutdown_nosave()
        response = httpx.post(f"{api.base_url}/api/requests/{request_id}/webhook/redeliver/", timeout=60)
        assert response.status_code == 202, response.text
        redis.start()
        deliveries = receiver.wait_for("/again", 2)
        assert deliveries[1].verified
        assert deliveries[1].headers["webhook-id"] == deliveries[0].headers["webhook-id"]
    finally:
        cluster.stop()
        redis.stop()
        receiver.close()
