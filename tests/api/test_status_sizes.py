"""What users see of their bytes in the status: each image's size before and after, lined up with its URLs, and the
sums per product and per request, all equal to what was downloaded and what is served; and which images took an
output that already existed, and why."""

from __future__ import annotations

import io
import uuid
from typing import Any

from PIL import Image as PILImage
from sqlalchemy import select
from starlette.testclient import TestClient

from batchpress.context import Context
from batchpress.models import Image, ImageState, Product
from tests.support.inprocess import process_inline
from tests.support.photos import make_image
from tests.support.servers import ImageServer

HEADER = "S. No.,Product Name,Input Image Urls\n"


def upload(api: TestClient, rows: list[tuple[int, str, list[str]]], **options: str) -> str:
    body = HEADER + "".join(f'{serial},{name},"{",".join(urls)}"\n' for serial, name, urls in rows)
    response = api.post("/api/upload/", files={"file": ("p.csv", body.encode(), "text/csv")}, data=options)
    assert response.status_code == 202, response.text
    return str(response.json()["request_id"])


def status_of(api: TestClient, request_id: str, **params: int) -> dict[str, Any]:
    response = api.get(f"/api/status/{request_id}/", params=params)
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()
    return status


def known(sizes: list[int | None]) -> int:
    return sum(size for size in sizes if size is not None)


def test_each_images_sizes_line_up_with_its_urls_and_add_up_per_product_and_request(
    context: Context, api: TestClient, image_server: ImageServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    sources = {
        "jpeg": make_image("jpeg", 1, (480, 360)),
        "png": make_image("png", 2, (320, 240)),
        "webp": make_image("webp", 3, (400, 300)),
    }
    urls = {kind: image_server.add(f"/{tag}/a.{kind}", data, f"image/{kind}") for kind, data in sources.items()}
    by_url = {urls[kind]: data for kind, data in sources.items()}
    missing = image_server.url(f"/{tag}/gone.jpg")
    rows = [(1, "Shoe", [urls["jpeg"], missing]), (2, "Sock", [urls["png"]]), (3, "Hat", [urls["webp"], urls["jpeg"]])]
    request_id = upload(api, rows)

    # Before any image is done, every size is null and nothing is saved yet.
    pending = status_of(api, request_id)
    for product in pending["products"]:
        assert (
            product["input_image_bytes"] == product["output_image_bytes"] == [None] * len(product["input_image_urls"])
        )
        assert (product["bytes_in"], product["bytes_out"]) == (0, 0)
        assert product["reused"] == [None] * len(product["input_image_urls"])
    assert {k: pending["progress"][k] for k in ("bytes_in", "bytes_out", "bytes_saved", "saved_percent", "reused")} == {
        "bytes_in": 0,
        "bytes_out": 0,
        "bytes_saved": 0,
        "saved_percent": None,
        "reused": 0,
    }

    process_inline(context, uuid.UUID(request_id))
    status = status_of(api, request_id)
    assert status["status"] == "completed_with_errors"
    products = status["products"]
    for product in products:
        lined_up = zip(
            product["input_image_urls"],
            product["output_image_urls"],
            product["input_image_bytes"],
            product["output_image_bytes"],
            strict=True,
        )
        for url, output, size_in, size_out in lined_up:
            if output is None:
                assert (url, size_in, size_out) == (missing, None, None)
                continue
            served = api.get(output)
            assert served.status_code == 200
            assert size_in == len(by_url[url])
            assert size_out == len(served.content)
        assert product["bytes_in"] == known(product["input_image_bytes"])
        assert product["bytes_out"] == known(product["output_image_bytes"])

    # The Hat's JPEG is the Shoe's: it took that image's output, which the status says, sizes and all.
    assert [p["reused"] for p in products] == [[None, None], [None], [None, "same source in this request"]]
    assert products[2]["output_image_urls"][1] == products[0]["output_image_urls"][0]
    assert products[2]["output_image_bytes"][1] == products[0]["output_image_bytes"][0]

    progress = status["progress"]
    assert (progress["processed"], progress["reused"]) == (4, 1)
    downloaded = sum(len(by_url[url]) for _, _, listed in rows for url in listed if url != missing)
    assert progress["bytes_in"] == sum(p["bytes_in"] for p in products) == downloaded
    assert progress["bytes_out"] == sum(p["bytes_out"] for p in products)
    assert progress["bytes_saved"] == progress["bytes_in"] - progress["bytes_out"] > 0
    assert progress["saved_percent"] == round(100 * progress["bytes_saved"] / progress["bytes_in"], 1)

    # The figures are the stored ones, image by image.
    with context.db.session(read_only=True) as session:
        stored = session.execute(
            select(Product.serial_number, Image.position, Image.state, Image.input_bytes, Image.output_bytes)
            .join(Product, Product.id == Image.product_id)
            .where(Image.request_id == uuid.UUID(request_id))
            .order_by(Product.serial_number, Image.position)
        ).all()
    shown = [
        (p["serial_number"], k, size_in, size_out)
        for p in products
        for k, (size_in, size_out) in enumerate(zip(p["input_image_bytes"], p["output_image_bytes"], strict=True))
    ]
    assert shown == [
        (serial, k, *((i, o) if state == ImageState.DONE.value else (None, None))) for serial, k, state, i, o in stored
    ]

    # A page of one product shows that product as the whole list does.
    for offset, product in enumerate(products):
        assert status_of(api, request_id, offset=offset, limit=1)["products"] == [product]


def flat_png(size: int = 64) -> bytes:
    """One colour: a PNG of a hundred-odd bytes, which no JPEG can match."""
    out = io.BytesIO()
    PILImage.new("RGB", (size, size), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def test_an_output_that_grew_shows_what_it_cost(context: Context, api: TestClient, image_server: ImageServer) -> None:
    """A conversion asked for is kept even when larger: the status says so with negative savings."""
    url = image_server.add(f"/{uuid.uuid4().hex[:8]}/flat.png", flat_png(), "image/png")
    request_id = upload(api, [(1, "Flag", [url])], output_format="jpeg", quality="95")
    process_inline(context, uuid.UUID(request_id))

    status = status_of(api, request_id)
    assert status["status"] == "completed"
    [product] = status["products"]
    [size_in], [size_out] = product["input_image_bytes"], product["output_image_bytes"]
    assert size_in == len(flat_png())
    assert size_out == len(api.get(product["output_image_urls"][0]).content) > size_in
    progress = status["progress"]
    assert progress["bytes_saved"] == size_in - size_out < 0
    assert progress["saved_percent"] == round(100 * (size_in - size_out) / size_in, 1) < 0


def test_a_catalogue_sent_again_says_per_image_why_its_output_was_reused(
    context: Context, api: TestClient, image_server: ImageServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    tagged = image_server.add(f"/{tag}/tagged.jpg", make_image("jpeg", 7, (400, 300)), validators=True)
    plain = image_server.add(f"/{tag}/plain.png", make_image("png", 8, (300, 200)), "image/png")
    missing = image_server.url(f"/{tag}/gone.jpg")
    rows = [(1, "Shoe", [tagged, plain]), (2, "Boot", [plain, missing])]

    first = upload(api, rows)
    process_inline(context, uuid.UUID(first))
    before = status_of(api, first)
    assert [p["reused"] for p in before["products"]] == [[None, None], ["same source in this request", None]]
    assert before["progress"]["reused"] == 1

    second = upload(api, rows)
    process_inline(context, uuid.UUID(second))
    after = status_of(api, second)
    # The origin answered 304 for the tagged source; the other was downloaded again and found by its content.
    reasons = [["unchanged at origin (304)", "same content"], ["same source in this request", None]]
    assert [p["reused"] for p in after["products"]] == reasons
    assert [p["output_image_urls"] for p in after["products"]] == [p["output_image_urls"] for p in before["products"]]
    progress = after["progress"]
    assert (progress["processed"], progress["failed"], progress["reused"]) == (3, 1, 3)
    assert progress["bytes_in"] == before["progress"]["bytes_in"]
    # Each page says the same as the whole list.
    for offset, product in enumerate(after["products"]):
        assert status_of(api, second, offset=offset, limit=1)["products"] == [product]
