"""Large uploads: refused whole on a late error, stored in CSV order, and never in the way of the status reads and
other uploads that arrive meanwhile (the one test here that needs ``batchpress serve``: Uvicorn's event loop and
thread pool, and SQLite's locks between connections)."""

from __future__ import annotations

import select
import socket
import sqlite3
import threading
import uuid

import httpx
import psycopg
from starlette.testclient import TestClient

from batchpress.context import Context
from tests.api.test_upload_validation import stored_rows
from tests.support.servers import Service

HEADER = "S. No.,Product Name,Input Image Urls\n"


def big_csv(rows: int, name: str, last_line: str | None = None) -> str:
    lines = [
        f'{i},{name} {i},"https://img.example.com/{i}/1.jpg,https://img.example.com/{i}/2.jpg,'
        f'https://img.example.com/{i}/3.jpg"\n'
        for i in range(1, rows + 1)
    ]
    return HEADER + "".join(lines) + (last_line or "")


def post(service: Service, body: str) -> httpx.Response:
    files = {"file": ("p.csv", body.encode(), "text/csv")}
    return httpx.post(f"{service.base_url}/api/upload/", files=files, timeout=120)


def stored_products(service: Service, name_prefix: str) -> int:
    pattern = name_prefix + "%"
    if url := service.env.get("BATCHPRESS_DATABASE_URL"):
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM product WHERE product_name LIKE %s", (pattern,)).fetchone()
    else:
        with sqlite3.connect(service.data_dir / "batchpress.db") as db:
            row = db.execute("SELECT count(*) FROM product WHERE product_name LIKE ?", (pattern,)).fetchone()
    assert row is not None
    return int(row[0])


def upload(api: TestClient, body: str) -> httpx.Response:
    return api.post("/api/upload/", files={"file": ("p.csv", body.encode(), "text/csv")})


def test_an_error_on_the_last_line_stores_nothing(context: Context, api: TestClient) -> None:
    response = upload(api, big_csv(4000, "Late", last_line="4001,Boot,not-a-url\n"))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"] == [
        {"line": 4002, "field": "Input Image Urls", "message": response.json()["error"]["details"][0]["message"]}
    ]
    assert "not-a-url" in response.json()["error"]["details"][0]["message"]
    assert stored_rows(context) == (0, 0, 0)


def test_products_and_images_come_back_in_csv_order(context: Context, api: TestClient) -> None:
    response = upload(api, big_csv(4500, "Ordered"))
    assert response.status_code == 202, response.text
    url = f"/api/status/{response.json()['request_id']}/"
    first = api.get(url).json()
    assert (first["total_products"], first["progress"]["total_images"]) == (4500, 13500)
    last = api.get(url, params={"offset": 4499, "limit": 1}).json()
    for page, serials in ((first, range(1, 1001)), (last, [4500])):
        assert [(p["serial_number"], p["product_name"], p["input_image_urls"]) for p in page["products"]] == [
            (i, f"Ordered {i}", [f"https://img.example.com/{i}/{k}.jpg" for k in (1, 2, 3)]) for i in serials
        ]
    assert stored_rows(context) == (1, 4500, 13500)


def test_status_reads_and_other_uploads_answer_while_a_big_upload_is_stored(api_only: Service) -> None:
    """The upload's work runs off the event loop and, on SQLite, status reads never wait for its write lock."""
    earlier = post(api_only, big_csv(3, "Earlier")).json()["request_id"]
    body = big_csv(30_000, "Busy").encode()
    boundary = uuid.uuid4().hex
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /api/upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(form)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", api_only.port), timeout=120) as upload:
        upload.sendall(head + form)
        # The whole body is sent: the server is now validating and storing it. A read must be answered before the
        # upload's own answer arrives, and a small upload must get through too.
        status = httpx.get(f"{api_only.base_url}/api/status/{earlier}/", timeout=60)
        upload_answered = bool(select.select([upload], [], [], 0)[0])
        small: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: small.append(post(api_only, big_csv(5, "Alongside"))))
        thread.start()
        reply = b""
        while chunk := upload.recv(65536):
            reply += chunk
        thread.join()
    assert status.status_code == 200
    assert status.json()["total_products"] == 3
    assert not upload_answered, "the status read waited for the upload to finish"
    assert reply.startswith(b"HTTP/1.1 202"), reply[:300]
    assert small[0].status_code == 202, small[0].text
    assert stored_products(api_only, "Busy ") == 30_000
