"""The client commands, run as the installed ``batchpress`` script against a real server and real photos."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from batchpress.cli.display import size_text
from tests.conftest import fresh_database
from tests.support.photos import make_image
from tests.support.servers import ImageServer, Service, free_port

SCRIPT = Path(sys.executable).parent / "batchpress"
API_KEY = "cli-test-key"


def batchpress(
    *args: str, cwd: Path | None = None, stdin: int = subprocess.DEVNULL, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the console script with only the BATCHPRESS_* variables given here (stdin not a terminal unless given)."""
    base = {name: value for name, value in os.environ.items() if not name.startswith(("BATCHPRESS_", "TTY_"))}
    return subprocess.run(
        [str(SCRIPT), *args], env={**base, **env}, cwd=cwd, stdin=stdin, capture_output=True, text=True, timeout=60
    )


def on_a_terminal(answer: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``batchpress`` with a terminal for stdin, on which ``answer`` has been typed."""
    primary, secondary = pty.openpty()
    try:
        os.write(primary, answer.encode())
        return batchpress(*args, stdin=secondary, **env)
    finally:
        os.close(primary)
        os.close(secondary)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server with a worker and an API key, shared by this module's tests."""
    with fresh_database() as url:
        env = {
            "BATCHPRESS_API_KEYS": API_KEY,
            "BATCHPRESS_WORKER_CONCURRENCY": "1",
            **({"BATCHPRESS_DATABASE_URL": url} if url else {}),
        }
        server = Service(tmp_path_factory.mktemp("cli") / "data", env).start()
        yield server
        server.stop()


@pytest.fixture
def client_env(service: Service) -> dict[str, str]:
    return {"BATCHPRESS_URL": service.base_url, "BATCHPRESS_API_KEY": API_KEY}


def product_csv(tmp_path: Path, image_server: ImageServer, products: int = 3, missing: int | None = None) -> Path:
    """Two real photos per product; ``missing`` names a product whose second image answers 404."""
    tag = uuid.uuid4().hex[:8]
    lines = ["S. No.,Product Name,Input Image Urls"]
    for n in range(1, products + 1):
        first = image_server.add(f"/{tag}/{n}a.jpg", make_image("jpeg", n, (320, 240)))
        second = (
            image_server.url(f"/{tag}/{n}-gone.jpg")
            if n == missing
            else image_server.add(f"/{tag}/{n}b.png", make_image("png", n + 1, (240, 240)), "image/png")
        )
        lines.append(f'{n},Product {n},"{first},{second}"')
    path = tmp_path / "products.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_submit_wait_then_download_and_status(
    tmp_path: Path, image_server: ImageServer, client_env: dict[str, str]
) -> None:
    source = product_csv(tmp_path, image_server, products=3)
    run = batchpress("submit", str(source), "--wait", **client_env)
    assert run.returncode == 0, run.stderr
    request_id = run.stdout.splitlines()[0]
    assert uuid.UUID(request_id)
    assert "status    completed" in run.stdout
    assert "6 total: 6 done, 0 failed" in run.stdout
    # Not a terminal: the progress comes as plain lines, the last one complete.
    assert "progress: 6/6 images (6 done, 0 failed)" in run.stderr

    out = tmp_path / "out" / "result.csv"
    got = batchpress("download", request_id, "-o", str(out), **client_env)
    assert got.returncode == 0, got.stderr
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert rows[0][:4] == ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls"]
    inputs = list(csv.reader(io.StringIO(source.read_text())))[1:]
    assert [row[:3] for row in rows[1:]] == inputs
    assert all(len(row[k].split(",")) == 2 for row in rows[1:] for k in (3, 4, 5))

    shown = batchpress("status", request_id, "--json", **client_env)
    assert shown.returncode == 0
    status = json.loads(shown.stdout)
    assert status["request_id"] == request_id

    # The summary's sizes are the status's, which the CSV's size columns add up to.
    progress = status["progress"]
    bytes_in, bytes_out = progress["bytes_in"], progress["bytes_out"]
    assert bytes_in == sum(int(n) for row in rows[1:] for n in row[4].split(","))
    assert bytes_out == sum(int(n) for row in rows[1:] for n in row[5].split(","))
    saved = f"saved {size_text(bytes_in - bytes_out)} ({round(100 * (bytes_in - bytes_out) / bytes_in)} %)"
    line = f"bytes     {size_text(bytes_in)} → {size_text(bytes_out)}, {saved}"
    assert line in run.stdout.splitlines()
    summary = batchpress("status", request_id, **client_env)
    assert summary.returncode == 0
    assert line in summary.stdout.splitlines()


def test_submit_wait_exits_1_when_an_image_is_missing(
    tmp_path: Path, image_server: ImageServer, client_env: dict[str, str]
) -> None:
    run = batchpress("submit", str(product_csv(tmp_path, image_server, products=2, missing=2)), "--wait", **client_env)
    assert run.returncode == 1, run.stderr
    assert "status    completed_with_errors" in run.stdout
    assert "1 failed image" in run.stdout
    assert "#2 Product 2: image 2" in run.stdout
    assert "404" in run.stdout


def test_live_progress_bar_on_a_terminal(tmp_path: Path, image_server: ImageServer, client_env: dict[str, str]) -> None:
    source = product_csv(tmp_path, image_server, products=2)
    run = batchpress("submit", str(source), "--wait", TTY_COMPATIBLE="1", COLUMNS="120", TERM="xterm", **client_env)
    assert run.returncode == 0, run.stderr
    assert "\x1b[?25l" in run.stderr, "a live display hides the cursor while it redraws"
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", run.stderr)
    final = [line for line in re.split(r"[\r\n]", plain) if line.strip()][-1]
    for shown in ("━━━━", "4/4", "0 failed", "img/s", "ETA"):
        assert shown in final
    assert "progress:" not in plain


def test_invalid_csv_lists_its_lines(tmp_path: Path, client_env: dict[str, str]) -> None:
    bad = tmp_path / "bad.csv"
    rows = [f"x{n},Item,http://example.com/{n}.jpg" for n in range(12)]
    bad.write_text("S. No.,Product Name,Input Image Urls\n" + "\n".join(rows) + "\n")
    run = batchpress("submit", str(bad), **client_env)
    assert run.returncode == 2
    assert "the CSV was not accepted: 12 problems" in run.stderr
    assert "line 2, S. No.:" in run.stderr
    assert "line 11, S. No.:" in run.stderr
    assert "line 12" not in run.stderr
    assert "...and 2 more" in run.stderr


def test_unreachable_server_exits_2(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    run = batchpress("status", str(uuid.uuid4()), "--url", url)
    assert run.returncode == 2
    assert f"cannot reach batchpress at {url}" in run.stderr


def test_missing_api_key_shows_the_servers_message(service: Service) -> None:
    run = batchpress("status", str(uuid.uuid4()), BATCHPRESS_URL=service.base_url)
    assert run.returncode == 2
    assert "an API key is required" in run.stderr


def test_image_options_reach_the_server(
    tmp_path: Path, image_server: ImageServer, client_env: dict[str, str], service: Service
) -> None:
    """Sent when given, checked by the server; a server that does not know them refuses rather than ignores."""
    spec = httpx.get(f"{service.base_url}/openapi.json").json()
    source = str(product_csv(tmp_path, image_server, products=1))
    run = batchpress(
        "submit",
        source,
        "--output-format",
        "webp",
        "--max-dimension",
        "100",
        "--effort",
        "fast",
        "--wait",
        **client_env,
    )
    if "effort" not in json.dumps(spec["components"]["schemas"].get("Body_upload_csv_api_upload__post", {})):
        assert run.returncode == 2
        assert "does not support --effort" in run.stderr
        return
    assert run.returncode == 0, run.stderr
    assert "options   " in run.stdout
    assert "output_format webp" in run.stdout
    assert "effort fast" in run.stdout
    shown = json.loads(batchpress("status", run.stdout.splitlines()[0], "--json", **client_env).stdout)
    assert all(url.endswith(".webp") for url in shown["products"][0]["output_image_urls"])
    refused = batchpress("submit", source, "--quality", "500", **client_env)
    assert refused.returncode == 2
    assert "quality" in refused.stderr
    assert "(HTTP 400)" in refused.stderr


def test_unfinished_request_download_exits_1(api_only: Service, tmp_path: Path) -> None:
    """With no worker the request stays pending: its status is fine (exit 0), its CSV not there yet (exit 1)."""
    request_id = api_only.upload("S. No.,Product Name,Input Image Urls\n1,A,http://example.com/a.jpg\n").json()[
        "request_id"
    ]
    got = batchpress("download", request_id, "-o", str(tmp_path / "out.csv"), BATCHPRESS_URL=api_only.base_url)
    assert got.returncode == 1
    assert "not finished yet" in got.stderr
    assert not (tmp_path / "out.csv").exists()
    shown = batchpress("status", request_id, BATCHPRESS_URL=api_only.base_url)
    assert shown.returncode == 0
    assert "status    pending" in shown.stdout
    assert "1 total: 0 done, 0 failed, 1 pending" in shown.stdout


def listed_rows(run: subprocess.CompletedProcess[str]) -> list[list[str]]:
    """``list``'s table split into words (id, status, date, time, done/failed/total, saved...), after its header."""
    assert run.returncode == 0, run.stderr
    header, *rows = run.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "CREATED", "(UTC)", "DONE/FAILED/TOTAL", "SAVED"]
    return [row.split() for row in rows]


def listed_ids(run: subprocess.CompletedProcess[str]) -> list[str]:
    return [row[0] for row in listed_rows(run)]


def one_line(stderr: str) -> str:
    assert stderr.endswith("\n"), stderr
    assert stderr.count("\n") == 1, stderr
    return stderr.strip()


def test_list_cancel_and_delete_a_request_no_worker_touches(api_only: Service) -> None:
    env = {"BATCHPRESS_URL": api_only.base_url}
    csv_text = "S. No.,Product Name,Input Image Urls\n1,A,http://example.com/a.jpg\n"
    ids = [api_only.upload(csv_text).json()["request_id"] for _ in range(3)]

    page = batchpress("list", "--limit", "2", **env)
    rows = listed_rows(page)
    assert [row[0] for row in rows] == ids[::-1][:2]
    assert [row[1] for row in rows] == ["pending", "pending"]
    assert [row[4:] for row in rows] == [["0/0/1", "-"]] * 2
    assert page.stderr.startswith("more: --all lists them all, --cursor ")
    everything = json.loads(batchpress("list", "--all", "--limit", "1", "--json", **env).stdout)
    assert [r["request_id"] for r in everything["requests"]][:3] == ids[::-1]
    assert everything["next_cursor"] is None

    cancelled = batchpress("cancel", ids[0], **env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == f"cancelled {ids[0]}: 0 of 1 image done, 1 failed or cancelled\n"
    assert batchpress("cancel", ids[0], **env).stdout == cancelled.stdout  # again: harmless
    assert listed_ids(batchpress("list", "--status", "cancelled", **env)) == [ids[0]]
    assert batchpress("list", "--status", "completed", **env).stdout == "no completed requests\n"
    refused = batchpress("list", "--status", "done", **env)
    assert refused.returncode == 2
    assert one_line(refused.stderr).startswith("error: status must be one of ")

    # Without a terminal to ask on, only --yes deletes; an open request is the server's 409, in one line.
    unasked = batchpress("delete", ids[0], **env)
    assert unasked.returncode == 2
    assert "pass --yes" in one_line(unasked.stderr)
    still_open = batchpress("delete", ids[1], "--yes", **env)
    assert still_open.returncode == 2
    assert (
        one_line(still_open.stderr) == f"error: request {ids[1]} is still pending: cancel it, then delete it (HTTP 409)"
    )

    # On a terminal it asks (on stderr), and anything but yes keeps the request.
    kept = on_a_terminal("n\n", "delete", ids[0], **env)
    assert kept.returncode == 1
    assert kept.stderr.startswith(f"Delete request {ids[0]} (cancelled, 1 image, created ")
    assert kept.stderr.endswith("? [y/N] not deleted\n")
    assert kept.stdout == ""
    assert api_only.status(ids[0])["status"] == "cancelled"
    deleted = on_a_terminal("y\n", "delete", ids[0], **env)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == f"deleted {ids[0]}\n"

    for args in (("status", ids[0]), ("delete", ids[0], "--yes"), ("cancel", ids[0])):
        gone = batchpress(*args, **env)
        assert gone.returncode == 2
        assert one_line(gone.stderr) == f"error: no request with id {ids[0]} (HTTP 404)"
    assert ids[0] not in listed_ids(batchpress("list", "--all", **env))
    # Cancelled, the open one can go too.
    assert batchpress("cancel", ids[1], **env).returncode == 0
    assert batchpress("delete", ids[1], "-y", **env).stdout == f"deleted {ids[1]}\n"


def test_retry_queues_the_failed_image_again_and_waits_for_it(
    tmp_path: Path, image_server: ImageServer, client_env: dict[str, str]
) -> None:
    source = product_csv(tmp_path, image_server, products=2, missing=2)
    first = batchpress("submit", str(source), "--wait", **client_env)
    assert first.returncode == 1, first.stderr
    request_id = first.stdout.splitlines()[0]
    [row] = [row for row in listed_rows(batchpress("list", **client_env)) if row[0] == request_id]
    assert row[1] == "completed_with_errors"
    assert row[4] == "3/1/4"
    assert re.fullmatch(r"-?[\d.]+ (bytes|kB|MB) \(-?\d+ %\)", " ".join(row[5:]))

    # The missing image is there now: the retry gets it.
    [gone] = re.findall(r"http://[^,\"]+-gone\.jpg", source.read_text())
    image_server.add(gone.removeprefix(image_server.url("")), make_image("jpeg", 9, (320, 240)))
    again = batchpress("retry", request_id, "--wait", **client_env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"retrying {request_id}: ")
    assert "queued again" in again.stdout.splitlines()[0]
    assert "status    completed" in again.stdout
    assert "4 total: 4 done" in again.stdout
    assert "progress: 4/4 images" in again.stderr

    # Nothing failed now, and it has finished: neither retry nor cancel has anything to do.
    for command, message in (
        ("retry", "has no failed image to retry (completed)"),
        ("cancel", "has already finished: completed"),
    ):
        refused = batchpress(command, request_id, **client_env)
        assert refused.returncode == 2
        assert one_line(refused.stderr) == f"error: request {request_id} {message} (HTTP 409)"
