"""``batchpress demo``: a first try without the internet.

A tiny static origin on 127.0.0.1 (a free port, a thread of this process) serves the photos in examples/demo/;
``serve`` (API + worker) runs in this process as ``batchpress serve`` would, on a temporary data directory of its
own and with ``BATCHPRESS_ALLOW_PRIVATE_NETWORKS=true``, so it may download from that origin; once the API answers,
a CSV of the photos is uploaded and the web page's URL for the request printed. Ctrl-C stops the service (its
worker too), the origin, and deletes the data directory.

The demo never touches the user's own data: the settings that would point it elsewhere (a database, broker, S3
bucket, webhook, API keys, another host) are left out of its environment, and restored when it ends.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import typer

from batchpress.config import Settings

# The checkout's examples/demo/ (the project is installed editable by `make run`; a wheel does not carry it).
PHOTOS = Path(__file__).resolve().parents[2] / "examples" / "demo"
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})
# Settings the demo keeps from the environment: how hard it works and how it logs, nothing about where data goes.
KEPT = frozenset(
    {"BATCHPRESS_LOG_FORMAT", "BATCHPRESS_WORKER_CONCURRENCY", "BATCHPRESS_WORKER_NICE", "BATCHPRESS_API_WORKERS"}
)
HOST = "127.0.0.1"
START_SECONDS = 120.0
POLL_SECONDS = 0.5

Start = Callable[[Callable[[Settings], None]], None]


def photo_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def products(photos: list[Path]) -> list[tuple[str, list[str]]]:
    """One product per name before the first dash (``astronaut.jpg``, ``astronaut-detail.png``, ...), its main
    photo (the one named just that) first; the file names of each product's photos."""
    grouped: dict[str, list[Path]] = {}
    for photo in photos:
        grouped.setdefault(photo.stem.split("-", 1)[0], []).append(photo)
    return [
        (name.replace("_", " ").capitalize(), [p.name for p in sorted(group, key=lambda p: (p.stem != name, p.name))])
        for name, group in sorted(grouped.items())
    ]


def demo_csv(origin: str, items: list[tuple[str, list[str]]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["S. No.", "Product Name", "Input Image Urls"])
    for number, (name, files) in enumerate(items, start=1):
        writer.writerow([number, name, ", ".join(f"{origin}/{quote(file)}" for file in files)])
    return out.getvalue()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def origin(folder: Path) -> Iterator[str]:
    """``folder`` served over HTTP on 127.0.0.1 (a free port) from a thread, until the block ends; its base URL."""
    httpd = ThreadingHTTPServer((HOST, 0), partial(_QuietHandler, directory=str(folder)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="demo-origin", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def demo_environment(port: int, data_dir: Path) -> Iterator[list[str]]:
    """This process's environment (which the worker child inherits) set for the demo; the ``BATCHPRESS_*``
    variables left out, for the message. Restored afterwards."""
    saved = dict(os.environ)
    left_out = sorted(k for k in os.environ if k.startswith("BATCHPRESS_") and k not in KEPT | {"BATCHPRESS_PORT"})
    for name in left_out:
        del os.environ[name]
    os.environ.update(
        BATCHPRESS_HOST=HOST,
        BATCHPRESS_PORT=str(port),
        BATCHPRESS_DATA_DIR=str(data_dir),
        BATCHPRESS_ALLOW_PRIVATE_NETWORKS="true",
    )
    os.environ.setdefault("BATCHPRESS_API_WORKERS", "1")  # one API process starts sooner; a demo needs no more
    try:
        yield left_out
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _wait_until_up(base_url: str, stop: threading.Event) -> bool:
    deadline = time.monotonic() + START_SECONDS
    while not stop.is_set() and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return True
        stop.wait(0.2)
    return False


def present(base_url: str, csv_text: str, items: list[tuple[str, list[str]]], stop: threading.Event) -> None:
    """Once the API answers: upload the CSV, print where to watch it, and the outcome once it has finished."""
    from batchpress.cli.client import TERMINAL, ApiProblem, Client
    from batchpress.cli.display import summary_lines

    if not _wait_until_up(base_url, stop):
        if not stop.is_set():
            typer.echo(f"demo: the API did not answer at {base_url} in {START_SECONDS:.0f} s; see the log", err=True)
        return
    images = sum(len(files) for _name, files in items)
    try:
        with Client(base_url) as client:
            accepted = client.upload(io.BytesIO(csv_text.encode()), "demo-products.csv", {})
            request_id = str(accepted["request_id"])
            started = time.monotonic()
            typer.echo(
                f"\ndemo: uploaded {len(items)} products with {images} images as request {request_id}\n"
                f"  watch it   {base_url}/#request={request_id}\n"
                f"  status     {base_url}/api/status/{request_id}/\n"
            )
            while not stop.is_set():
                status = client.status(request_id)
                if status["status"] in TERMINAL:
                    summary = "\n".join(f"  {line}" for line in summary_lines(status))
                    typer.echo(
                        f"\ndemo: the batch finished {time.monotonic() - started:.1f} s after the upload\n{summary}\n"
                        f"  watch it   {base_url}/#request={request_id}\n"
                        "the service keeps running (upload your own CSV on the page); Ctrl-C stops the demo\n"
                    )
                    return
                stop.wait(POLL_SECONDS)
    except ApiProblem as problem:
        if not stop.is_set():
            typer.echo("\n".join(["demo:", *problem.lines]), err=True)


def run_demo(port: int, start: Start) -> None:
    """``batchpress demo``; ``start`` is the CLI's own start-up of ``serve`` (settings, logging, one-line errors)."""
    photos = photo_files(PHOTOS) if PHOTOS.is_dir() else []
    if not photos:
        typer.echo(
            f"error: no demo photos in {PHOTOS}; the demo runs from a checkout of batchpress (`make demo`)", err=True
        )
        raise typer.Exit(2)
    try:
        _run(port, start, products(photos))
    finally:
        typer.echo("demo: stopped; its data is deleted")


def _run(port: int, start: Start, items: list[tuple[str, list[str]]]) -> None:
    from batchpress.cli.api_processes import check_port_free
    from batchpress.cli.serve import run_service

    base_url = f"http://{HOST}:{port}"
    stop = threading.Event()  # set when serve ends: the upload thread gives up waiting
    with (
        tempfile.TemporaryDirectory(prefix="batchpress-demo-", ignore_cleanup_errors=True) as data_dir,
        origin(PHOTOS) as photos_url,
        demo_environment(port, Path(data_dir)) as left_out,
    ):
        typer.echo(
            f"demo: {sum(len(files) for _name, files in items)} photos of {PHOTOS} served at {photos_url}/\n"
            f"demo: the service on {base_url}, for this demo only with BATCHPRESS_ALLOW_PRIVATE_NETWORKS=true and "
            f"its data in {data_dir} (deleted when the demo stops; ./data is not touched)"
        )
        if left_out:
            typer.echo(f"demo: not using {', '.join(left_out)}: the demo keeps its data to itself")
        uploader = threading.Thread(
            target=present, args=(base_url, demo_csv(photos_url, items), items, stop), name="demo-upload", daemon=True
        )

        def run(settings: Settings) -> None:
            # Another server on the port would otherwise get the upload: stop first (run_service says why).
            check_port_free(settings.host, settings.port)
            uploader.start()
            try:
                run_service(settings, with_worker=True)
            finally:
                stop.set()

        try:
            start(run)
        finally:
            stop.set()
            if uploader.is_alive():
                uploader.join(timeout=5)
