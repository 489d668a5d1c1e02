"""A catalogue full of traps: every image ends as the rules say, the request finishes, nothing leaks through."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image

from tests.conftest import StartService
from tests.support.photos import make_image
from tests.support.traps import TrapServer

MIB = 1024 * 1024
CAP = 4 * MIB


@pytest.fixture
def traps() -> Iterator[TrapServer]:
    server = TrapServer()
    yield server
    server.close()


def bomb_png() -> bytes:
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG")
    return out.getvalue()


def test_every_trap_ends_as_the_rules_say(start_service: StartService, traps: TrapServer) -> None:
    jpeg = make_image("jpeg", 3, (640, 480))
    cases: dict[str, str] = {
        traps.static("/404.jpg", b"gone", "text/plain", status=404): "HTTP 404",
        traps.static("/500.jpg", b"oops", "text/plain", status=500): "HTTP 500",
        traps.static("/html-as-jpeg.jpg", b"<!DOCTYPE html><html><body>hi</body></html>", "image/jpeg"): "HTML",
        traps.static("/jpeg-as-html.html", jpeg, "text/html"): "ok",
        traps.huge("/huge-declared.jpg", 100 * MIB, declare_length=True): "limit",
        traps.huge("/huge-undeclared.jpg", 100 * MIB, declare_length=False): "limit",
        traps.static("/bomb.png", bomb_png(), "image/png"): "MP",
        traps.redirect("/loop.jpg", "/loop.jpg"): "redirects",
        traps.redirect("/to-internal.jpg", traps.url("/internal-secret.jpg")): "blocked",
        traps.static("/truncated.jpg", jpeg[: len(jpeg) // 2]): "truncated",
        traps.drop("/dropped.jpg", make_image("jpeg", 5, (1600, 1200))): "connection",
        traps.trickle("/trickle.jpg", make_image("jpeg", 6, (1600, 1200)), bytes_per_second=40_000): "deadline",
        traps.static("/cmyk.jpg", make_image("cmyk_jpeg", 7, (640, 480))): "ok",
        traps.static("/rotated.jpg", make_image("exif_rotated_jpeg", 8, (640, 480))): "ok",
        traps.static("/animated.gif", make_image("animated_gif", 9, (320, 240)), "image/gif"): "ok",
    }
    traps.static("/internal-secret.jpg", jpeg)
    # Protection on; only "localhost" is allowed to be internal, so a hop to 127.0.0.1 by address is refused.
    service = start_service(
        BATCHPRESS_ALLOW_PRIVATE_NETWORKS="false",
        BATCHPRESS_OUTBOUND_ALLOW_HOSTS="localhost",
        BATCHPRESS_MAX_IMAGE_BYTES=str(CAP),
        BATCHPRESS_DOWNLOAD_TOTAL_TIMEOUT="4",
    )
    paths = list(cases)
    rows = "\n".join(f"{n},Trap {n},{traps.url(p, host='localhost')}" for n, p in enumerate(paths, 1))
    request_id = service.upload(f"S. No.,Product Name,Input Image Urls\n{rows}\n").json()["request_id"]
    status = service.wait_until(request_id, timeout=180)

    assert status["status"] == "completed_with_errors"
    for path, product in zip(paths, status["products"], strict=True):
        expected = cases[path]
        if expected == "ok":
            assert product["errors"] == [], (path, product["errors"])
            output = httpx.get(product["output_image_urls"][0]).content
            with Image.open(io.BytesIO(output)) as image:
                assert image.format == "JPEG", path
                assert image.mode in ("RGB", "L"), path
                if path == "/rotated.jpg":
                    assert image.size == (640, 480)
        else:
            assert product["output_image_urls"] == [None], path
            assert expected.lower() in product["errors"][0].lower(), (path, product["errors"])
    # What the huge bodies gave away stays near the cap (kernel socket buffers account for the slack).
    assert traps.sent.get("/huge-declared.jpg", 0) < CAP + 8 * MIB
    assert traps.sent.get("/huge-undeclared.jpg", 0) < CAP + 8 * MIB
    assert "/internal-secret.jpg" not in traps.hits, "the redirect reached an internal address"


def test_internal_addresses_are_never_contacted(start_service: StartService, traps: TrapServer) -> None:
    traps.static("/a.jpg", make_image("jpeg", 1, (320, 240)))
    port = traps.port
    urls = [
        f"http://127.0.0.1:{port}/a.jpg",
        f"http://localhost:{port}/a.jpg",
        f"http://[::1]:{port}/a.jpg",
        f"http://0.0.0.0:{port}/a.jpg",
        f"http://2130706433:{port}/a.jpg",
        f"http://0x7f000001:{port}/a.jpg",
        f"http://0177.0.0.1:{port}/a.jpg",
        f"http://127.1:{port}/a.jpg",
        f"http://[::ffff:127.0.0.1]:{port}/a.jpg",
        "http://10.0.0.1/a.jpg",
        "http://192.168.1.1/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/a.jpg",
    ]
    service = start_service(BATCHPRESS_ALLOW_PRIVATE_NETWORKS="false")
    rows = "\n".join(f"{n},Probe {n},{url}" for n, url in enumerate(urls, 1))
    request_id = service.upload(f"S. No.,Product Name,Input Image Urls\n{rows}\n").json()["request_id"]
    status = service.wait_until(request_id, timeout=120)
    assert status["status"] == "failed"
    for url, product in zip(urls, status["products"], strict=True):
        assert "blocked" in product["errors"][0].lower(), (url, product["errors"])
    assert traps.hits == {}, "an internal address was contacted"


def test_worker_memory_stays_bounded_on_12_mp_images(start_service: StartService, traps: TrapServer) -> None:
    images = {
        traps.static("/big-1.jpg", make_image("jpeg", 1, (4000, 3000))): "jpg",
        traps.static("/big-2.jpg", make_image("jpeg", 2, (4000, 3000))): "jpg",
        traps.static("/big-3.png", make_image("png_alpha", 3, (4000, 3000)), "image/png"): "png",
        traps.static("/big-4.webp", make_image("webp", 4, (4000, 3000)), "image/webp"): "webp",
    }
    service = start_service(BATCHPRESS_WORKER_CONCURRENCY="1")
    rows = "\n".join(f"{n},Big {n},{traps.url(p)}" for n, p in enumerate(images, 1))
    request_id = service.upload(f"S. No.,Product Name,Input Image Urls\n{rows}\n").json()["request_id"]
    status = service.wait_until(request_id, timeout=240)
    assert status["status"] == "completed", [p["errors"] for p in status["products"]]
    assert service.process is not None
    workers = [p for p in psutil.Process(service.process.pid).children(recursive=True) if "worker" in p.cmdline()]
    peaks = [peak_rss_mb(p.pid) for p in workers]
    print(f"\nworker peak RSS (MB) after four 12 MP images: {peaks}")
    assert peaks
    assert max(peaks) < 500


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
