"""Celery tasks: thin, named wrappers over the lifecycle and the pipeline. They take ids, never rows, and find
their collaborators in the worker process's context."""

from __future__ import annotations

import functools
import uuid

from batchpress.lifecycle.finish import finish
from batchpress.lifecycle.start import fan_out
from batchpress.logs import request_id_var
from batchpress.worker import process
from batchpress.worker.celery_app import celery_app
from batchpress.worker.queue import COMPRESS_IMAGES, PROCESS_IMAGES


@celery_app.task(name=PROCESS_IMAGES)
def process_images(request_id: str) -> int:
    token = request_id_var.set(request_id)  # worker log lines name the request they work for
    try:
        worker = process.current()
        ctx = worker.context
        rid = uuid.UUID(request_id)
        chunks = fan_out(
            ctx.db,
            rid,
            ctx.queue.chunk,
            functools.partial(finish, ctx.db, settings=ctx.settings, enqueue_event=ctx.queue.webhook),
        )
        return worker.chunks.run_next(rid) if chunks else 0
    finally:
        request_id_var.reset(token)


@celery_app.task(name=COMPRESS_IMAGES)
def compress_images(request_id: str, image_ids: list[int] | None = None) -> int:
    """``image_ids``: what messages published before fair share named; the claim now chooses (fair_share.py)."""
    token = request_id_var.set(request_id)
    try:
        return process.current().chunks.run_next(uuid.UUID(request_id))
    finally:
        request_id_var.reset(token)
