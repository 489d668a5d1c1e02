"""One delivery attempt of an event, and what follows from its answer.

Only 2xx counts as delivered. Timeouts, connection errors, 5xx, 408 and 429 are retried on the configured schedule
(with jitter, or after ``Retry-After`` when the receiver sends one); any other answer stops, and ``410 Gone`` also
disables the URL for later requests. Redirects are not followed: a receiver that moved must say so in its config.
A URL the outbound guard refuses (loopback, private and other internal addresses) fails at once, unsent.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import time
from dataclasses import dataclass

import httpx
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from batchpress import __version__
from batchpress.config import Settings
from batchpress.db.base import utcnow
from batchpress.db.engine import Database
from batchpress.db.revisions import bump_revision
from batchpress.db.upsert import upsert
from batchpress.models import DisabledWebhookUrl, WebhookAttempt, WebhookEvent, WebhookState
from batchpress.outbound import GuardedTransport, OutboundBlocked, OutboundPolicy, deadline
from batchpress.webhooks.signing import signature_headers, webhook_secrets

RESPONSE_EXCERPT_BYTES = 2048
MAX_RETRY_AFTER_SECONDS = 24 * 3600
RETRYABLE_STATUS = {408, 429}
USER_AGENT = f"batchpress-webhooks/{__version__}"


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int | None
    latency_ms: int
    body: str | None
    error: str | None
    retry_after: float | None
    # The URL points at an address outbound requests may not reach: sending again cannot help.
    blocked: bool = False


def make_client(settings: Settings) -> httpx.Client:
    return httpx.Client(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        transport=GuardedTransport(OutboundPolicy.from_settings(settings)),
        # Environment proxies would get their own, unguarded transport.
        trust_env=False,
    )


def claim(session: Session, event_id: str, *, lease_seconds: float) -> WebhookEvent | None:
    """Take a due event for one attempt, so two workers never send the same attempt at once."""
    now = utcnow()
    row = session.execute(
        update(WebhookEvent)
        .where(
            WebhookEvent.id == event_id,
            WebhookEvent.state.in_(WebhookState.open_states()),
            WebhookEvent.next_attempt_at <= now,
            or_(WebhookEvent.lease_until.is_(None), WebhookEvent.lease_until < now),
        )
        .values(lease_until=now + dt.timedelta(seconds=lease_seconds), updated_at=now)
        .returning(WebhookEvent.id)
    ).first()
    return session.get(WebhookEvent, row.id) if row else None


def post(client: httpx.Client, settings: Settings, event: WebhookEvent) -> Answer:
    headers = signature_headers(webhook_secrets(settings), event.id, utcnow(), event.payload)
    headers["content-type"] = "application/json"
    headers["accept-encoding"] = "identity"  # the excerpt is read raw, so ask for it unencoded
    started = time.monotonic()
    try:
        with (
            deadline(started + settings.webhook_timeout_seconds),
            client.stream("POST", event.url, content=event.payload.encode(), headers=headers) as response,
        ):
            excerpt = b""
            for chunk in response.iter_raw():
                excerpt += chunk
                if len(excerpt) >= RESPONSE_EXCERPT_BYTES:
                    break
            return Answer(
                status_code=response.status_code,
                latency_ms=round((time.monotonic() - started) * 1000),
                body=excerpt[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="replace"),
                error=None,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
    except OutboundBlocked as exc:
        return Answer(None, round((time.monotonic() - started) * 1000), None, str(exc)[:300], None, blocked=True)
    except httpx.HTTPError as exc:
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
        return Answer(None, round((time.monotonic() - started) * 1000), None, f"{kind}: {exc}"[:300], None)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return min(float(value.strip()), MAX_RETRY_AFTER_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max((when - utcnow()).total_seconds(), 0.0), MAX_RETRY_AFTER_SECONDS)


def retryable(answer: Answer) -> bool:
    if answer.blocked:
        return False
    code = answer.status_code
    return code is None or code >= 500 or code in RETRYABLE_STATUS


def next_delay(settings: Settings, attempts_made: int, answer: Answer) -> float | None:
    """Seconds until the next attempt, or None when the schedule is used up."""
    delays = settings.webhook_delays
    if attempts_made >= len(delays):
        return None
    if answer.retry_after is not None:
        return answer.retry_after
    base = delays[attempts_made]
    return base * random.uniform(0.9, 1.1)  # noqa: S311  (jitter, not security)


def attempt(db: Database, event_id: str, settings: Settings, client: httpx.Client) -> float | None:
    """Make one attempt if the event is due; returns the delay before the next one, if there is one."""
    with db.session() as session:
        event = claim(session, event_id, lease_seconds=settings.webhook_timeout_seconds * 2 + 30)
    if event is None:
        return None
    answer = post(client, settings, event)
    attempts_made = event.attempts + 1
    delivered = answer.status_code is not None and 200 <= answer.status_code < 300
    delay = None if delivered or not retryable(answer) else next_delay(settings, attempts_made, answer)
    if delivered:
        state, outcome = WebhookState.DELIVERED, "delivered"
    elif delay is not None:
        state, outcome = WebhookState.RETRYING, "retry"
    else:
        state, outcome = WebhookState.FAILED, "gave_up"
    now = utcnow()
    with db.session() as session:
        session.execute(
            insert(WebhookAttempt).values(
                event_id=event.id,
                attempted_at=now,
                url=event.url,
                status_code=answer.status_code,
                latency_ms=answer.latency_ms,
                response_body=answer.body,
                error=answer.error,
                outcome=outcome,
            )
        )
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event.id)
            .values(
                state=state.value,
                attempts=attempts_made,
                lease_until=None,
                next_attempt_at=now + dt.timedelta(seconds=delay) if delay is not None else None,
                updated_at=now,
            )
        )
        bump_revision(session, [event.request_id])
        if answer.status_code == 410:
            disable_url(session, event.url)
    return delay


def disable_url(session: Session, url: str) -> None:
    values = {"url": url, "disabled_at": utcnow(), "reason": "the receiver answered 410 Gone"}
    session.execute(upsert(session, DisabledWebhookUrl).values(**values).on_conflict_do_nothing())


def due_events(session: Session, limit: int = 1000) -> list[str]:
    """Events whose next attempt is due and that nobody is sending: the sweeper enqueues these."""
    now = utcnow()
    return list(
        session.scalars(
            select(WebhookEvent.id)
            .where(
                WebhookEvent.state.in_(WebhookState.open_states()),
                WebhookEvent.next_attempt_at <= now,
                or_(WebhookEvent.lease_until.is_(None), WebhookEvent.lease_until < now),
            )
            .limit(limit)
        )
    )


def reopen(session: Session, event: WebhookEvent) -> None:
    """Send an event again from now, whatever became of it; the webhook-id stays the same. Asking for this
    re-enables a URL that had answered 410."""
    now = utcnow()
    session.execute(delete(DisabledWebhookUrl).where(DisabledWebhookUrl.url == event.url))
    session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == event.id)
        .values(state=WebhookState.PENDING.value, next_attempt_at=now, lease_until=None, updated_at=now)
    )
    bump_revision(session, [event.request_id])
