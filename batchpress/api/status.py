from __future__ import annotations

import asyncio
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from batchpress.api import status_page
from batchpress.api.auth import api_key_scheme, bearer_scheme, owned_revision, request_key_id
from batchpress.api.schemas import OptionsOut, RequestStatusOut, error_responses, progress_of
from batchpress.api.status_cache import Answer, AnswerCache, accepts_gzip
from batchpress.api.webhook_status import webhook_status
from batchpress.config import Settings
from batchpress.context import Context
from batchpress.db.base import as_utc
from batchpress.db.revisions import WouldWait
from batchpress.models import ProcessingRequest, Product, RequestStatus
from batchpress.storage.presign import window_start
from batchpress.tally import tally
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
        # Renders too, so that readers of big pages cannot crowd out other clients' reads (docs/performance.md);
        # small pages (progress polls, the web page) get a thread of their own, never queued behind big ones.
        self.renders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="status-render")
        self.small_renders = ThreadPoolExecutor(max_workers=1, thread_name_prefix="status-render-small")
        # One render per key at a time: readers arriving meanwhile wait for it instead of rendering it again.
        self.rendering: dict[str, asyncio.Future[Answer]] = {}
        self.summaries = Summaries()
        self.product_ids = status_page.ProductIds()


class Summaries:
    """The latest revisions' summaries (``summarize``), shared by the pages of a revision, a few hundred bytes each."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[uuid.UUID, int], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()  # render threads share it

    def get(self, key: tuple[uuid.UUID, int]) -> dict[str, Any] | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: tuple[uuid.UUID, int], summary: dict[str, Any]) -> None:
        with self._lock:
            self._entries[key] = summary
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


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
            "description": "at most how many products to list; a page also ends before 1 MiB of products' JSON "
            "or 10,000 images, so follow next_offset",
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
    description="Pages list products in CSV order from `offset`: at most `limit` of them, ending sooner before "
    "the products' JSON would pass 1 MiB or 10,000 images (a page always lists at least one product). "
    "`next_offset` is where the next page starts, null after the last product.",
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
    answer = reads.answers.get(key) or await _rendered(ctx, reads, key, rid, revision, offset, limit)
    if gzipped:
        return Response(answer.gzipped, media_type="application/json", headers={**headers, "Content-Encoding": "gzip"})
    return Response(answer.json, media_type="application/json", headers=headers)


# Pages asked for with at most this many products render on their own thread (the web page asks for 50).
SMALL_PAGE = 50


async def _rendered(
    ctx: Context, reads: StatusReads, key: str, rid: uuid.UUID, revision: int, offset: int, limit: int
) -> Answer:
    """The answer rendered on a status thread, or the render of the same key already under way."""
    pending = reads.rendering.get(key)
    if pending is None:
        pool = reads.small_renders if limit <= SMALL_PAGE else reads.renders
        # Read after the revision, so what is rendered is at least as new as the revision it is stored under.
        pending = asyncio.get_running_loop().run_in_executor(
            pool, _render_answer, ctx, reads, rid, revision, offset, limit
        )
        reads.rendering[key] = pending
        pending.add_done_callback(lambda done: _store(reads, key, done))
    # Shielded: a reader that goes away does not cancel the render the others wait for.
    return await asyncio.shield(pending)


def _store(reads: StatusReads, key: str, done: asyncio.Future[Answer]) -> None:
    reads.rendering.pop(key, None)
    if not done.cancelled() and done.exception() is None:
        reads.answers.put(key, done.result())


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


def _render_answer(ctx: Context, reads: StatusReads, rid: uuid.UUID, revision: int, offset: int, limit: int) -> Answer:
    with ctx.db.session(read_only=True) as session:
        summary = reads.summaries.get((rid, revision))
        if summary is None:
            summary = summarize(session, ctx.settings, rid)
            reads.summaries.put((rid, revision), summary)
        ids = reads.product_ids.get(session, rid)
        products, listed = status_page.page_products(session, ctx.storage, ids, offset, limit)
    return Answer.of(page_json(summary, products, listed, offset, limit))


def _etag(settings: Settings, rid: uuid.UUID, revision: int, offset: int, limit: int) -> str:
    # Presigned output URLs change when their signing window turns (storage/presign.py): so does the tag.
    presigned = settings.storage == "s3" and not settings.s3_public_base_url
    epoch = f"-{window_start(settings.s3_presign_seconds)}" if presigned else ""
    return f'"{rid.hex}-{revision}-{offset}-{limit}{epoch}"'


def summarize(session: Session, settings: Settings, rid: uuid.UUID) -> dict[str, Any]:
    """The fields of ``RequestStatusOut`` that every page of one revision shares: all but the products and where
    the page starts and ends. Counting a request's images and products reads an index entry for each of them, so
    it is done once per revision, not once per page."""
    request = session.get_one(ProcessingRequest, rid)
    counted = tally(session, rid)
    return {
        "request_id": rid,
        "status": request.status,
        "created_at": as_utc(request.created_at),
        "updated_at": as_utc(request.updated_at),
        "finished_at": as_utc(request.finished_at) if request.finished_at else None,
        "progress": progress_of(counted),
        "options": OptionsOut(
            quality=request.quality,
            output_format=request.output_format,
            max_dimension=request.max_dimension,
            effort=request.effort,
        ),
        "output_csv_url": None if request.status in RequestStatus.open_states() else output_csv_url(settings, rid),
        "webhook": webhook_status(session, request),
        "total_products": session.scalar(select(func.count()).where(Product.request_id == rid)) or 0,
    }


def page_json(summary: dict[str, Any], products: bytes, listed: int, offset: int, limit: int) -> bytes:
    """The answer: ``RequestStatusOut`` from a revision's summary and the JSON of the page's ``listed`` products."""
    after = offset + listed
    head = RequestStatusOut(
        **summary,
        offset=offset,
        limit=limit,
        next_offset=after if listed and after < summary["total_products"] else None,
        products=[],
    ).model_dump_json()
    # ``products`` is the model's last field: its empty list is replaced by the products' own JSON.
    if not head.endswith('"products":[]}'):
        raise AssertionError("RequestStatusOut.products must be its last field")
    return b"".join((head[:-2].encode(), products, b"]}"))
