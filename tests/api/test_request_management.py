"""Managing requests (#23): the list, newest first and paged, and cancel, including a cancel racing the last image's
result. In process against a migrated database: SQLite, and PostgreSQL in ``.ci/run``'s second pass."""

from __future__ import annotations

import datetime as dt
import errno
import os
import uuid
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from batchpress.context import Context
from batchpress.db.base import utcnow
from batchpress.lifecycle.delete import delete_requests
from batchpress.lifecycle.finish import finish
from batchpress.lifecycle.sweep import keep_storage_bounded
from batchpress.models import DoomedOutput, Image, ProcessingRequest, SourceValidator, StoredOutput, WebhookEvent
from batchpress.processing.leases import claim_images, new_token, requeue_expired
from batchpress.processing.results import Compressed, record_results
from batchpress.storage import ImageStorage
from tests.support.inprocess import api_with_settings, process_inline
from tests.support.photos import make_image
from tests.support.servers import ImageServer, free_port

HEADER = "S. No.,Product Name,Input Image Urls\n"


def upload(api: TestClient, images: int = 2, headers: dict[str, str] | None = None, **fields: str) -> str:
    # A loopback port nobody listens on: with no worker, nothing fetches it.
    urls = ",".join(f"http://127.0.0.1:{free_port()}/{n}.jpg" for n in range(images))
    csv = f'{HEADER}1,Shoe,"{urls}"\n'
    response = api.post(
        "/api/upload/", files={"file": ("p.csv", csv.encode(), "text/csv")}, data=fields, headers=headers or {}
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def listed(api: TestClient, **params: Any) -> dict[str, Any]:
    response = api.get("/api/requests/", params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_requests_are_listed_newest_first_a_page_at_a_time(api: TestClient, context: Context) -> None:
    ids = [upload(api, images=n + 1) for n in range(5)]
    first = listed(api, limit=2)
    assert [r["request_id"] for r in first["requests"]] == ids[::-1][:2]
    second = listed(api, limit=2, cursor=first["next_cursor"])
    third = listed(api, limit=2, cursor=second["next_cursor"])
    assert [r["request_id"] for r in second["requests"] + third["requests"]] == ids[::-1][2:]
    assert third["next_cursor"] is None
    entry = first["requests"][0]
    assert entry["status"] == "pending"
    assert entry["finished_at"] is None
    assert entry["progress"]["total_images"] == 5
    assert entry["status_url"].endswith(f"/api/status/{ids[-1]}/")

    api.post(f"/api/requests/{ids[0]}/cancel/")
    cancelled = listed(api, status="cancelled")["requests"]
    assert [r["request_id"] for r in cancelled] == [ids[0]]
    assert cancelled[0]["finished_at"] is not None
    assert len(listed(api, status="pending")["requests"]) == 4


def test_bad_list_parameters_are_400s_that_name_them(api: TestClient) -> None:
    for params, named in (({"status": "done"}, "status"), ({"cursor": "not-a-cursor"}, "cursor")):
        response = api.get("/api/requests/", params=params)
        assert response.status_code == 400, response.text
        assert named in response.json()["error"]["message"]
    assert api.get("/api/requests/", params={"limit": "0"}).status_code in (400, 422)
    assert api.get("/api/requests/", params={"limit": "101"}).status_code in (400, 422)


def test_with_api_keys_each_key_lists_only_its_own(context: Context) -> None:
    key_a, key_b = "key-a-" + uuid.uuid4().hex, "key-b-" + uuid.uuid4().hex
    with api_with_settings(context, api_keys=f"{key_a},{key_b}") as keyed:
        mine = [upload(keyed, headers={"Authorization": f"Bearer {key_a}"}) for _ in range(2)]
        theirs = upload(keyed, headers={"Authorization": f"Bearer {key_b}"})
        seen = keyed.get("/api/requests/", headers={"Authorization": f"Bearer {key_a}"}).json()["requests"]
        assert [r["request_id"] for r in seen] == mine[::-1]
        assert keyed.get("/api/requests/").status_code == 401
        # Another key's request is not found, as in the status.
        refused = keyed.post(f"/api/requests/{theirs}/cancel/", headers={"Authorization": f"Bearer {key_a}"})
        assert refused.status_code == 404


def test_cancel_fails_what_has_not_started_and_ends_cancelled(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    request_id = upload(api, images=3, webhook_url="https://hooks.example.com/done")
    answer = api.post(f"/api/requests/{request_id}/cancel/")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled"
    assert answer.json()["progress"] == answer.json()["progress"] | {"failed": 3, "pending": 0, "processed": 0}

    status = api.get(f"/api/status/{request_id}/").json()
    assert status["status"] == "cancelled"
    assert status["products"][0]["errors"][0].endswith("cancelled before it was processed")
    with context.db.session(read_only=True) as session:
        event = session.scalar(select(WebhookEvent).where(WebhookEvent.request_id == uuid.UUID(request_id)))
        assert event is not None
        assert event.type == "request.cancelled"
    # Again is harmless; a request that finished otherwise is a conflict.
    again = api.post(f"/api/requests/{request_id}/cancel/")
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"
    url = image_server.add("/manage/done.jpg", make_image("jpeg", 2, (320, 240)))
    files = {"file": ("p.csv", f"{HEADER}1,Shoe,{url}\n".encode(), "text/csv")}
    done = api.post("/api/upload/", files=files).json()["request_id"]
    process_inline(context, uuid.UUID(done))
    conflict = api.post(f"/api/requests/{done}/cancel/")
    assert conflict.status_code == 409
    assert "completed" in conflict.json()["error"]["message"]
    assert api.post(f"/api/requests/{uuid.uuid4()}/cancel/").status_code == 404


def test_a_cancel_racing_the_last_result_is_one_or_the_other(api: TestClient, context: Context) -> None:
    in_flight = upload(api, images=2)
    with context.db.session() as session:
        ids = list(session.scalars(select(Image.id).where(Image.request_id == uuid.UUID(in_flight))))
        token = new_token()
        claim_images(session, ids[:1], token=token, lease_seconds=60, max_attempts=3)
    # Cancelled while one image is in flight: the other fails at once, the request stays open for the first.
    assert api.post(f"/api/requests/{in_flight}/cancel/").json()["status"] in ("pending", "processing")
    with context.db.session() as session:
        record_results(session, [(ids[0], Compressed("https://cdn.example/a.jpg", 900, 300))], token=token)
    finish(context.db, uuid.UUID(in_flight), settings=context.settings, enqueue_event=lambda _: None)
    status = api.get(f"/api/status/{in_flight}/").json()
    assert status["status"] == "cancelled"
    assert (status["progress"]["processed"], status["progress"]["failed"]) == (1, 1)

    # The other order: the last result finishes the request first, and the cancel then finds it finished.
    finished = upload(api, images=1)
    with context.db.session() as session:
        (image_id,) = session.scalars(select(Image.id).where(Image.request_id == uuid.UUID(finished)))
        token = new_token()
        claim_images(session, [image_id], token=token, lease_seconds=60, max_attempts=3)
        record_results(session, [(image_id, Compressed("https://cdn.example/b.jpg", 900, 300))], token=token)
    finish(context.db, uuid.UUID(finished), settings=context.settings, enqueue_event=lambda _: None)
    assert api.post(f"/api/requests/{finished}/cancel/").status_code == 409
    assert api.get(f"/api/status/{finished}/").json()["status"] == "completed"


def product_csv(*urls: str) -> str:
    return f'{HEADER}1,Shoe,"{",".join(urls)}"\n'


def uploaded_csv(api: TestClient, csv_text: str, **fields: str) -> str:
    response = api.post("/api/upload/", files={"file": ("p.csv", csv_text.encode(), "text/csv")}, data=fields)
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def events_of(context: Context, request_id: str) -> list[WebhookEvent]:
    with context.db.session(read_only=True) as session:
        query = select(WebhookEvent).where(WebhookEvent.request_id == uuid.UUID(request_id))
        return list(session.scalars(query.order_by(WebhookEvent.created_at)))


def test_retry_queues_the_failed_images_again_and_sends_a_new_event(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    good = image_server.add("/retry/good.jpg", make_image("jpeg", 1, (320, 240)))
    flaky = image_server.add("/retry/flaky.jpg", b"down for an hour", "text/plain", status=404)
    request_id = uploaded_csv(api, product_csv(good, flaky, flaky), webhook_url="https://hooks.example.com/done")
    assert api.post(f"/api/requests/{request_id}/retry/").status_code == 409  # still open
    process_inline(context, uuid.UUID(request_id))
    assert api.get(f"/api/status/{request_id}/").json()["status"] == "completed_with_errors"
    with context.db.session() as session:  # its webhook had already failed for good
        session.execute(
            update(WebhookEvent).where(WebhookEvent.request_id == uuid.UUID(request_id)).values(state="failed")
        )

    image_server.add("/retry/flaky.jpg", make_image("jpeg", 3, (320, 240)))  # the origin is back
    answer = api.post(f"/api/requests/{request_id}/retry/")
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "processing"
    assert answer.json()["progress"]["pending"] == 2
    process_inline(context, uuid.UUID(request_id))

    status = api.get(f"/api/status/{request_id}/").json()
    assert status["status"] == "completed"
    assert all(status["products"][0]["output_image_urls"])
    assert status["products"][0]["reused"][2] == "same source in this request"
    old, new = events_of(context, request_id)
    assert (old.type, old.state) == ("request.completed_with_errors", "failed")
    assert new.type == "request.completed"
    assert new.id != old.id
    assert status["webhook"]["event_id"] == new.id
    csv_rows = api.get(f"/api/requests/{request_id}/output.csv").text.splitlines()
    assert csv_rows[1].count("http://127.0.0.1:8000/images/c/") == 3
    # A request with nothing failed has nothing to retry.
    again = api.post(f"/api/requests/{request_id}/retry/")
    assert again.status_code == 409
    assert "no failed image" in again.json()["error"]["message"]


def test_delete_removes_only_the_outputs_no_other_request_lists(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    a = image_server.add("/delete/a.jpg", make_image("jpeg", 4, (320, 240)))
    b = image_server.add("/delete/b.jpg", make_image("jpeg", 5, (400, 300)))
    first = uploaded_csv(api, product_csv(a))
    second = uploaded_csv(api, product_csv(a, b))
    assert api.delete(f"/api/requests/{first}/").status_code == 409  # open: cancel it first
    for request_id in (first, second):
        process_inline(context, uuid.UUID(request_id))
    outputs = context.settings.images_dir / "c"
    previews = context.settings.images_dir / "p"
    assert len(list(outputs.iterdir())) == 2
    assert len(list(previews.iterdir())) == 4  # before and after, of each

    assert api.delete(f"/api/requests/{first}/").status_code == 204
    assert api.get(f"/api/status/{first}/").status_code == 404
    assert api.delete(f"/api/requests/{first}/").status_code == 404
    assert len(list(outputs.iterdir())) == 2  # a is still listed by the second request
    assert len(list(previews.iterdir())) == 4
    product = api.get(f"/api/status/{second}/").json()["products"][0]
    for field in ("output_image_urls", "input_preview_urls", "output_preview_urls"):
        for url in product[field]:
            assert api.get(url).status_code == 200

    assert api.delete(f"/api/requests/{second}/").status_code == 204
    assert list(outputs.iterdir()) == []
    assert list(previews.iterdir()) == []
    with context.db.session(read_only=True) as session:
        assert session.scalars(select(StoredOutput)).all() == []
        assert session.scalars(select(DoomedOutput)).all() == []
        assert session.scalars(select(Image)).all() == []


def test_a_crash_between_the_rows_and_the_objects_leaves_work_the_sweeper_finishes(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    url = image_server.add("/crashed-delete/a.jpg", make_image("jpeg", 6, (320, 240)))
    request_id = uploaded_csv(api, product_csv(url))
    process_inline(context, uuid.UUID(request_id))
    with context.db.session() as session:  # the rows go; the process dies before the objects do
        delete_requests(session, [uuid.UUID(request_id)])
    outputs = context.settings.images_dir / "c"
    assert len(list(outputs.iterdir())) == 1
    keep_storage_bounded(context.db, context.settings, context.storage)
    assert list(outputs.iterdir()) == []
    assert list((context.settings.images_dir / "p").iterdir()) == []


def test_retention_deletes_finished_requests_older_than_its_days(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    old_url = image_server.add("/retention/old.jpg", make_image("jpeg", 7, (320, 240)))
    new_url = image_server.add("/retention/new.jpg", make_image("jpeg", 8, (320, 240)))
    shared = image_server.add("/retention/shared.jpg", make_image("jpeg", 11, (320, 240)))
    old, new = uploaded_csv(api, product_csv(old_url, shared)), uploaded_csv(api, product_csv(new_url, shared))
    for request_id in (old, new):
        process_inline(context, uuid.UUID(request_id))
    still_open = upload(api, images=1)  # after: the in-process worker takes any request's turn
    with context.db.session() as session:
        long_ago = utcnow() - dt.timedelta(days=31)
        session.execute(
            update(ProcessingRequest)
            .where(ProcessingRequest.id.in_([uuid.UUID(old), uuid.UUID(still_open)]))
            .values(finished_at=long_ago, created_at=long_ago)
        )
        old_validator = {"etag": '"v1"', "source_hash": "ab" * 32, "source_bytes": 1, "updated_at": long_ago}
        session.add(SourceValidator(scope="", url_hash="cd" * 32, **old_validator))
    keeps_all = context.settings.model_copy(update={"retention_days": 0})
    assert keep_storage_bounded(context.db, keeps_all, context.storage) == 0

    assert keep_storage_bounded(context.db, context.settings, context.storage) == 1
    assert api.get(f"/api/status/{old}/").status_code == 404
    assert api.get(f"/api/status/{new}/").status_code == 200
    assert api.get(f"/api/status/{still_open}/").status_code == 200  # open requests are never expired
    # The old request's own output went; the one the new request also lists stayed.
    assert len(list((context.settings.images_dir / "c").iterdir())) == 2
    for url in api.get(f"/api/status/{new}/").json()["products"][0]["output_image_urls"]:
        assert api.get(url).status_code == 200
    with context.db.session(read_only=True) as session:  # what origins said long ago is forgotten too
        kept = session.scalars(select(SourceValidator.url_hash)).all()
    assert "cd" * 32 not in kept
    assert len(kept) == 3  # the recent downloads' stay


class FullDisk:
    """Storage on a volume that is full for its first ``failures`` writes: each raises ENOSPC, as a real one would."""

    def __init__(self, inner: ImageStorage, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def save(self, key: str, data: bytes, content_type: str) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), key)
        return self.inner.save(key, data, content_type)

    def url_for(self, key: str) -> str:
        return self.inner.url_for(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def test_a_full_disk_leaves_the_images_to_retry_and_loses_nothing(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    urls = [image_server.add(f"/full/{n}.jpg", make_image("jpeg", 10 + n, (320, 240))) for n in range(2)]
    request_id = uploaded_csv(api, product_csv(*urls))
    full = replace(context, storage=FullDisk(context.storage, failures=1))
    with pytest.raises(OSError, match="No space left"):
        process_inline(full, uuid.UUID(request_id))
    with context.db.session(read_only=True) as session:
        states = set(session.scalars(select(Image.state).where(Image.request_id == uuid.UUID(request_id))))
    assert "failed" not in states  # left to retry, not failed for good
    with context.db.session() as session:  # the worker's lease lapses, as it would after lease_seconds
        session.execute(update(Image).where(Image.request_id == uuid.UUID(request_id)).values(lease_until=utcnow()))
        requeue_expired(session, lease_seconds=60, max_attempts=5, pending=True)
    process_inline(full, uuid.UUID(request_id))  # the disk has room again
    status = api.get(f"/api/status/{request_id}/").json()
    assert status["status"] == "completed"
    assert all(status["products"][0]["output_image_urls"])


def test_an_output_made_again_before_its_purge_is_kept(
    api: TestClient, context: Context, image_server: ImageServer
) -> None:
    url = image_server.add("/again/a.jpg", make_image("jpeg", 9, (320, 240)))
    first = uploaded_csv(api, product_csv(url))
    process_inline(context, uuid.UUID(first))
    with context.db.session() as session:  # deleted, and its output doomed, but not purged yet
        (doomed,) = delete_requests(session, [uuid.UUID(first)])
    second = uploaded_csv(api, product_csv(url))
    process_inline(context, uuid.UUID(second))  # the same source again: the same key, taken off the doomed list

    keep_storage_bounded(context.db, context.settings, context.storage)
    status = api.get(f"/api/status/{second}/").json()
    (output,) = status["products"][0]["output_image_urls"]
    assert output.endswith(doomed.removeprefix("c/"))
    assert api.get(output).status_code == 200
    with context.db.session(read_only=True) as session:
        assert session.scalars(select(DoomedOutput)).all() == []
