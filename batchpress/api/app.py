from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from batchpress import __version__
from batchpress.api import processing_callback, status, upload, webhook_status
from batchpress.api.errors import install_error_handlers
from batchpress.config import get_settings


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="batchpress",
        version=__version__,
        description="Upload a CSV of product image URLs; every image is compressed in the background.",
    )
    install_error_handlers(app)
    app.include_router(upload.router, tags=["requests"])
    app.include_router(status.router, tags=["requests"])
    app.include_router(processing_callback.router, tags=["webhooks"])
    app.include_router(webhook_status.router, tags=["webhooks"])

    @app.get("/healthz", tags=["operations"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if settings.storage == "local":
        settings.images_dir.mkdir(parents=True, exist_ok=True)
        app.mount("/images", StaticFiles(directory=settings.images_dir), name="images")
    return app
