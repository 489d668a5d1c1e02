"""What the API and the workers publish, by task name: the publisher needs the broker, not the task code."""

from __future__ import annotations

import uuid

from celery import Celery

PROCESS_IMAGES = "processing.process_images"
COMPRESS_IMAGES = "processing.compress_images"
DELIVER_WEBHOOK = "webhooks.deliver"


class TaskQueue:
    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def request(self, request_id: uuid.UUID) -> None:
        self.celery.send_task(PROCESS_IMAGES, args=(str(request_id),))

    def chunk(self, request_id: uuid.UUID) -> None:
        """Wake a worker for a chunk of ``request_id``'s images, or of whichever request's turn it is then."""
        self.celery.send_task(COMPRESS_IMAGES, args=(str(request_id),))

    def webhook(self, event_id: str, delay: float = 0) -> None:
        self.celery.send_task(DELIVER_WEBHOOK, args=(event_id,), countdown=delay or None)

    def prepare(self) -> None:
        """Build now what a process's first publish builds lazily: the sender, its event dispatcher and a producer,
        which imports the broker's transport. Left to the first upload, each API process answered it 0.5 s late on
        Redis (0.1 s on the filesystem broker). Nothing connects yet: a broker that is down does not keep the API
        from starting."""
        self.celery.amqp.send_task_message  # noqa: B018  # evaluating the attribute builds the sender
        with self.celery.producer_or_acquire():
            pass
