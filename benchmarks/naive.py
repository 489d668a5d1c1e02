"""The naive baseline: the simplest faithful version of the service, for the benchmark to compare against.

One Celery task per request downloads each image in turn with ``requests`` and re-saves it with Pillow at
quality 50 in its own format (PNG with ``optimize=True``), then writes a marker file. It is run by a real
worker, ``celery -A benchmarks.naive worker --concurrency=1``, on the filesystem broker in the folder named by
``NAIVE_QUEUE_DIR``: no database, no leases, no chunking, no download-ahead, one core.
"""

from __future__ import annotations

import json
import os
from io import BytesIO
from pathlib import Path

import requests
from celery import Celery
from PIL import Image

TASK = "naive.compress_all"


def make_app(queue_dir: str) -> Celery:
    app = Celery("naive", broker="filesystem://")
    messages = Path(queue_dir) / "messages"
    messages.mkdir(parents=True, exist_ok=True)
    app.conf.update(
        broker_transport_options={
            "data_folder_in": str(messages),
            "data_folder_out": str(messages),
            "control_folder": str(Path(queue_dir) / "control"),
            "store_processed": False,
            "polling_interval": 0.1,
        },
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
    )
    return app


app = make_app(os.environ.get("NAIVE_QUEUE_DIR", "naive-queue"))


@app.task(name=TASK)  # type: ignore[untyped-decorator]  # Celery ships no type hints
def compress_all(urls: list[str], out_dir: str, marker: str) -> int:
    done = 0
    for number, url in enumerate(urls):
        response = requests.get(url, timeout=30)
        response.raise_for_status()
        with Image.open(BytesIO(response.content)) as im:
            fmt = im.format
            params = {"optimize": True} if fmt == "PNG" else {"quality": 50}
            im.save(Path(out_dir) / f"{number}.{str(fmt).lower()}", format=fmt, **params)
        done += 1
    Path(marker).write_text(json.dumps({"images": done}))
    return done
