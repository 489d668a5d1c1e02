from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from batchpress.api.auth import api_key_scheme, bearer_scheme, owned_revision, request_key_id
from batchpress.api.schemas import OptionsOut, ProductStatus, Progress, RequestStatusOut, error_responses
from batchpress.api.status_cache import Answer, AnswerCache, accepts_gzip
from batchpress.api.webhook_status import webhook_status
from batchpress.config import Settings
from batchpress.context import Context
from batchpress.db.base import as_utc
from batchpress.db.revisions import WouldWait
from batchpress.models import Image, ImageState, ProcessingRequest, Product, RequestStatus
from batchpress.storage import ImageStorage, output_url
from batchpress.webhooks.events import output_csv_url

router = APIRouter()
MAX_PAGE = 1000
# Far beyond any request's product count, and inside every database's 64-bit OFFSET.
MAX_OFFSET = 2**31 - 1


class StatusReads:
    """The status route's own state in an API process: answers rendered per revision, and the threads that read
    revisions from a database server."""

    def __init__(self) -> None:
        self.answers = AnswerCache()
        # On PostgreSQL the revision checks run on two threads of their own, not on Starlette's 40-thread pool,
        # where every hop waits on the GIL behind many threads (docs/performance.md).
        self.revision_reads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="status-read")


# FastAPI's solving of parameters and dependencies was a third of this route's time under load
# (docs/performance.md), so it reads its own query and headers: documented here, checked by ``_page`` and
# ``request_key_id``, and refused with the same 401 and 422 answers as every other route.
_DOCUMENTED = {
    "security": [{bearer_scheme.scheme_name: []}, {api_key_scheme.scheme_name: []}],
    "parameters": [
        {
            "name": "offset",
            "in": "query",
            "required": False,
            "description": "first product to list, in CSV order",
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": "how many products to list",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": MAX_PAGE},
        },
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "an ETag from an earlier answer",
            "schema": {"type": "string"},
        },
    ],
}


@router.get(
    "/api/status/{request_id}/",
    response_model=RequestStatusOut,
    summary="A request's status, progress and products (paged)",
    responses={
        200: {
            "headers": {
                "ETag": {"description": "changes whenever the answer does", "schema": {"type": "string"}},
                "Content-Encoding": {"description": "gzip when the request's Accept-Encoding allows it"},
            }
        },
        304: {"description": "unchanged since the ETag sent in If-None-Match"},
        **error_responses(401, 404),
    },
    openapi_extra=_DOCUMENTED,
)
async def request_status(request_id: str, request: Request) -> Response:
    """Answers are rendered once per revision of the request and page, then served from memory after one
    primary-key read (api/status_cache.py); pollers that send the ETag back get a 304 without a body."""
    key_id = request_key_id(request)
    offset, limit = _page(request)
    if_none_match = request.headers.get("if-none-match")
    accept_encoding = request.headers.get("accept-encoding")
    ctx: Context = request.app.state.context
    reads: StatusReads = request.app.state.status_reads
    settings = ctx.settings
    rid, revision = await _owned_revision(ctx, reads, request_id, key_id)
    key = _etag(settings, rid, revision, offset, limit)
    gzipped = accepts_gzip(accept_encoding)
    etag = f'{key[:-1]}-gz"' if gzipped else key  # each encoding of an answer is a representation of its own
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if if_none_match is not None and etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    answer = reads.answers.get(key)
    if answer is None:
        # Read after the revision, so what is rendered is at least as new as the revision it is stored under.
        answer = await run_in_threadpool(_render_answer, ctx, rid, offset, limit)
        reads.answers.put(key, answer)
    if gzipped:
        return Response(answer.gzipped, media_type="application/json", headers={**headers, "Content-Encoding": "gzip"})
    return Response(answer.json, media_type="application/json", headers=headers)


async def _owned_revision(
    ctx: Context, reads: StatusReads, request_id: str, key_id: str | None
) -> tuple[uuid.UUID, int]:
    """On the event loop itself when that cannot wait (SQLite, db/revisions.py), otherwise on a thread."""
    engine = ctx.db.autocommit_engine
    try:
        return owned_revision(engine, request_id, key_id, wait=False)
    except WouldWait:
        return await asyncio.get_running_loop().run_in_executor(
            reads.revision_reads, owned_revision, engine, request_id, key_id
        )


def _page(request: Request) -> tuple[int, int]:
    """``offset`` and ``limit``, checked as FastAPI would check the documented integers."""
    errors: list[dict[str, Any]] = []
    offset = _integer(request, "offset", 0, 0, MAX_OFFSET, errors)
    limit = _integer(request, "limit", MAX_PAGE, 1, MAX_PAGE, errors)
    if errors:
        raise RequestValidationError(errors)
    return offset, limit


def _integer(
    request: Request, name: str, default: int, minimum: int, maximum: int | None, errors: list[dict[str, Any]]
) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        problem = "Input should be a valid integer, unable to parse string as an integer"
    else:
        if value >= minimum and (maximum is None or value <= maximum):
            return value
        problem = (
            f"Input should be greater than or equal to {minimum}"
            if value < minimum
            else f"Input should be less than or equal to {maximum}"
        )
    errors.append({"loc": ("query", name), "msg": problem, "input": raw})
    return default


def _render_answer(ctx: Context, rid: uuid.UUID, offset: int, limit: int) -> Answer:
    with ctx.db.session(read_only=True) as session:
        return Answer.of(render(session, ctx.settings, ctx.storage, rid, offset, limit).model_dump_json().encode())


def _etag(settings: Settings, rid: uuid.UUID, revision: int, offset: int, limit: int) -> str:
    # Presigned output URLs age; the hour in the tag makes clients fetch fresh ones long before they expire.
    presigned = settings.storage == "s3" and not settings.s3_public_base_url
    epoch = f"-{int(time.time() // 3600)}" if presigned else ""
    return f'"{rid.hex}-{revision}-{offset}-{limit}{epoch}"'


def render(
    session: Session, settings: Settings, storage: ImageStorage, rid: uuid.UUID, offset: int, limit: int
) -> RequestStatusOut:
    request = session.get_one(ProcessingRequest, rid)
    tally = session.execute(
        select(
            Image.state,
            func.count(),
            func.coalesce(func.sum(Image.input_bytes), 0),
            func.coalesce(func.sum(Image.output_bytes), 0),
        )
        .where(Image.request_id == rid)
        .group_by(Image.state)
    ).all()
    counts = {state: n for state, n, _, _ in tally}
    done_bytes = next(
        ((int(i or 0), int(o or 0)) for state, _, i, o in tally if state == ImageState.DONE.value), (0, 0)
    )
    total_products = session.scalar(select(func.count()).where(Product.request_id == rid)) or 0
    webhook = webhook_status(session, request)
    products = session.execute(
        select(Product.id, Product.serial_number, Product.product_name)
        .where(Product.request_id == rid)
        .order_by(Product.id)
        .offset(offset)
        .limit(limit)
    ).all()
    images = (
        session.execute(
            select(
                Image.product_id,
                Image.position,
                Image.input_url,
                Image.output_url,
                Image.output_key,
                Image.state,
                Image.error,
                Image.input_bytes,
                Image.output_bytes,
            )
            .where(Image.product_id.in_([p.id for p in products]))
            .order_by(Image.product_id, Image.position)
        ).all()
        if products
        else []
    )
    by_product = {pid: list(rows) for pid, rows in groupby(images, key=lambda r: r.product_id)}
    done = counts.get(ImageState.DONE.value, 0)
    failed = counts.get(ImageState.FAILED.value, 0)
    total = sum(counts.values())
    return RequestStatusOut(
        request_id=rid,
        status=request.status,
        created_at=as_utc(request.created_at),
        updated_at=as_utc(request.updated_at),
        finished_at=as_utc(request.finished_at) if request.finished_at else None,
        progress=Progress(
            total_images=total,
            processed=done,
            failed=failed,
            pending=total - done - failed,
            bytes_in=done_bytes[0],
            bytes_out=done_bytes[1],
        ),
        options=OptionsOut(
            quality=request.quality, output_format=request.output_format, max_dimension=request.max_dimension
        ),
        output_csv_url=None if request.status in RequestStatus.open_states() else output_csv_url(settings, rid),
        webhook=webhook,
        total_products=total_products,
        offset=offset,
        limit=limit,
        products=[
            ProductStatus(
                serial_number=p.serial_number,
                product_name=p.product_name,
                input_image_urls=[i.input_url for i in by_product.get(p.id, [])],
                output_image_urls=[output_url(storage, i.output_key, i.output_url) for i in by_product.get(p.id, [])],
                errors=[
                    f"image {i.position + 1} ({i.input_url}): {i.error}"
                    for i in by_product.get(p.id, [])
                    if i.state == ImageState.FAILED.value
                ],
                bytes_in=sum(i.input_bytes or 0 for i in by_product.get(p.id, []) if i.state == ImageState.DONE.value),
                bytes_out=sum(
                    i.output_bytes or 0 for i in by_product.get(p.id, []) if i.state == ImageState.DONE.value
                ),
            )
            for p in products
        ],
    )
