"""The whole path on the embedded default: upload a CSV, a real worker compresses every image, status tells all.
The first test runs ``batchpress serve``; the others need no process of their own and run the API in-process."""

from __future__ import annotations

import io
import uuid

import httpx
from PIL import Image
from starlette.testclient import TestClient

from batchpress.context import Context
from tests.conftest import StartService
from tests.support.inprocess import process_inline
from tests.support.looks import gap_to_pillow
from tests.support.photos import expected_size, make_image
from tests.support.servers import ImageServer, image_counts

KINDS = [
    ("jpeg", "image/jpeg"),
    ("progressive_jpeg", "image/jpeg"),
    ("exif_rotated_jpeg", "image/jpeg"),
    ("cmyk_jpeg", "image/jpeg"),
    ("grayscale_jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("png_alpha", "image/png"),
    ("webp", "image/webp"),
]
EXPECTED_FORMAT = {"png": "PNG", "png_alpha": "PNG", "webp": "WEBP"}


def publish_batch(server: ImageServer, prefix: str, products: int) -> tuple[str, dict[str, bytes]]:
    """A CSV of ``products`` rows, each with 1 to 3 photos of varied kinds and sizes; returns it and the inputs."""
    inputs: dict[str, bytes] = {}
    lines = ["S. No.,Product Name,Input Image Urls"]
    n = 0
    for serial in range(1, products + 1):
        urls = []
        for _ in range(1 + serial % 3):
            kind, content_type = KINDS[n % len(KINDS)]
            size = (480 + 40 * (n % 5), 360 + 30 * (n % 4))
            data = make_image(kind, index=n, size=size)
            url = server.add(f"/{prefix}/{n}-{kind}", data, content_type)
            inputs[url] = data
            urls.append(url)
            n += 1
        lines.append(f'{serial},"Product {serial}, size M","{", ".join(urls)}"')
    return "\n".join(lines) + "\n", inputs


def test_batch_is_compressed_end_to_end(start_service: StartService, image_server: ImageServer) -> None:
    service = start_service()
    csv_text, inputs = publish_batch(image_server, "e2e", products=24)
    missing = image_server.url("/e2e/missing.jpg")
    image_server.add("/e2e/page.jpg", b"<!doctype html><html><body>sold out</body></html>", "image/jpeg")
    not_image = image_server.url("/e2e/page.jpg")
    csv_text += f'25,Broken product,"{missing}, {not_image}"\n'

    answer = service.upload(csv_text)
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["request_id"]

    status = service.wait_until(request_id)
    assert status["status"] == "completed_with_errors"
    assert image_counts(status) == {
        "total_images": len(inputs) + 2,
        "processed": len(inputs),
        "failed": 2,
        "pending": 0,
    }
    assert status["total_products"] == 25
    assert status["progress"]["bytes_in"] == sum(len(data) for data in inputs.values())
    assert 0 < status["progress"]["bytes_out"] < status["progress"]["bytes_in"]
    products = status["products"]
    assert [p["serial_number"] for p in products] == list(range(1, 26))
    assert products[0]["product_name"] == "Product 1, size M"

    for product in products[:-1]:
        assert product["errors"] == []
        assert len(product["output_image_urls"]) == len(product["input_image_urls"])
        for input_url, output_url in zip(product["input_image_urls"], product["output_image_urls"], strict=True):
            original = inputs[input_url]
            assert output_url.startswith(service.base_url + "/images/")
            fetched = httpx.get(output_url)
            assert fetched.status_code == 200
            output = fetched.content
            with Image.open(io.BytesIO(output)) as image:
                image.load()
                assert image.size == expected_size(original), input_url
                kind = input_url.rsplit("-", 1)[1]
                assert image.format == EXPECTED_FORMAT.get(kind, "JPEG"), input_url
                if kind == "png_alpha":
                    assert "A" in image.getbands() or "transparency" in image.info
            assert len(output) < len(original), input_url
            if image.format == "JPEG":  # fewer bytes than Pillow's quality 50, and looks at most a point worse
                assert gap_to_pillow(original, output) >= -1, input_url

    broken = products[-1]
    assert broken["output_image_urls"] == [None, None]
    assert "404" in broken["errors"][0]
    assert "not an image" in broken["errors"][1].lower()

    # The log tells what happened to the batch, without a line per downloaded image or warnings about nothing.
    log = service.log_path.read_text()
    assert f"request {request_id} finished: completed_with_errors" in log
    assert "HTTP Request:" not in log
    assert "No hostname was supplied" not in log


def test_same_csv_twice_gives_the_same_output(api: TestClient, context: Context, image_server: ImageServer) -> None:
    url = image_server.add("/twice/a.jpg", make_image("jpeg", 3, (400, 300)))
    csv_text = f"S. No.,Product Name,Input Image Urls\n1,Shoe,{url}\n"
    first, second = (upload_inline(api, csv_text) for _ in range(2))
    outputs = []
    for request_id in (first, second):
        process_inline(context, uuid.UUID(request_id))
        status = api.get(f"/api/status/{request_id}/").json()
        assert status["status"] == "completed"
        outputs.append(status["products"][0]["output_image_urls"][0])
    # One content-addressed output, listed by both (tests/test_reuse.py has the rest of reuse).
    assert outputs[0] == outputs[1]
    served = api.get(outputs[0])
    assert served.status_code == 200
    assert Image.open(io.BytesIO(served.content)).size == (400, 300)


def test_status_pages_products_and_rejects_unknown_ids(api: TestClient, image_server: ImageServer) -> None:
    url = image_server.add("/paging/a.png", make_image("png", 1, (200, 150)), "image/png")
    rows = "\n".join(f"{i},Item {i},{url}" for i in range(1, 1101))
    request_id = upload_inline(api, f"S. No.,Product Name,Input Image Urls\n{rows}\n")

    first = api.get(f"/api/status/{request_id}/").json()
    assert first["total_products"] == 1100
    assert first["limit"] == 1000
    assert len(first["products"]) == 1000
    page = api.get(f"/api/status/{request_id}/", params={"offset": 1050, "limit": 100}).json()
    assert [p["serial_number"] for p in page["products"]] == list(range(1051, 1101))

    for bad in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        response = api.get(f"/api/status/{bad}/")
        assert response.status_code == 404
        assert "no request" in response.json()["error"]["message"]


def upload_inline(api: TestClient, csv_text: str) -> str:
    response = api.post("/api/upload/", files={"file": ("p.csv", csv_text.encode(), "text/csv")})
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id
