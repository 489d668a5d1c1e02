"""The service in this process: a context on a migrated database, and the API app over it through httpx."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from batchpress.api.app import create_app
from batchpress.config import Settings
from batchpress.context import Context
from batchpress.db.migrate import upgrade


@contextmanager
def service_context(data_dir: Path, database_url: str = "", **settings: Any) -> Iterator[Context]:
    """A context as an API or worker process builds it, on a freshly migrated database (SQLite in ``data_dir``
    unless ``database_url`` names one); the embedded filesystem broker keeps what the API publishes."""
    settings.setdefault("allow_private_networks", True)
    built = Settings(data_dir=data_dir, database_url=database_url, **settings)
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
