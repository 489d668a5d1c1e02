from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from batchpress.api.auth import KeyId
from batchpress.api.errors import ApiError
from batchpress.api.schemas import UploadAccepted, error_responses
from batchpress.config import get_settings
from batchpress.db.engine import session_scope
from batchpress.ingest.csv_reader import CsvRejected, read_products, url_problem
from batchpress.ingest.store import store_request
from batchpress.processing.tasks import enqueue_request

log = logging.getLogger(__name__)
router = APIRouter()


@router.post(
    "/api/upload/",
    status_code=202,
    response_model=UploadAccepted,
    summary="Upload a CSV of products and image URLs",
    responses=error_responses(400, 401, 413, e400="the CSV breaks a rule; every problem is listed with its line"),
)
def upload_csv(
    key_id: KeyId,
    file: Annotated[UploadFile, File(description="CSV: S. No.,Product Name,Input Image Urls")],
    webhook_url: Annotated[
        str | None,
        Form(description="http(s) URL to POST a signed event to when the request finishes (default: the server's)"),
    ] = None,
) -> UploadAccepted:
    """Validate the whole CSV, store the request in one transaction, then enqueue it; no image is fetched here."""
    settings = get_settings()
    webhook = (webhook_url or "").strip() or settings.webhook_url or None
    if webhook and (problem := url_problem(webhook)):
        raise ApiError(400, "invalid_webhook_url", f"webhook_url: {problem}", [{"field": "webhook_url"}])
    try:
        rows = read_products(file.file, max_bytes=settings.max_upload_bytes, max_rows=settings.max_csv_rows)
    except CsvRejected as exc:
        details = [{"line": p.line, "field": p.field, "message": p.message} for p in exc.problems]
        noun = "problem" if exc.total_problems == 1 else "problems"
        raise ApiError(
            exc.status_code,
            "invalid_csv",
            f"the CSV was not accepted: {exc.total_problems} {noun}"
            + (f" (first {len(details)} listed)" if exc.total_problems > len(details) else ""),
            details,
        ) from None
    with session_scope() as session:
        request_id = store_request(
            session, rows, requeue_after_seconds=settings.lease_seconds, webhook_url=webhook, api_key_id=key_id
        )
    try:
        enqueue_request(request_id)
    except Exception:
        # Stored and pending: the sweeper enqueues it once the broker answers again.
        log.warning("could not enqueue request %s; the sweeper will retry", request_id, exc_info=True)
    return UploadAccepted(request_id=request_id)
