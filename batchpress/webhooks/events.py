"""Creating the completion event, in the same transaction as the request's terminal move."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from batchpress.config import Settings
from batchpress.db.base import utcnow
from batchpress.models import (
    DisabledWebhookUrl,
    ProcessingRequest,
    WebhookAttempt,
    WebhookEvent,
    WebhookState,
)
from batchpress.tally import tally


def status_url(settings: Settings, request_id: uuid.UUID) -> str:
    return f"{settings.public_base_url}/api/status/{request_id}/"


def output_csv_url(settings: Settings, request_id: uuid.UUID) -> str:
    return f"{settings.public_base_url}/api/requests/{request_id}/output.csv"


def event_payload(settings: Settings, request_id: uuid.UUID, status: str, session: Session) -> dict[str, object]:
    """A thin payload: what finished and how, with how many outputs were reused and the bytes it saved; the product
    list stays behind the status URL."""
    counted = tally(session, request_id)
    progress = {
        "total_images": counted.total,
        "processed": counted.done,
        "failed": counted.failed,
        "reused": counted.reused,
        **counted.byte_counts(),
    }
    return {
        "type": f"request.{status}",
        "timestamp": utcnow().isoformat().replace("+00:00", "Z"),
        "data": {
            "request_id": str(request_id),
            "status": status,
            "progress": progress,
            "status_url": status_url(settings, request_id),
            "output_csv_url": output_csv_url(settings, request_id),
        },
    }


def create_event(session: Session, settings: Settings, request_id: uuid.UUID, status: str) -> str | None:
    """Insert the request's one event if it asked for a webhook; returns the event id to deliver, if any."""
    url = session.scalar(select(ProcessingRequest.webhook_url).where(ProcessingRequest.id == request_id))
    if not url:
        return None
    disabled = session.get(DisabledWebhookUrl, url)
    now = utcnow()
    event_id = f"msg_{uuid.uuid4().hex}"
    session.execute(
        insert(WebhookEvent).values(
            id=event_id,
            request_id=request_id,
            type=f"request.{status}",
            url=url,
            payload=json.dumps(event_payload(settings, request_id, status, session), separators=(",", ":")),
            state=WebhookState.FAILED.value if disabled else WebhookState.PENDING.value,
            attempts=0,
            next_attempt_at=None if disabled else now + dt.timedelta(seconds=settings.webhook_delays[0]),
            created_at=now,
            updated_at=now,
        )
    )
    if disabled:
        session.execute(
            insert(WebhookAttempt).values(
                event_id=event_id,
                attempted_at=now,
                url=url,
                error=f"not sent: this URL answered 410 Gone on {disabled.disabled_at:%Y-%m-%d} and is disabled",
                outcome="gave_up",
            )
        )
        return None
    return event_id
