"""The service in this process: a context on a migrated database, and the API app over it through httpx."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from batchpress.api.app import create_app
from batchpress.config import Settings
from batchpress.context import Context
from batchpress.db.migrate import upgrade
from batchpress.lifecycle.finish import finish
from batchpress.lifecycle.start import fan_out
from batchpress.processing.pipeline import ChunkWorker
from batchpress.webhooks.delivery import attempt


@contextmanager
def service_context(
    data_dir: Path, database_url: str = "", *, migrate: bool = True, **settings: Any
) -> Iterator[Context]:
    """A context as an API or worker process builds it, on a migrated database (SQLite in ``data_dir`` unless
    ``database_url`` names one); the embedded filesystem broker keeps what the API publishes."""
    settings.setdefault("allow_private_networks", True)
    built = Settings(data_dir=data_dir, database_url=database_url, **settings)
    if migrate:
        upgrade(built)
    context = Context.build(built)
    try:
        yield context
    finally:
        context.close()


@contextmanager
def api_client(context: Context, **headers: str) -> Iterator[TestClient]:
    """The ASGI app over ``context``, called through httpx in this process; server errors come back as 500s."""
    with TestClient(
        create_app(context), base_url=context.settings.public_base_url, raise_server_exceptions=False, headers=headers
    ) as client:
        yield client


def process_inline(context: Context, request_id: uuid.UUID) -> list[str]:
    """What workers do with a request, here and without a broker: start it, then claim and compress chunk after
    chunk through the real pipeline (downloads, codecs, storage, leases) for as long as messages would wake them,
    and let the last write finish it. Returns the webhook events the finish would have published."""
    messages: list[uuid.UUID] = []
    events: list[str] = []

    def publish_event(event_id: str, delay: float = 0) -> None:
        events.append(event_id)

    worker = ChunkWorker(
        settings=context.settings,
        db=context.db,
        storage=context.storage,
        client=context.image_client,
        enqueue_event=publish_event,
        wake=messages.append,
    )
    finish_it = functools.partial(finish, context.db, settings=context.settings, enqueue_event=publish_event)
    try:
        if fan_out(context.db, request_id, messages.append, finish_it):
            worker.run_next(request_id)
        while messages:
            worker.run_next(messages.pop(0))
    finally:
        worker.drain()
    return events


@contextmanager
def api_with_settings(context: Context, **settings: Any) -> Iterator[TestClient]:
    """The API over ``context``'s database and data directory, started with other settings (API keys, a callback
    secret, upload limits), as a server given them in its environment would be."""
    with (
        service_context(context.settings.data_dir, context.settings.database_url, migrate=False, **settings) as other,
        api_client(other) as client,
    ):
        yield client


# Longer than any near-0 delay of a test's schedule (jitter included), short enough that no test sits waiting.
QUICK_RETRY_SECONDS = 0.5


def deliver_inline(context: Context, event_id: str) -> None:
    """What a worker's delivery task does with an event, here: one attempt, then the next for as long as the
    answer calls for one. The test's retry schedule must make every wait near 0; a longer one fails the test
    rather than sleep it out."""
    while (delay := attempt(context.db, event_id, context.settings, context.webhook_client)) is not None:
        assert delay <= QUICK_RETRY_SECONDS, f"the test's schedule asks for a {delay:.1f} s wait"
        time.sleep(delay)
