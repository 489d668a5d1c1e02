"""Per-request options at upload: quality, output format, a maximum dimension and effort, validated and honoured."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image, features
from starlette.testclient import TestClient

from batchpress.context import Context
from batchpress.processing import pipeline
from batchpress.processing.compress import CompressedImage, compress_image
from tests.api.test_upload_validation import stored_rows
from tests.support.inprocess import process_inline
from tests.support.photos import jpeg_quality, make_image
from tests.support.servers import ImageServer


def upload(api: TestClient, csv_text: str, **fields: str) -> httpx.Response:
    return api.post("/api/upload/", files={"file": ("p.csv", csv_text.encode())}, data=fields)


def status_of(api: TestClient, request_id: str) -> dict[str, Any]:
    response = api.get(f"/api/status/{request_id}/")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.fixture(scope="module")
def csv_text(image_server: ImageServer) -> str:
    jpeg = image_server.add("/options/a.jpg", make_image("jpeg", 1, (1200, 900)))
    png = image_server.add("/options/b.png", make_image("png_alpha", 2, (800, 600)), "image/png")
    return f'S. No.,Product Name,Input Image Urls\n1,Shoe,"{jpeg},{png}"\n'


def processed(context: Context, api: TestClient, csv_text: str, **fields: str) -> str:
    """Upload with ``fields`` and compress the request here, as a worker would; the request's id."""
    answer = upload(api, csv_text, **fields)
    assert answer.status_code == 202, answer.text
    request_id: str = answer.json()["request_id"]
    process_inline(context, uuid.UUID(request_id))
    return request_id


def outputs(api: TestClient, request_id: str) -> list[Image.Image]:
    status = status_of(api, request_id)
    assert status["status"] == "completed", status["products"][0]["errors"]
    images: list[Image.Image] = []
    for url in status["products"][0]["output_image_urls"]:
        image = Image.open(io.BytesIO(api.get(url).content))
        image.load()
        images.append(image)
    return images


def test_quality_format_and_size_are_honoured(context: Context, api: TestClient, csv_text: str) -> None:
    # effort=fast: jpeg_quality reads libjpeg's scaled tables, which jpegli (effort=max) does not write.
    request_id = processed(
        context, api, csv_text, quality="80", output_format="jpeg", max_dimension="400", effort="fast"
    )
    assert status_of(api, request_id)["options"] == {
        "quality": 80,
        "output_format": "jpeg",
        "max_dimension": 400,
        "effort": "fast",
    }
    jpeg, png = outputs(api, request_id)
    assert (jpeg.format, jpeg.size) == ("JPEG", (400, 300))
    assert (png.format, png.size) == ("JPEG", (400, 300))  # alpha flattened: the user asked for JPEG
    status = status_of(api, request_id)
    first = api.get(status["products"][0]["output_image_urls"][0]).content
    assert abs(jpeg_quality(first) - 80) <= 1

    webp = processed(context, api, csv_text, output_format="webp")
    assert [(i.format, i.size) for i in outputs(api, webp)] == [("WEBP", (1200, 900)), ("WEBP", (800, 600))]

    if features.check("avif"):
        avif = processed(context, api, csv_text, output_format="AVIF", max_dimension="2000")
        assert [i.size for i in outputs(api, avif)] == [(1200, 900), (800, 600)]  # never enlarged
        url = status_of(api, avif)["products"][0]["output_image_urls"][0]
        assert url.endswith(".avif")
        assert api.get(url).headers["content-type"] == "image/avif"


def test_each_effort_reaches_the_encoders_and_completes(
    context: Context, api: TestClient, csv_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def spy(data: bytes, **options: Any) -> CompressedImage:
        seen.append(options["effort"])
        return compress_image(data, **options)

    monkeypatch.setattr(pipeline, "compress_image", spy)
    for asked, stored, compressed in [("fast", "fast", True), (" MAX ", "max", True), ("", "max", False)]:
        seen.clear()
        request_id = processed(context, api, csv_text, effort=asked)
        assert status_of(api, request_id)["options"]["effort"] == stored
        # The effort is part of the recipe: the same sources at an effort already seen reuse its outputs.
        assert seen == ([stored, stored] if compressed else [])
        assert [i.size for i in outputs(api, request_id)] == [(1200, 900), (800, 600)]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"quality": "0"}, "quality"),
        ({"quality": "96"}, "quality"),
        ({"quality": "high"}, "quality"),
        ({"output_format": "gif"}, "output_format"),
        ({"max_dimension": "-5"}, "max_dimension"),
        ({"max_dimension": "0"}, "max_dimension"),
        ({"effort": "slow"}, "effort"),
        ({"effort": "maximum"}, "effort"),
        # A digit to str.isdigit, not to int; and more digits than int() parses: both were 500s.
        ({"quality": "\u00b2"}, "quality"),
        ({"max_dimension": "9" * 5000}, "max_dimension"),
    ],
)
def test_bad_options_are_a_400_naming_the_field(
    context: Context, api: TestClient, csv_text: str, fields: dict[str, str], named: str
) -> None:
    response = upload(api, csv_text, **fields)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_options"
    assert error["message"].startswith(f"{named}:")
    assert stored_rows(context) == (0, 0, 0)
