"""Managing requests: the list, newest first; cancel, retry and delete one."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import and_, or_, select

from batchpress.api.auth import KeyId, owned_request
from batchpress.api.deps import Ctx
from batchpress.api.errors import ApiError
from batchpress.api.schemas import RequestList, RequestSummary, error_responses, progress_of
from batchpress.db.base import as_utc
from batchpress.db.revisions import bump_revision
from batchpress.db.unit_of_work import unit_of_work
from batchpress.lifecycle.delete import delete_requests, purge
from batchpress.lifecycle.finish import finish
from batchpress.lifecycle.transitions import cancel_request, retry_request
from batchpress.models import ProcessingRequest, RequestStatus
from batchpress.tally import Tally, tallies
from batchpress.webhooks.events import status_url

router = APIRouter()
MAX_LIST = 100
STATUSES = tuple(s.value for s in RequestStatus)


@router.get(
    "/api/requests/",
    response_model=RequestList,
    summary="List requests, newest first",
    description="With API keys on, only the caller's. Pages follow `next_cursor` until it is null.",
    responses=error_responses(400, 401),
)
def list_requests(
    key_id: KeyId,
    ctx: Ctx,
    status: Annotated[str | None, Query(description=f"only requests in this status: {', '.join(STATUSES)}")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST, description="requests a page")] = 20,
    cursor: Annotated[str | None, Query(description="the next_cursor of the page before")] = None,
) -> RequestList:
    if status is not None and status not in STATUSES:
        raise ApiError(400, "invalid_status", f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    query = select(ProcessingRequest).order_by(ProcessingRequest.created_at.desc(), ProcessingRequest.id.desc())
    if key_id is not None:
        query = query.where(ProcessingRequest.api_key_id == key_id)
    if status is not None:
        query = query.where(ProcessingRequest.status == status)
    if cursor is not None:
        created, rid = _parse_cursor(cursor)
        query = query.where(
            or_(
                ProcessingRequest.created_at < created,
                and_(ProcessingRequest.created_at == created, ProcessingRequest.id < rid),
            )
        )
    with ctx.db.session(read_only=True) as session:
        found = list(session.scalars(query.limit(limit + 1)))
        page = found[:limit]
        counted = tallies(session, [r.id for r in page])
        summaries = [_summary_of(ctx, r, counted[r.id]) for r in page]
    last = page[-1] if len(found) > limit else None
    return RequestList(requests=summaries, next_cursor=_cursor(last.created_at, last.id) if last else None)


def _cursor(created: dt.datetime, rid: uuid.UUID) -> str:
    text = f"{as_utc(created).isoformat()}|{rid}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, rid = text.split("|")
        return as_utc(dt.datetime.fromisoformat(created)), uuid.UUID(rid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "cursor is not a next_cursor this API gave") from None


@router.post(
    "/api/requests/{request_id}/cancel/",
    response_model=RequestSummary,
    summary="Cancel a request: images not started are cancelled, those in flight finish",
    description="The request ends `cancelled` once its images in flight have finished; calling again is harmless.",
    responses=error_responses(401, 404, 409, e409="the request has already finished"),
)
def cancel(request_id: str, key_id: KeyId, ctx: Ctx) -> RequestSummary:
    with ctx.db.session() as session:
        request = owned_request(session, request_id, key_id)
        rid, already = request.id, request.status
        if not cancel_request(session, rid) and already != RequestStatus.CANCELLED.value:
            raise ApiError(409, "already_finished", f"request {rid} has already finished: {already}")
        bump_revision(session, [rid])
    # With nothing in flight, the terminal move (and its webhook event) happens here; else with the last result.
    finish(ctx.db, rid, settings=ctx.settings, enqueue_event=ctx.queue.webhook)
    return _summary(ctx, rid)


@router.post(
    "/api/requests/{request_id}/retry/",
    status_code=202,
    response_model=RequestSummary,
    summary="Retry the failed images of a finished request",
    description="Its failed (or cancelled) images are queued again with fresh attempts; the request goes back to "
    "`processing`, ends with a new terminal status and sends a new webhook event (a new `webhook-id`; earlier "
    "deliveries stay in the log).",
    responses=error_responses(401, 404, 409, e409="the request is still open, or has no failed image"),
)
def retry(request_id: str, key_id: KeyId, ctx: Ctx) -> RequestSummary:
    with unit_of_work(ctx.db.session()) as work:
        request = owned_request(work.session, request_id, key_id)
        rid, status = request.id, request.status
        if status in RequestStatus.open_states():
            raise ApiError(409, "still_open", f"request {rid} is still {status}: retry it once it has finished")
        if not retry_request(work.session, rid, requeue_after_seconds=ctx.settings.lease_seconds):
            raise ApiError(409, "nothing_to_retry", f"request {rid} has no failed image to retry ({status})")
        # With the broker down the images wait, due, for the sweeper: the retry is accepted all the same.
        work.publish(f"request {rid}", lambda: ctx.queue.request(rid))
    return _summary(ctx, rid)


@router.delete(
    "/api/requests/{request_id}/",
    status_code=204,
    summary="Delete a finished request, its webhook log and the outputs no other request lists",
    description="Outputs another request also lists stay. Afterwards the request's status and CSV answer 404.",
    responses=error_responses(401, 404, 409, e409="the request is still open: cancel it first"),
)
def delete_request(request_id: str, key_id: KeyId, ctx: Ctx) -> Response:
    with ctx.db.session() as session:
        request = owned_request(session, request_id, key_id)
        rid, status = request.id, request.status
        if status in RequestStatus.open_states():
            raise ApiError(409, "still_open", f"request {rid} is still {status}: cancel it, then delete it")
        doomed = delete_requests(session, [rid])
    # After the commit: a failure here leaves doomed rows for the sweeper, never a row without its object.
    purge(ctx.db, ctx.storage, doomed)
    return Response(status_code=204)


def _summary(ctx: Ctx, rid: uuid.UUID) -> RequestSummary:
    with ctx.db.session(read_only=True) as session:
        return _summary_of(ctx, session.get_one(ProcessingRequest, rid), tallies(session, [rid])[rid])


def _summary_of(ctx: Ctx, request: ProcessingRequest, counted: Tally) -> RequestSummary:
    return RequestSummary(
        request_id=request.id,
        status=request.status,
        created_at=as_utc(request.created_at),
        finished_at=as_utc(request.finished_at) if request.finished_at else None,
        progress=progress_of(counted),
        status_url=status_url(ctx.settings, request.id),
    )
