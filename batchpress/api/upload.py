from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from batchpress.api.auth import KeyId
from batchpress.api.deps import Ctx
from batchpress.api.errors import ApiError
from batchpress.api.schemas import UploadAccepted, error_responses
from batchpress.config import Settings
from batchpress.db.unit_of_work import unit_of_work
from batchpress.ingest.csv_reader import CsvRejected, iter_products, url_problem
from batchpress.ingest.spool import RowSpool
from batchpress.ingest.store import RequestOptions, store_request
from batchpress.processing.formats import EFFORTS, output_formats

router = APIRouter()

EFFORT_DESCRIPTION = (
    "max (default): the smallest files at the asked quality, from the slower encoders (jpegli and mozjpeg's "
    "lossless scan optimisation for JPEG, oxipng for PNG, WebP method 6); fast: the quicker encoders "
    "(libjpeg-turbo with standard tables, the PNG palette as written, WebP method 4), several times faster per "
    "image but larger files"
)


@router.post(
    "/api/upload/",
    status_code=202,
    response_model=UploadAccepted,
    summary="Upload a CSV of products and image URLs",
    responses=error_responses(400, 401, 413, e400="the CSV breaks a rule; every problem is listed with its line"),
)
def upload_csv(
    key_id: KeyId,
    ctx: Ctx,
    file: Annotated[UploadFile, File(description="CSV: S. No.,Product Name,Input Image Urls")],
    webhook_url: Annotated[
        str | None,
        Form(description="http(s) URL to POST a signed event to when the request finishes (default: the server's)"),
    ] = None,
    quality: Annotated[str | None, Form(description="1 to 95; default 50")] = None,
    output_format: Annotated[
        str | None, Form(description="original (default), jpeg, webp, or avif where the server supports it")
    ] = None,
    max_dimension: Annotated[
        str | None, Form(description="shrink the longer side to at most this many pixels; never enlarges")
    ] = None,
    effort: Annotated[str | None, Form(description=EFFORT_DESCRIPTION)] = None,
) -> UploadAccepted:
    """Validate the whole CSV, store the request in one transaction, then enqueue it; no image is fetched here."""
    # A plain ``def``: FastAPI runs it in a worker thread, so reading and storing a large file never blocks the
    # event loop that answers status reads meanwhile.
    settings = ctx.settings
    options = parse_options(quality, output_format, max_dimension, effort)
    webhook = (webhook_url or "").strip() or settings.webhook_url or None
    if webhook and (problem := url_problem(webhook)):
        raise ApiError(400, "invalid_webhook_url", f"webhook_url: {problem}", [{"field": "webhook_url"}])
    # Stored and pending whatever the broker says: the sweeper enqueues it once the broker answers again.
    with _validated(file, settings) as spool, unit_of_work(ctx.db.session()) as work:
        request_id = store_request(
            work.session,
            spool.chunks(),
            requeue_after_seconds=settings.lease_seconds,
            webhook_url=webhook,
            api_key_id=key_id,
            options=options,
        )
        work.publish(f"request {request_id}", lambda: ctx.queue.request(request_id))
    return UploadAccepted(request_id=request_id)


def _validated(file: UploadFile, settings: Settings) -> RowSpool:
    """The whole CSV read and checked before any write starts, so a file that fails on its last line costs the
    database nothing, and the write transaction (which holds SQLite's single writer lock) only inserts."""
    spool = RowSpool()
    try:
        return spool.extend(
            iter_products(file.file, max_bytes=settings.max_upload_bytes, max_rows=settings.max_csv_rows)
        )
    except CsvRejected as exc:
        spool.close()
        details = [{"line": p.line, "field": p.field, "message": p.message} for p in exc.problems]
        noun = "problem" if exc.total_problems == 1 else "problems"
        raise ApiError(
            exc.status_code,
            "invalid_csv",
            f"the CSV was not accepted: {exc.total_problems} {noun}"
            + (f" (first {len(details)} listed)" if exc.total_problems > len(details) else ""),
            details,
        ) from None
    except BaseException:
        spool.close()
        raise


def parse_options(
    quality: str | None, output_format: str | None, max_dimension: str | None, effort: str | None = None
) -> RequestOptions:
    """Form fields arrive as text; each bad one is a 400 naming the field and what it accepts."""
    problems: list[dict[str, str]] = []
    q = _whole_number(quality, "quality", 1, 95, problems)
    md = _whole_number(max_dimension, "max_dimension", 1, 65_000, problems)
    fmt = _one_of(output_format, "output_format", output_formats(), problems)
    level = _one_of(effort, "effort", EFFORTS, problems)
    if problems:
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise ApiError(400, "invalid_options", message, problems)
    return RequestOptions(quality=q or 50, output_format=fmt, max_dimension=md, effort=level)


def _one_of(text: str | None, field: str, choices: Sequence[str], problems: list[dict[str, str]]) -> str:
    """The value, case-folded, or the first choice (the default) when the field is empty."""
    value = (text or "").strip().lower() or choices[0]
    if value not in choices:
        problems.append({"field": field, "message": f"must be one of {', '.join(choices)}, not {value[:20]!r}"})
    return value


def _whole_number(text: str | None, field: str, low: int, high: int, problems: list[dict[str, str]]) -> int | None:
    if text is None or not text.strip():
        return None
    value = text.strip()
    # ASCII digits only ("²" is a digit to str.isdigit, not to int), and few enough to parse.
    if not (value.isascii() and value.isdigit() and len(value) <= len(str(high))) or not low <= int(value) <= high:
        problems.append({"field": field, "message": f"must be a whole number from {low} to {high}, not {value[:20]!r}"})
        return None
    return int(value)
