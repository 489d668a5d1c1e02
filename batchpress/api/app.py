from __future__ import annotations

import gc
import logging
import mimetypes

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from batchpress import __version__
from batchpress.api import output_csv, processing_callback, requests, status, upload, webhook_status
from batchpress.api.auth import ApiKeys
from batchpress.api.body_limit import BodyLimitMiddleware
from batchpress.api.errors import install_error_handlers
from batchpress.api.output_files import OutputFiles
from batchpress.api.request_id import RequestIdMiddleware
from batchpress.api.status import StatusReads
from batchpress.config import Settings
from batchpress.context import Context
from batchpress.observability.endpoints import router as operations_router
from batchpress.observability.metrics import make_registry
from batchpress.observability.readiness import check_pool
from batchpress.storage import API_REMEMBERED_URLS
from batchpress.web import pages

DESCRIPTION = """Upload a CSV of product image URLs; every image is compressed in the background.

When the server has `BATCHPRESS_API_KEYS` set, the request routes need one of the keys, as
`Authorization: Bearer <key>` or `X-API-Key: <key>`, and a request is visible only to the key that created it.
Health checks, served images, these docs and the (signed) processing callback never need a key."""


MULTIPART_ALLOWANCE = 64 * 1024
log = logging.getLogger(__name__)


# Python's table predates AVIF; served outputs need the right Content-Type.
mimetypes.add_type("image/avif", ".avif")


def create_served_app() -> FastAPI:
    """The app as ``serve`` runs it, in its own process or in each of its API processes (cli/api_processes.py):
    the process's context is built here, once, from the ``BATCHPRESS_*`` environment."""
    context = Context.build(Settings(), remember_urls=API_REMEMBERED_URLS)
    app = create_app(context)
    prepare_first_request(context)
    # What is alive now lives as long as the process; frozen, the collector never scans it again, and a full
    # collection no longer pauses every request in flight (docs/performance.md).
    gc.collect()
    gc.freeze()
    return app


def prepare_first_request(context: Context) -> None:
    """Build what the first upload to each API process otherwise built while its client waited: Celery's producer
    and the database's first connection (SQLAlchemy then reads the server's version and settings). On PostgreSQL +
    Redis the first upload to each process answered in 530-590 ms, later ones in ~10 ms. A database that cannot be
    reached yet does not stop the start: the first request tries again and reports it."""
    context.queue.prepare()
    try:
        with context.db.engine.connect():
            pass
    except SQLAlchemyError as exc:
        log.warning("database not reachable at start-up: %s", exc)


def create_app(context: Context) -> FastAPI:
    """The API over ``context``: routes find it (and the state below) on ``app.state``, never in a module."""
    settings = context.settings
    app = FastAPI(title="batchpress", version=__version__, description=DESCRIPTION)
    app.state.context = context
    app.state.status_reads = StatusReads()
    app.state.metrics = make_registry(context.db)
    app.state.readiness_checks = check_pool()
    # Hashed once here; the dependency in api/auth.py compares digests only.
    app.state.api_keys = ApiKeys.from_settings(settings)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes + MULTIPART_ALLOWANCE)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(upload.router, tags=["requests"])
    app.include_router(status.router, tags=["requests"])
    app.include_router(output_csv.router, tags=["requests"])
    app.include_router(requests.router, tags=["requests"])
    app.include_router(processing_callback.router, tags=["webhooks"])
    app.include_router(webhook_status.router, tags=["webhooks"])
    app.include_router(operations_router, tags=["operations"])
    app.include_router(pages.router)

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="The process is up",
        responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
    )
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if settings.storage == "local":
        settings.images_dir.mkdir(parents=True, exist_ok=True)
        app.mount("/images", OutputFiles(directory=settings.images_dir), name="images")
    return app
