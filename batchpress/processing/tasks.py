"""Celery tasks: thin, named wrappers over ``pipeline``. They take ids, never rows."""

from __future__ import annotations

import functools
import uuid
from functools import lru_cache

from batchpress.config import get_settings
from batchpress.lifecycle.finish import finish
from batchpress.lifecycle.start import fan_out
from batchpress.logs import request_id_var
from batchpress.processing.download import make_client
from batchpress.processing.pipeline import ChunkWorker
from batchpress.storage import get_storage
from batchpress.webhooks.tasks import enqueue_delivery
from batchpress.worker.celery_app import celery_app


@lru_cache(maxsize=1)
def chunk_worker() -> ChunkWorker:
    """One per worker process, so HTTP connections to image hosts are reused across tasks."""
    settings = get_settings()
    return ChunkWorker(
        settings=settings, storage=get_storage(), client=make_client(settings), enqueue_event=enqueue_delivery
    )


def drain_writes() -> None:
    """Let this process's last results reach the database before it exits (the pool calls this on the way out)."""
    if chunk_worker.cache_info().currsize:
        chunk_worker().drain()


def enqueue_chunk(request_id: uuid.UUID, image_ids: list[int]) -> None:
    compress_images.apply_async(args=(str(request_id), image_ids))


def enqueue_request(request_id: uuid.UUID) -> None:
    process_images.apply_async(args=(str(request_id),))


def prepare_enqueue() -> None:
    """Build now what a process's first ``apply_async`` builds lazily: the task classes, the result backend
    (disabled) and a producer, which imports the broker's transport. Left to the first upload, each API process
    answered it 0.5 s late on Redis (0.1 s on the filesystem broker). Nothing connects yet: a broker that is down
    does not keep the API from starting."""
    for task in (process_images, compress_images):
        task.backend  # noqa: B018  # evaluating the attribute builds the task class and the backend
    celery_app.amqp.send_task_message  # noqa: B018  # builds the sender and its event dispatcher
    with celery_app.producer_or_acquire():
        pass


@celery_app.task(name="processing.process_images")
def process_images(request_id: str) -> int:
    token = request_id_var.set(request_id)  # worker log lines name the request they work for
    try:
        settings = get_settings()
        first_chunk = fan_out(
            uuid.UUID(request_id),
            enqueue_chunk,
            functools.partial(finish, settings=settings, enqueue_event=enqueue_delivery),
        )
        return chunk_worker().run(first_chunk) if first_chunk else 0
    finally:
        request_id_var.reset(token)


@celery_app.task(name="processing.compress_images")
def compress_images(request_id: str, image_ids: list[int]) -> int:
    token = request_id_var.set(request_id)
    try:
        return chunk_worker().run(image_ids)
    finally:
        request_id_var.reset(token)
