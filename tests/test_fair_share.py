"""Fair share through real processes: a small request uploaded behind a large batch finishes long before it."""

from __future__ import annotations

from tests.conftest import StartService
from tests.support.photos import make_image
from tests.support.servers import ImageServer

# A slow origin keeps the large batch running for several seconds, with a backlog of chunks queued ahead.
LARGE = 240


def test_a_small_request_finishes_while_a_large_batch_ahead_of_it_is_still_running(
    start_service: StartService, image_server: ImageServer
) -> None:
    service = start_service()
    photo = make_image("jpeg", 3, (320, 240))
    large = [image_server.add(f"/fair/large-{n}.jpg", photo, delay=0.15) for n in range(LARGE)]
    small = [image_server.add(f"/fair/small-{n}.jpg", make_image("jpeg", 10 + n, (640, 480))) for n in range(3)]
    header = "S. No.,Product Name,Input Image Urls\n"
    large_id = service.upload(header + "".join(f"{n},Large {n},{u}\n" for n, u in enumerate(large, 1))).json()
    service.wait_until(large_id["request_id"], lambda s: s["progress"]["processed"] >= 8, timeout=60)
    small_id = service.upload(header + "".join(f"{n},Small {n},{u}\n" for n, u in enumerate(small, 1))).json()

    done = service.wait_until(small_id["request_id"], timeout=60)
    behind = service.status(large_id["request_id"])
    assert done["status"] == "completed", done["progress"]
    assert behind["status"] == "processing", "the large batch ended first: nothing was tested"
    print(f"\nsmall request done with the large batch at {behind['progress']['processed']}/{LARGE}")
    assert behind["progress"]["processed"] < LARGE * 3 // 4
    finished = service.wait_until(large_id["request_id"], timeout=180)
    assert finished["status"] == "completed"
    assert finished["progress"]["processed"] == LARGE
