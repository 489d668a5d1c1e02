"""``batchpress demo``: the photos it serves itself are compressed without the internet, and Ctrl-C stops it all."""

from __future__ import annotations

import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
from PIL import Image, ImageOps

from batchpress.cli.client import TERMINAL
from batchpress.cli.demo import PHOTOS, demo_csv, photo_files, products
from tests.support.servers import REPO, free_port

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_the_demo_photos_are_small_real_and_varied() -> None:
    photos = photo_files(PHOTOS)
    assert 5 <= len(photos) <= 8
    assert all(p.stat().st_size < 200 * 1024 for p in photos)
    assert sum(p.stat().st_size for p in photos) < 1024 * 1024
    formats, modes, orientations = set(), set(), set()
    for photo in photos:
        with Image.open(photo) as im:
            formats.add(im.format)
            modes.add(im.mode)
            orientations.add(im.getexif().get(0x0112, 1))
    assert formats == {"JPEG", "PNG"}
    assert "RGBA" in modes
    assert orientations - {1}
    # Several products, one of them with several photos.
    items = products(photos)
    assert len(items) >= 3
    assert max(len(files) for _name, files in items) in (2, 3)
    rows = demo_csv("http://127.0.0.1:1", items).splitlines()
    assert rows[0] == "S. No.,Product Name,Input Image Urls"
    assert len(rows) == len(items) + 1


class Output:
    """The lines a process prints, read by a thread so that waiting for one never blocks on the pipe."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: io.TextIOBase) -> None:
        for line in stream:
            self.lines.append(line)
            self._new.put(line)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                break
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r} in {timeout} s:\n{''.join(self.lines)}")


def test_the_demo_compresses_its_photos_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    real_data = tmp_path / "real-data"
    stderr = (tmp_path / "demo.log").open("w")
    env = {
        **os.environ,
        "BATCHPRESS_PORT": str(port),
        # What a user may have set for their own service: the demo keeps away from it.
        "BATCHPRESS_DATA_DIR": str(real_data),
        "BATCHPRESS_ALLOW_PRIVATE_NETWORKS": "false",
        "BATCHPRESS_WORKER_CONCURRENCY": "2",
    }
    demo = subprocess.Popen(
        [sys.executable, "-m", "batchpress", "demo"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    family: list[psutil.Process] = []
    try:
        assert demo.stdout is not None
        output = Output(demo.stdout)
        base = f"http://127.0.0.1:{port}"
        data_dir = Path(output.wait_for(r"its data in (\S+) ", 30)[1])
        request_id = output.wait_for(rf"{re.escape(base)}/#request=({UUID})$", 90)[1]
        uploaded = time.monotonic()
        output.wait_for(rf"{re.escape(base)}/api/status/{request_id}/$", 5)
        assert httpx.get(f"{base}/", timeout=10).status_code == 200  # the page the URL opens

        with httpx.Client(base_url=base, timeout=30) as client:
            while (status := client.get(f"/api/status/{request_id}/").raise_for_status().json())[
                "status"
            ] not in TERMINAL:
                assert time.monotonic() - uploaded < 90, status["progress"]
                time.sleep(0.2)
            took = time.monotonic() - uploaded
            photos = {p.name: p.read_bytes() for p in photo_files(PHOTOS)}
            progress = status["progress"]
            assert status["status"] == "completed", status
            assert (progress["total_images"], progress["processed"], progress["failed"]) == (
                len(photos),
                len(photos),
                0,
            )
            for product in status["products"]:
                assert product["errors"] == []
                for url, out_url, size_in, size_out in zip(
                    product["input_image_urls"],
                    product["output_image_urls"],
                    product["input_image_bytes"],
                    product["output_image_bytes"],
                    strict=True,
                ):
                    original = photos[url.rsplit("/", 1)[1]]
                    compressed = client.get(out_url).raise_for_status().content
                    assert size_in == len(original)
                    assert size_out == len(compressed) < len(original), url
                    with Image.open(io.BytesIO(original)) as before, Image.open(io.BytesIO(compressed)) as after:
                        after.load()
                        assert after.format == before.format
                        assert after.size == ImageOps.exif_transpose(before).size  # upright, full size
        print(f"the demo's batch took {took:.1f} s from the upload")
        output.wait_for(r"the batch finished", 10)
        assert not real_data.exists()

        family = psutil.Process(demo.pid).children(recursive=True)
        assert family, "no worker child"
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0
        _gone, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, f"left running: {alive}"
        assert not data_dir.exists()
        assert "demo: stopped" in "".join(output.lines)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for child in family:
            if child.is_running():
                child.kill()
        stderr.close()
