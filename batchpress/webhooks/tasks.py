"""The delivery task: one attempt per run. Short waits ride on the message; long ones on the sweeper."""

from __future__ import annotations

import logging

from batchpress.webhooks.delivery import attempt
from batchpress.worker import process
from batchpress.worker.celery_app import celery_app
from batchpress.worker.queue import DELIVER_WEBHOOK

log = logging.getLogger(__name__)
# A countdown holds the message in a worker's memory (and, on Redis, must stay under the visibility timeout);
# waits longer than this are left to the sweeper, which enqueues events once they are due.
COUNTDOWN_LIMIT_SECONDS = 30


@celery_app.task(name=DELIVER_WEBHOOK)
def deliver_webhook(event_id: str) -> None:
    ctx = process.current().context
    delay = attempt(ctx.db, event_id, ctx.settings, ctx.webhook_client)
    if delay is not None and delay <= COUNTDOWN_LIMIT_SECONDS:
        ctx.queue.webhook(event_id, delay)
