"""One Celery app for every deployment; only the broker URL differs.

Reliability comes from the database (image leases and a sweeper), so the queue is configured to redeliver rather
than to remember: late acks, requeue when a worker is lost, two messages prefetched per process, no result backend.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

from batchpress.config import Settings
from batchpress.worker.memory import ceiling_kib

# The longest a compress task may run before Celery stops it; its lease lapses and the sweeper retries it.
TASK_TIME_LIMIT_SECONDS = 600
# How long Redis keeps a message a worker took but never acknowledged before delivering it again: what a dead
# worker had reserved comes back after this. A live worker's slow task may then run twice, which the database's
# leases make harmless; countdowns must stay under it (webhooks/tasks.py).
REDIS_VISIBILITY_TIMEOUT_SECONDS = 60


def broker_options(settings: Settings) -> dict[str, Any]:
    if settings.uses_filesystem_broker:
        messages = settings.queue_dir / "messages"
        messages.mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(messages),
            "data_folder_out": str(messages),
            "control_folder": str(settings.queue_dir / "control"),
            "store_processed": False,
            # A folder listing 50 times a second costs nothing; slower, each chunk waits for its message (figures:
            # docs/performance.md).
            "polling_interval": 0.02,
        }
    options: dict[str, Any] = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        options |= {
            "visibility_timeout": REDIS_VISIBILITY_TIMEOUT_SECONDS,
            "unacked_restore_interval": 2,
            "unacked_restore_throttle": 1,
        }
    return options


# ``filesystem://`` means our atomic-write variant of kombu's transport, for every connection this process makes.
TRANSPORT_ALIASES["filesystem"] = "batchpress.worker.filesystem_transport:Transport"


def configure(app: Celery, settings: Settings) -> Celery:
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        result_backend=None,
        # Two messages per pool process: one that finishes a chunk starts the next at once instead of waiting for
        # the broker (docs/performance.md). Leases in the database, not the queue, say who works on what, so a
        # reserved message that is lost or delivered twice changes nothing.
        worker_prefetch_multiplier=2,
        # How long a killed pool process holds its slot before Celery gives up on it (default 10 s).
        worker_lost_wait=2.0,
        worker_concurrency=settings.worker_concurrency,
        # Checked by each pool process after each task against its peak RSS; past it the process is replaced.
        worker_max_memory_per_child=ceiling_kib(settings),
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        # The filesystem transport has no broadcast exchange for remote control.
        worker_enable_remote_control=not settings.uses_filesystem_broker,
        task_time_limit=TASK_TIME_LIMIT_SECONDS,
        task_soft_time_limit=TASK_TIME_LIMIT_SECONDS - 30,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
        task_default_queue=settings.queue_name,
        timezone="UTC",
    )
    return app


def make_celery(settings: Settings) -> Celery:
    """An app that publishes only (the API, the sweeper's process): tasks are sent by name (worker/queue.py)."""
    return configure(Celery("batchpress", set_as_current=False), settings)


# The app the worker runs: the task modules register on it at import, and ``batchpress worker`` configures it
# from its settings when it starts (cli/serve.py), not this module at import.
celery_app = Celery("batchpress", include=["batchpress.processing.tasks", "batchpress.webhooks.tasks"])
