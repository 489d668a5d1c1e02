"""The webhook part of a request's status, and asking for a delivery again."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from batchpress.api.auth import KeyId, owned_request
from batchpress.api.deps import Ctx
from batchpress.api.errors import ApiError
from batchpress.api.schemas import EXAMPLE_ID, WebhookAttemptOut, WebhookOut, error_responses
from batchpress.db.base import as_utc
from batchpress.db.unit_of_work import unit_of_work
from batchpress.models import ProcessingRequest, RequestStatus, WebhookAttempt, WebhookEvent, WebhookState
from batchpress.webhooks.delivery import reopen

router = APIRouter()
LOG_LIMIT = 50


def latest_event(session: Session, request_id: uuid.UUID) -> WebhookEvent | None:
    """The event of the request's last terminal move; a retried request keeps its earlier ones in the log."""
    return session.scalar(
        select(WebhookEvent)
        .where(WebhookEvent.request_id == request_id)
        .order_by(WebhookEvent.created_at.desc())
        .limit(1)
    )


def webhook_status(session: Session, request: ProcessingRequest) -> WebhookOut | None:
    if not request.webhook_url:
        return None
    event = latest_event(session, request.id)
    if event is None:
        return WebhookOut(
            url=request.webhook_url,
            event_id=None,
            state=WebhookState.PENDING.value,
            attempts=0,
            next_attempt_at=None,
            last_attempt=None,
            log=[],
        )
    attempts = session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.event_id == event.id)
        .order_by(WebhookAttempt.id.desc())
        .limit(LOG_LIMIT)
    ).all()
    log = [
        WebhookAttemptOut(
            attempted_at=as_utc(a.attempted_at),
            status_code=a.status_code,
            latency_ms=a.latency_ms,
            error=a.error,
            response_excerpt=a.response_body,
            outcome=a.outcome,
        )
        for a in reversed(attempts)
    ]
    return WebhookOut(
        url=event.url,
        event_id=event.id,
        state=event.state,
        attempts=event.attempts,
        next_attempt_at=as_utc(event.next_attempt_at) if event.next_attempt_at else None,
        last_attempt=log[-1] if log else None,
        log=log,
    )


class RedeliveryAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"request_id": EXAMPLE_ID, "event_id": "msg_2b7c0e9a4f1d4e6b8a3c5d7e9f1a2b3c", "state": "pending"}
            ]
        }
    )

    request_id: uuid.UUID
    event_id: str
    state: str


@router.post(
    "/api/requests/{request_id}/webhook/redeliver/",
    status_code=202,
    response_model=RedeliveryAccepted,
    summary="Send the request's completion webhook again (same webhook-id)",
    responses=error_responses(401, 404, 409, e409="the request has not finished, or has no webhook"),
)
def redeliver(request_id: str, key_id: KeyId, ctx: Ctx) -> RedeliveryAccepted:
    with unit_of_work(ctx.db.session()) as work:
        session = work.session
        request = owned_request(session, request_id, key_id)
        rid = request.id
        event = latest_event(session, rid)
        if event is None:
            reason = (
                "it was uploaded without a webhook_url"
                if not request.webhook_url
                else f"it has not finished yet (status {request.status})"
                if request.status in RequestStatus.open_states()
                else "it has no webhook event"
            )
            raise ApiError(409, "no_webhook_event", f"nothing to redeliver for request {rid}: {reason}")
        reopen(session, event)
        event_id = event.id
        # With the broker down the event waits, due, for the sweeper: the redelivery is accepted all the same.
        work.publish(f"webhook {event_id}", lambda: ctx.queue.webhook(event_id))
    return RedeliveryAccepted(request_id=rid, event_id=event_id, state=WebhookState.PENDING.value)
