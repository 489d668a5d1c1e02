"""Per-request options at upload: quality, output format and a maximum dimension, validated and honoured."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image, features

from tests.conftest import StartService
from tests.support.photos import jpeg_quality, make_image
from tests.support.servers import ImageServer, Service


def upload(service: Service, csv_text: str, **fields: str) -> httpx.Response:
    return httpx.post(
        f"{service.base_url}/api/upload/", files={"file": ("p.csv", csv_text.encode())}, data=fields, timeout=30
    )


@pytest.fixture(scope="module")
def csv_text(image_server: ImageServer) -> str:
    jpeg = image_server.add("/options/a.jpg", make_image("jpeg", 1, (1200, 900)))
    png = image_server.add("/options/b.png", make_image("png_alpha", 2, (800, 600)), "image/png")
    return f'S. No.,Product Name,Input Image Urls\n1,Shoe,"{jpeg},{png}"\n'


def outputs(service: Service, request_id: str) -> list[Image.Image]:
    status = service.wait_until(request_id)
    assert status["status"] == "completed", status["products"][0]["errors"]
    images = []
    for url in status["products"][0]["output_image_urls"]:
        image = Image.open(io.BytesIO(httpx.get(url).content))
        image.load()
        images.append(image)
    return images


def test_quality_format_and_size_are_honoured(
    start_service: StartService, image_server: ImageServer, csv_text: str
) -> None:
    service = start_service()
    answer = upload(service, csv_text, quality="80", output_format="jpeg", max_dimension="400")
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["request_id"]
    assert service.status(request_id)["options"] == {"quality": 80, "output_format": "jpeg", "max_dimension": 400}
    jpeg, png = outputs(service, request_id)
    assert (jpeg.format, jpeg.size) == ("JPEG", (400, 300))
    assert (png.format, png.size) == ("JPEG", (400, 300))  # alpha flattened: the user asked for JPEG
    status = service.status(request_id)
    first = httpx.get(status["products"][0]["output_image_urls"][0]).content
    assert abs(jpeg_quality(first) - 80) <= 1

    webp = upload(service, csv_text, output_format="webp").json()["request_id"]
    assert [(i.format, i.size) for i in outputs(service, webp)] == [("WEBP", (1200, 900)), ("WEBP", (800, 600))]

    if features.check("avif"):
        avif = upload(service, csv_text, output_format="AVIF", max_dimension="2000").json()["request_id"]
        assert [i.size for i in outputs(service, avif)] == [(1200, 900), (800, 600)]  # never enlarged
        url = service.status(avif)["products"][0]["output_image_urls"][0]
        assert url.endswith(".avif")
        assert httpx.get(url).headers["content-type"] == "image/avif"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"quality": "0"}, "quality"),
        ({"quality": "96"}, "quality"),
        ({"quality": "high"}, "quality"),
        ({"output_format": "gif"}, "output_format"),
        ({"max_dimension": "-5"}, "max_dimension"),
        ({"max_dimension": "0"}, "max_dimension"),
    ],
)
def test_bad_options_are_a_400_naming_the_field(
    api_only: Service, csv_text: str, fields: dict[str, str], named: str
) -> None:
    response = upload(api_only, csv_text, **fields)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_options"
    assert error["message"].startswith(f"{named}:")
