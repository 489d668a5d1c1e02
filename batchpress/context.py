"""A process's collaborators, built once when an API or worker process starts and passed down from there."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import httpx
from celery import Celery

from batchpress.config import Settings
from batchpress.db.engine import Database
from batchpress.storage import ImageStorage, make_storage
from batchpress.worker.celery_app import make_celery
from batchpress.worker.queue import TaskQueue


@dataclass
class Context:
    settings: Settings
    db: Database
    storage: ImageStorage
    queue: TaskQueue
    _clients: list[httpx.Client] = field(default_factory=list, repr=False)

    @classmethod
    def build(cls, settings: Settings, *, celery: Celery | None = None, remember_urls: int = 0) -> Context:
        """``celery`` is the worker's own app (its tasks run there); other processes only publish, on a new one.
        ``remember_urls``: presigned URLs to keep (storage/base.py), for the API's status pages."""
        return cls(
            settings=settings,
            db=Database(settings),
            storage=make_storage(settings, remember_urls=remember_urls),
            queue=TaskQueue(celery or make_celery(settings)),
        )

    @cached_property
    def image_client(self) -> httpx.Client:
        """Downloads: one client per process, so connections to image hosts are reused across tasks."""
        from batchpress.processing.download import make_client

        return self._keep(make_client(self.settings))

    @cached_property
    def webhook_client(self) -> httpx.Client:
        from batchpress.webhooks.delivery import make_client

        return self._keep(make_client(self.settings))

    def _keep(self, client: httpx.Client) -> httpx.Client:
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self.db.dispose()
