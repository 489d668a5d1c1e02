"""Previews in the status (#24): each compressed image lists a small WebP of its input and of its output, served for
ever-caching; repeats and reuses list the previews of the output they took. In process against a migrated database:
SQLite, and PostgreSQL in ``.ci/run``'s second pass."""

from __future__ import annotations

import uuid
from io import BytesIO
from typing import Any

from PIL import Image
from starlette.testclient import TestClient

from batchpress.context import Context
from tests.support.inprocess import api_client, process_inline, service_context
from tests.support.photos import make_image
from tests.support.servers import ImageServer

HEADER = "S. No.,Product Name,Input Image Urls\n"


def uploaded(api: TestClient, *rows: list[str]) -> str:
    lines = "".join(f'{n},Product {n},"{",".join(urls)}"\n' for n, urls in enumerate(rows, 1))
    response = api.post("/api/upload/", files={"file": ("p.csv", (HEADER + lines).encode(), "text/csv")})
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def products(api: TestClient, request_id: str) -> list[dict[str, Any]]:
    answer = api.get(f"/api/status/{request_id}/").json()
    assert answer["status"] in ("completed", "completed_with_errors"), answer["status"]
    found: list[dict[str, Any]] = answer["products"]
    return found


def test_each_compressed_image_lists_previews_of_its_input_and_output(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    photo = image_server.add(f"/previews/{tag}/shoe.jpg", make_image("exif_rotated_jpeg", 0, (1200, 900)))
    cut_out = image_server.add(f"/previews/{tag}/bag.png", make_image("png_alpha", 1, (800, 800)))
    broken = image_server.add(f"/previews/{tag}/broken.jpg", b"not a picture", "image/jpeg")
    first = uploaded(api, [photo, cut_out, broken], [photo])
    process_inline(context, uuid.UUID(first))
    shoe, again = products(api, first)

    assert shoe["input_preview_urls"][2] is None  # failed: nothing to show
    assert shoe["output_preview_urls"][2] is None
    for n, size in ((0, (320, 240)), (1, (320, 320))):
        for field in ("input_preview_urls", "output_preview_urls"):
            url = shoe[field][n]
            assert url.startswith(f"{context.settings.public_base_url}/images/p/")
            response = api.get(url)
            assert response.status_code == 200
            assert response.headers["content-type"] == "image/webp"
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert api.get(url, headers={"If-None-Match": response.headers["etag"]}).status_code == 304
            assert len(response.content) < 20_000
            with Image.open(BytesIO(response.content)) as im:
                assert (im.format, im.size) == ("WEBP", size)  # upright: the photo is stored turned
                assert ("A" in im.mode) == (n == 1)
    assert shoe["input_preview_urls"][0] != shoe["output_preview_urls"][0]
    # The same photo later in the request takes the first one's output, and its previews.
    assert again["reused"] == ["same source in this request"]
    assert again["input_preview_urls"] == shoe["input_preview_urls"][:1]
    assert again["output_preview_urls"] == shoe["output_preview_urls"][:1]

    # Sent again, the catalogue reuses its outputs, previews and all.
    second = uploaded(api, [photo, cut_out])
    process_inline(context, uuid.UUID(second))
    (resent,) = products(api, second)
    assert all(resent["reused"])
    assert resent["input_preview_urls"] == shoe["input_preview_urls"][:2]
    assert resent["output_preview_urls"] == shoe["output_preview_urls"][:2]


def test_with_previews_off_none_are_made_or_listed(context: Context, image_server: ImageServer) -> None:
    url = image_server.add(f"/previews/{uuid.uuid4().hex[:8]}/off.jpg", make_image("jpeg", 2, (640, 480)))
    settings = context.settings
    with (
        service_context(settings.data_dir, settings.database_url, migrate=False, previews=False) as off,
        api_client(off) as api,
    ):
        request_id = uploaded(api, [url])
        process_inline(off, uuid.UUID(request_id))
        (product,) = products(api, request_id)
    assert product["output_image_urls"][0]
    assert product["input_preview_urls"] == [None]
    assert product["output_preview_urls"] == [None]
    assert not (settings.images_dir / "p").exists()
