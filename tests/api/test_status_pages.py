"""Status pages of the largest requests the upload accepts: each page is bounded in bytes and images, and following
``next_offset`` lists every product and image exactly once, in CSV order."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from batchpress.api import status
from batchpress.api.status import StatusReads
from batchpress.api.status_cache import Answer
from batchpress.api.status_page import PAGE_BYTES, PAGE_IMAGES
from batchpress.context import Context
from batchpress.ingest.csv_reader import MAX_NAME_CHARS, MAX_URL_CHARS, MAX_URLS_PER_PRODUCT
from batchpress.models import Image
from batchpress.processing.results import MAX_ERROR_CHARS

HEADER = "S. No.,Product Name,Input Image Urls\n"


def long_url(serial: int, k: int, length: int) -> str:
    head = f"https://img.example.com/{serial}/{k}/"
    return head + "u" * (length - len(head) - 4) + ".jpg"


def extreme_rows() -> list[tuple[int, str, list[str]]]:
    """Every shape of product at the caps, in runs: names and URLs at their longest, a 1 MiB URL list of 1,000
    URLs (alone over a page's bytes), products of 1,000 short URLs (ten make a page's images), and more small
    products than one page lists."""
    rows: list[tuple[int, str, list[str]]] = []

    def add(name: str, urls: list[str]) -> None:
        rows.append((len(rows) + 1, name, urls))

    for _ in range(25):
        serial = len(rows) + 1
        add(f"Wide {serial} ".ljust(MAX_NAME_CHARS, "w"), [long_url(serial, k, MAX_URL_CHARS) for k in range(24)])
    for _ in range(2):
        serial = len(rows) + 1
        add(f"Fat {serial}", [long_url(serial, k, 1040) for k in range(MAX_URLS_PER_PRODUCT)])
    for _ in range(12):
        serial = len(rows) + 1
        add(f"Many {serial}", [f"https://i.example/{serial}/{k}.jpg" for k in range(MAX_URLS_PER_PRODUCT)])
    for _ in range(1500):
        serial = len(rows) + 1
        add(f"Small {serial}", [f"https://i.example/{serial}.jpg"])
    return rows


def upload(api: TestClient, rows: list[tuple[int, str, list[str]]]) -> str:
    body = HEADER + "".join(f'{serial},{name},"{",".join(urls)}"\n' for serial, name, urls in rows)
    response = api.post("/api/upload/", files={"file": ("p.csv", body.encode(), "text/csv")})
    assert response.status_code == 202, response.text[:300]
    return str(response.json()["request_id"])


def fail_every_image(context: Context, request_id: str) -> None:
    """As a worker would record them, with the longest error it keeps: each error line repeats its URL, so this
    is the largest status a request can have."""
    with context.db.session() as session:
        session.execute(
            update(Image)
            .where(Image.request_id == uuid.UUID(request_id))
            .values(state="failed", error="e" * MAX_ERROR_CHARS)
        )
        session.commit()


def walk(api: TestClient, request_id: str, **params: int) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        response = api.get(f"/api/status/{request_id}/", params={**params, "offset": offset})
        assert response.status_code == 200, response.text[:300]
        pages.append(response.json())
        offset = pages[-1]["next_offset"]
        assert len(pages) < 1000, "next_offset does not move on"
    return pages


def products_bytes(page: dict[str, Any]) -> int:
    return len(json.dumps(page["products"], ensure_ascii=False, separators=(",", ":")).encode())


def test_every_page_of_the_largest_request_is_bounded_and_together_they_list_everything_once(
    context: Context, api: TestClient
) -> None:
    rows = extreme_rows()
    request_id = upload(api, rows)
    fail_every_image(context, request_id)
    pages = walk(api, request_id)
    for page in pages:
        images = sum(len(p["input_image_urls"]) for p in page["products"])
        assert page["products"], "every page lists at least one product"
        assert len(page["products"]) <= 1000
        if len(page["products"]) > 1:
            assert products_bytes(page) <= PAGE_BYTES
            assert images <= PAGE_IMAGES
        assert (page["offset"], page["limit"], page["total_products"]) == (
            pages[0]["offset"] + sum(len(p["products"]) for p in pages[: pages.index(page)]),
            1000,
            len(rows),
        )
    # Wide products end pages by bytes; a fat one is a page of its own; each product of 1,000 failed images has
    # 1,000 error lines, so they end pages by bytes too (their images, when pending: the next test).
    assert [len(p["products"]) for p in pages] == [9, 9, 7, 1, 1, 2, 2, 2, 2, 2, 377, 1000, 125]
    assert max(products_bytes(p) for p in pages) < 2.5e6
    listed = [p for page in pages for p in page["products"]]
    assert [(p["serial_number"], p["product_name"], p["input_image_urls"]) for p in listed] == rows
    for product, (_, _, urls) in zip(listed, rows, strict=True):
        assert product["output_image_urls"] == [None] * len(urls)
        assert product["input_image_bytes"] == product["output_image_bytes"] == product["reused"] == [None] * len(urls)
        assert product["errors"] == [f"image {k + 1} ({url}): {'e' * MAX_ERROR_CHARS}" for k, url in enumerate(urls)]
    assert pages[-1]["next_offset"] is None
    assert pages[0]["progress"]["failed"] == sum(len(urls) for _, _, urls in rows)


def test_pending_images_page_by_count_and_a_smaller_limit_pages_the_same_products(api: TestClient) -> None:
    rows = [(n + 1, name, urls) for n, (_, name, urls) in enumerate(extreme_rows()[20:60])]
    request_id = upload(api, rows)
    for limit, shape in ((1000, [5, 1, 1, 10, 23]), (7, [5, 1, 1, 7, 7, 7, 7, 5])):
        pages = walk(api, request_id, limit=limit)
        assert [len(p["products"]) for p in pages] == shape
        assert all(p["limit"] == limit for p in pages)
        assert [(p["serial_number"], p["input_image_urls"]) for page in pages for p in page["products"]] == [
            (serial, urls) for serial, _, urls in rows
        ]


def test_a_status_without_parameters_is_the_first_page_as_before(api: TestClient) -> None:
    request_id = upload(api, [(n, f"SKU{n}", [f"https://cdn.example.com/{n}.jpg"]) for n in range(1, 4)])
    page = api.get(f"/api/status/{request_id}/").json()
    assert page["status"] == "pending"
    assert page["progress"] == {
        "total_images": 3,
        "processed": 0,
        "failed": 0,
        "pending": 3,
        "reused": 0,
        "bytes_in": 0,
        "bytes_out": 0,
        "bytes_saved": 0,
        "saved_percent": None,
    }
    assert (page["offset"], page["limit"], page["total_products"], page["next_offset"]) == (0, 1000, 3, None)
    assert [p["product_name"] for p in page["products"]] == ["SKU1", "SKU2", "SKU3"]
    second = api.get(f"/api/status/{request_id}/", params={"offset": 1, "limit": 1}).json()
    assert (second["next_offset"], [p["serial_number"] for p in second["products"]]) == (2, [2])
    past = api.get(f"/api/status/{request_id}/", params={"offset": 5}).json()
    assert (past["products"], past["next_offset"]) == ([], None)


def test_a_row_over_the_url_count_cap_is_a_400_naming_line_and_column(api: TestClient) -> None:
    urls = ",".join(f"https://i.example/{k}.jpg" for k in range(MAX_URLS_PER_PRODUCT + 1))
    body = f'{HEADER}1,Shoe,https://i.example/a.jpg\n2,Boot,"{urls}"\n'
    response = api.post("/api/upload/", files={"file": ("p.csv", body.encode(), "text/csv")})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {"line": 3, "field": "Input Image Urls", "message": "the row lists 1001 image URLs, over the 1000 allowed"}
    ]


def test_readers_of_a_page_being_rendered_wait_for_that_render(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sixteen readers of one big page that is not cached yet cost one render, not sixteen."""
    release = threading.Event()
    calls: list[int] = []

    def render(ctx: Any, reads: StatusReads, rid: uuid.UUID, revision: int, offset: int, limit: int) -> Answer:
        calls.append(offset)
        release.wait(30)
        return Answer.of(b'{"products": []}')

    monkeypatch.setattr(status, "_render_answer", render)
    reads = StatusReads()
    rid = uuid.uuid4()

    async def readers() -> list[Answer]:
        tasks = [asyncio.create_task(status._rendered(None, reads, "k", rid, 1, 0, 1000)) for _ in range(16)]
        await asyncio.sleep(0)  # every reader has asked before the render ends
        release.set()
        return await asyncio.gather(*tasks)

    answers = asyncio.run(readers())
    assert calls == [0]
    assert all(answer is answers[0] for answer in answers)
    assert reads.answers.get("k") is answers[0]
    assert not reads.rendering
