"""The worker process's context: built once when the process starts, read by the tasks, which Celery calls with
ids only. Everything below a task takes its collaborators as parameters."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from batchpress.config import Settings
from batchpress.context import Context
from batchpress.processing.cpu_budget import CpuBudget
from batchpress.processing.pipeline import ChunkWorker
from batchpress.worker.celery_app import celery_app

_current: WorkerProcess | None = None


@dataclass
class WorkerProcess:
    context: Context

    @cached_property
    def chunks(self) -> ChunkWorker:
        ctx = self.context
        return ChunkWorker(
            settings=ctx.settings,
            db=ctx.db,
            storage=ctx.storage,
            client=ctx.image_client,
            enqueue_event=ctx.queue.webhook,
            wake=ctx.queue.chunk,
            budget=CpuBudget(ctx.settings.max_image_seconds),
        )

    def drain(self) -> None:
        """Let this process's last results reach the database before it exits."""
        if "chunks" in self.__dict__:
            self.chunks.drain()


def start(settings: Settings) -> WorkerProcess:
    """The worker's main process, before Celery starts: ``celery_app`` is configured from ``settings``."""
    global _current
    _current = WorkerProcess(Context.build(settings, celery=celery_app))
    return _current


def start_after_fork() -> WorkerProcess:
    """A pool process: its own connections, as the parent's sockets and files must not be shared."""
    global _current
    parent = current()
    parent.context.db.dispose(close=False)
    _current = WorkerProcess(Context.build(parent.context.settings, celery=celery_app))
    return _current


def current() -> WorkerProcess:
    if _current is None:
        raise RuntimeError("no worker context: tasks run in a `batchpress worker` process")
    return _current
