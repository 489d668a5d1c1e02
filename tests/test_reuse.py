"""A catalogue sent again: one compression per distinct source, conditional downloads, content-addressed outputs that
keep their URL. In process, through the real pipeline, against a real origin on 127.0.0.1 that counts the bodies it
sends; on SQLite and, in ``.ci/run``'s second pass, on PostgreSQL."""

from __future__ import annotations

import io
import threading
import uuid
from typing import Any

from PIL import Image as PILImage
from sqlalchemy import func, select
from starlette.testclient import TestClient

from batchpress.context import Context
from batchpress.models import Image, StoredOutput
from tests.support.inprocess import api_with_settings, process_inline
from tests.support.photos import make_image
from tests.support.servers import ImageServer
from tests.test_end_to_end import upload_inline

HEADER = "S. No.,Product Name,Input Image Urls\n"


def images_of(context: Context, request_id: str) -> list[Image]:
    with context.db.session(read_only=True) as session:
        return list(
            session.scalars(
                select(Image)
                .where(Image.request_id == uuid.UUID(request_id))
                .order_by(Image.product_id, Image.position)
            )
        )


def run(api: TestClient, context: Context, csv_text: str, **fields: str) -> str:
    if fields:
        response = api.post("/api/upload/", files={"file": ("p.csv", csv_text.encode(), "text/csv")}, data=fields)
        assert response.status_code == 202, response.text
        request_id: str = response.json()["request_id"]
    else:
        request_id = upload_inline(api, csv_text)
    process_inline(context, uuid.UUID(request_id))
    return request_id


def under(counts: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The image server is the session's: only this test's paths."""
    return {path: n for path, n in counts.items() if path.startswith(prefix)}


def status(api: TestClient, request_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = api.get(f"/api/status/{request_id}/").json()
    return answer


def test_a_source_repeated_in_a_request_is_fetched_and_compressed_once(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    logo = image_server.add("/feed/logo.png", make_image("png", 2, (320, 200)), "image/png")
    shoe = image_server.add("/feed/shoe.jpg", make_image("jpeg", 1, (640, 480)))
    gone = image_server.add("/feed/gone.jpg", b"not found", "text/plain", status=404)
    rows = [f'1,Shoe red,"{shoe},{logo}"', f'2,Shoe blue,"{shoe},{logo},{logo}"', f'3,Hat,"{gone},{logo},{gone}"']
    request_id = run(api, context, HEADER + "\n".join(rows) + "\n")

    assert under(image_server.hits, "/feed/") == {"/feed/logo.png": 1, "/feed/shoe.jpg": 1, "/feed/gone.jpg": 1}
    images = images_of(context, request_id)
    assert [i.state for i in images] == ["done", "done", "done", "done", "done", "failed", "done", "failed"]
    by_url: dict[str, set[str | None]] = {}
    for image in images:
        by_url.setdefault(image.input_url, set()).add(image.output_key)
    assert len(by_url[logo]) == len(by_url[shoe]) == 1
    assert [i.reused for i in images] == [None, None, "request", "request", "request", None, "request", None]
    failures = [i for i in images if i.input_url == gone]
    assert all("404" in (i.error or "") for i in failures)
    answer = status(api, request_id)
    assert answer["status"] == "completed_with_errors"
    assert answer["products"][1]["output_image_urls"][1] == answer["products"][1]["output_image_urls"][2]


def test_a_catalogue_sent_again_uses_the_origins_validators(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    urls = [image_server.add(f"/etag/{n}.jpg", make_image("jpeg", n, (480, 360)), validators=True) for n in range(3)]
    csv_text = HEADER + "".join(f"{n + 1},Item {n},{url}\n" for n, url in enumerate(urls))
    first = run(api, context, csv_text)
    second = run(api, context, csv_text)

    # The second run got 304s: no bodies.
    assert under(image_server.bodies, "/etag/") == {f"/etag/{n}.jpg": 1 for n in range(3)}
    asked = under(image_server.conditions, "/etag/").values()
    assert all(a[-1].get("If-None-Match") and a[-1].get("If-Modified-Since") for a in asked)
    before, after = images_of(context, first), images_of(context, second)
    assert [i.reused for i in after] == ["origin"] * 3
    assert [i.output_key for i in before] == [i.output_key for i in after]
    assert [i.input_bytes for i in before] == [i.input_bytes for i in after]
    assert [i.output_bytes for i in before] == [i.output_bytes for i in after]
    urls_before = [p["output_image_urls"] for p in status(api, first)["products"]]
    assert urls_before == [p["output_image_urls"] for p in status(api, second)["products"]]

    # A source that changed at the origin is downloaded and compressed again, under a new key.
    image_server.add("/etag/0.jpg", make_image("jpeg", 0, (400, 300)), validators=True)
    third = images_of(context, run(api, context, csv_text))
    assert image_server.bodies["/etag/0.jpg"] == 2
    assert third[0].reused is None
    assert third[0].output_key != before[0].output_key
    assert [i.reused for i in third[1:]] == ["origin", "origin"]


def test_without_validators_the_same_bytes_reuse_the_output(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    url = image_server.add("/plain/a.jpg", make_image("jpeg", 4, (500, 400)))
    csv_text = f"{HEADER}1,Shoe,{url}\n"
    first = images_of(context, run(api, context, csv_text))[0]
    output = context.settings.images_dir / first.output_key  # type: ignore[operator]
    written = output.stat().st_mtime_ns
    second = images_of(context, run(api, context, csv_text))[0]

    assert image_server.bodies["/plain/a.jpg"] == 2  # no validators: a full download, then a hash
    assert not any(asked for asked in image_server.conditions["/plain/a.jpg"])
    assert second.reused == "content"
    assert second.output_key == first.output_key
    assert output.stat().st_mtime_ns == written  # not compressed nor written again

    # Other options make another output: the recipe names them.
    third = images_of(context, run(api, context, csv_text, quality="80"))[0]
    assert third.reused is None
    assert third.output_key != first.output_key
    with context.db.session(read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(StoredOutput)) == 2


def test_outputs_are_served_immutable_with_a_strong_etag(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    url = image_server.add("/cache/a.jpg", make_image("jpeg", 5, (400, 300)))
    request_id = run(api, context, f"{HEADER}1,Shoe,{url}\n")
    output = status(api, request_id)["products"][0]["output_image_urls"][0]

    served = api.get(output)
    assert served.status_code == 200
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = served.headers["etag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    assert PILImage.open(io.BytesIO(served.content)).size == (400, 300)
    again = api.get(output, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["etag"] == etag

    # An output stored under the per-image keys of before still serves.
    context.storage.save(f"{uuid.uuid4()}/1-1.jpg", served.content, "image/jpeg")
    old = next(p for p in context.settings.images_dir.glob("*/1-1.jpg"))
    kept = api.get(f"/images/{old.parent.name}/1-1.jpg")
    assert kept.status_code == 200
    assert kept.content == served.content
    assert "immutable" not in kept.headers.get("cache-control", "")


def test_validators_are_kept_per_api_key(context: Context, image_server: ImageServer) -> None:
    key_a, key_b = "key-a-" + uuid.uuid4().hex, "key-b-" + uuid.uuid4().hex
    url = image_server.add("/keys/a.jpg", make_image("jpeg", 6, (400, 300)), validators=True)
    csv_text = f"{HEADER}1,Shoe,{url}\n"
    with api_with_settings(context, api_keys=f"{key_a},{key_b}") as keyed:
        requests = []
        for key in (key_a, key_b, key_a):
            response = keyed.post(
                "/api/upload/",
                files={"file": ("p.csv", csv_text.encode(), "text/csv")},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 202, response.text
            requests.append(response.json()["request_id"])
            process_inline(context, uuid.UUID(requests[-1]))

    asked = image_server.conditions["/keys/a.jpg"]
    # Key B's first download names nothing key A's told the origin: it downloads the bytes itself.
    assert [bool(a.get("If-None-Match")) for a in asked] == [False, False, True]
    assert image_server.bodies["/keys/a.jpg"] == 2
    reused = [images_of(context, r)[0].reused for r in requests]
    assert reused == [None, "content", "origin"]


def test_two_requests_racing_on_one_new_source_share_one_output(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    # A slow origin holds both downloads open together, so both workers compress the same new source.
    url = image_server.add("/race/a.jpg", make_image("jpeg", 8, (800, 600)), delay=0.5)
    csv_text = f"{HEADER}1,Shoe,{url}\n"
    requests = [upload_inline(api, csv_text) for _ in range(2)]
    threads = [threading.Thread(target=process_inline, args=(context, uuid.UUID(r))) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert image_server.bodies["/race/a.jpg"] == 2
    first, second = (images_of(context, r)[0] for r in requests)
    assert first.state == second.state == "done"
    assert first.output_key == second.output_key
    with context.db.session(read_only=True) as session:
        recipes = session.execute(select(StoredOutput.recipe, StoredOutput.output_key)).all()
    assert [key for _, key in recipes] == [first.output_key]
    assert sorted(p.name for p in (context.settings.images_dir / "c").iterdir()) == [
        first.output_key.removeprefix("c/")  # type: ignore[union-attr]
    ]
