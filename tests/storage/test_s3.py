"""S3 storage against moto's standalone server: a real S3 HTTP API on 127.0.0.1, driven through boto3."""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from batchpress.config import Settings
from batchpress.storage.s3 import S3Storage, StorageUnavailable
from tests.conftest import StartService
from tests.support.moto import Moto, moto_server
from tests.support.photos import make_image
from tests.support.servers import ImageServer


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    with moto_server() as server:
        yield server


def storage_for(moto: Moto, bucket: str, **overrides: Any) -> S3Storage:
    settings = Settings(
        storage="s3",
        s3_bucket=bucket,
        s3_endpoint_url=moto.endpoint,
        s3_access_key_id="test",
        s3_secret_access_key="test",
        **overrides,
    )
    return S3Storage.from_settings(settings)


def test_saving_a_key_twice_leaves_one_object_served_at_the_public_url(moto: Moto) -> None:
    bucket = moto.new_bucket()
    moto.make_public(bucket)
    storage = storage_for(moto, bucket, s3_prefix="/outputs/", s3_public_base_url=f"{moto.endpoint}/{bucket}/")

    storage.save("req/1-1.jpg", b"first attempt", "image/jpeg")
    url = storage.save("req/1-1.jpg", b"second attempt", "image/jpeg")

    assert url == f"{moto.endpoint}/{bucket}/outputs/req/1-1.jpg"
    assert moto.keys(bucket) == ["outputs/req/1-1.jpg"]
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b"second attempt"
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_presigned_url_carries_the_configured_lifetime_and_downloads(moto: Moto) -> None:
    bucket = moto.new_bucket()
    storage = storage_for(moto, bucket, s3_prefix="p", s3_presign_seconds=900)

    url = storage.save("req/2-1.webp", b"webp bytes", "image/webp")

    assert url.startswith(f"{moto.endpoint}/{bucket}/p/req/2-1.webp?")
    assert "X-Amz-Signature=" in url
    assert "X-Amz-Expires=900" in url
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b"webp bytes"
    assert response.headers["content-type"] == "image/webp"


def test_the_api_signs_each_url_once_a_window(moto: Moto) -> None:
    """An API process remembers the URLs it signed: a status page re-rendered while its batch runs signs only its new
    outputs. A worker's storage remembers none."""
    bucket = moto.new_bucket()
    settings = Settings(
        storage="s3", s3_bucket=bucket, s3_endpoint_url=moto.endpoint, s3_access_key_id="t", s3_secret_access_key="t"
    )
    api = S3Storage.from_settings(settings, remember_urls=2)
    signed = [api.url_for(key) for key in ("c/a.jpg", "p/a-before.webp", "c/a.jpg", "p/a-before.webp")]
    assert signed[:2] == signed[2:]
    info = api._presigned.cache_info()  # type: ignore[attr-defined]
    assert (info.hits, info.misses) == (2, 2)
    for url in signed[:2]:
        assert httpx.get(url).status_code == 404  # valid signatures: the objects are just not there
    worker = S3Storage.from_settings(settings)
    assert worker.url_for("c/a.jpg") == signed[0]
    assert not hasattr(worker._presigned, "cache_info")


def test_check_names_a_missing_bucket(moto: Moto) -> None:
    assert storage_for(moto, moto.new_bucket()).check() is None
    with pytest.raises(StorageUnavailable, match=r"'no-such-bucket-x'.*does not exist"):
        storage_for(moto, "no-such-bucket-x").check()


def test_s3_storage_without_a_bucket_is_refused_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATCHPRESS_S3_BUCKET", raising=False)
    monkeypatch.setenv("BATCHPRESS_STORAGE", "s3")
    with pytest.raises(ValueError, match="BATCHPRESS_S3_BUCKET"):
        Settings()
    with pytest.raises(ValueError, match="BATCHPRESS_S3_SECRET_ACCESS_KEY"):
        Settings(s3_bucket="b", s3_access_key_id="only-the-id")
    with pytest.raises(ValueError, match="s3_presign_seconds"):
        Settings(s3_bucket="b", s3_presign_seconds=604_801)


def test_batch_outputs_land_in_s3_behind_presigned_urls(
    moto: Moto, start_service: StartService, image_server: ImageServer
) -> None:
    bucket = moto.new_bucket()
    service = start_service(
        BATCHPRESS_STORAGE="s3",
        BATCHPRESS_S3_BUCKET=bucket,
        BATCHPRESS_S3_PREFIX="compressed",
        BATCHPRESS_S3_ENDPOINT_URL=moto.endpoint,
        BATCHPRESS_S3_ACCESS_KEY_ID="test",
        BATCHPRESS_S3_SECRET_ACCESS_KEY="test",
        BATCHPRESS_S3_PRESIGN_SECONDS="3600",
    )
    urls = [image_server.add(f"/s3/{i}.jpg", make_image("jpeg", i, (640, 480))) for i in range(6)]
    rows = "\n".join(f'{i + 1},Item {i},"{urls[2 * i]},{urls[2 * i + 1]}"' for i in range(3))
    request_id = service.upload(f"S. No.,Product Name,Input Image Urls\n{rows}\n").json()["request_id"]

    status = service.wait_until(request_id, timeout=90)

    assert status["status"] == "completed", service.log()
    outputs = [url for product in status["products"] for url in product["output_image_urls"]]
    assert len(outputs) == 6
    for url in outputs:
        # Content keys (processing/reuse.py): the same source and options get this URL in every request.
        assert url.startswith(f"{moto.endpoint}/{bucket}/compressed/c/")
        assert "X-Amz-Signature=" in url
        assert "X-Amz-Expires=3600" in url
        response = httpx.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["etag"]
        with Image.open(io.BytesIO(response.content)) as im:
            assert (im.format, im.size) == ("JPEG", (640, 480))
    previews = [url for p in status["products"] for side in ("input", "output") for url in p[f"{side}_preview_urls"]]
    assert len(previews) == 12
    for url in previews:
        assert url.startswith(f"{moto.endpoint}/{bucket}/compressed/p/")
        response = httpx.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/webp"
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        with Image.open(io.BytesIO(response.content)) as im:
            assert (im.format, im.size) == ("WEBP", (320, 240))
    # Signed as of a fixed window's start: a read a second later (in either API process) gives the same URLs, so
    # browsers and CDNs can cache them.
    time.sleep(1.1)
    again = httpx.get(f"{service.base_url}/api/status/{request_id}/", timeout=10).json()
    assert [url for p in again["products"] for url in p["output_image_urls"]] == outputs
    again_previews = [url for p in again["products"] for s in ("input", "output") for url in p[f"{s}_preview_urls"]]
    assert again_previews == previews
    signed_at = dt.datetime.strptime(httpx.URL(outputs[0]).params["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    assert signed_at.replace(tzinfo=dt.UTC).timestamp() % 1800 == 0  # 3600-s URLs: half-hour windows
    keys = moto.keys(bucket, prefix="compressed/c/")
    # One object per distinct output: sources with the same bytes share theirs.
    assert sorted(keys) == sorted({httpx.URL(url).path.removeprefix(f"/{bucket}/") for url in outputs})
    assert all(key.endswith(".jpg") for key in keys)
    assert httpx.get(f"{service.base_url}/images/{request_id}/1-1.jpg").status_code == 404
