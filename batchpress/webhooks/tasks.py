"""The delivery task: one attempt per run. Short waits ride on the message; long ones on the sweeper."""

from __future__ import annotations

import logging
from functools import lru_cache

import httpx

from batchpress.config import get_settings
from batchpress.webhooks.delivery import attempt, make_client
from batchpress.worker.celery_app import celery_app

log = logging.getLogger(__name__)
# A countdown holds the message in a worker's memory (and, on Redis, must stay under the visibility timeout);
# waits longer than this are left to the sweeper, which enqueues events once they are due.
COUNTDOWN_LIMIT_SECONDS = 30


@lru_cache(maxsize=1)
def client() -> httpx.Client:
    return make_client(get_settings())


def enqueue_delivery(event_id: str, delay: float = 0) -> None:
    deliver_webhook.apply_async(args=(event_id,), countdown=delay or None)


@celery_app.task(name="webhooks.deliver")
def deliver_webhook(event_id: str) -> None:
    delay = attempt(event_id, get_settings(), client())
    if delay is not None and delay <= COUNTDOWN_LIMIT_SECONDS:
        enqueue_delivery(event_id, delay)
