"""Hooks that make a worker safe to kill and to stop: pool children die with their parent and write their last
results before they exit, and a sweeper runs beside the worker."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown

from batchpress.lifecycle.sweep import Sweeper
from batchpress.worker import process
from batchpress.worker.parent_death import die_with_parent

log = logging.getLogger(__name__)
_stop = threading.Event()


@worker_process_init.connect
def _child_started(**_: Any) -> None:
    die_with_parent(signal.SIGKILL)
    worker = process.start_after_fork()
    # Only the pool processes, which compress, yield the CPU; the parent, which fetches, acknowledges and hands out
    # their tasks, keeps normal priority (figures: docs/performance.md, "What each optimisation bought").
    os.nice(worker.context.settings.worker_nice)


@worker_process_shutdown.connect
def _child_stopping(**_: Any) -> None:
    process.current().drain()


def sweep_forever() -> None:
    ctx = process.current().context
    settings = ctx.settings
    sweeper = Sweeper(ctx.db, settings, ctx.queue.chunk, ctx.queue.webhook, ctx.storage)
    while not _stop.is_set():
        try:
            report = sweeper.sweep()
            if report.requeued or report.gave_up or report.finished or report.webhooks or report.deleted:
                log.info(
                    "sweeper: requeued %d images, gave up on %d, finished %d requests, sent %d webhooks, deleted %d "
                    "requests past retention",
                    report.requeued,
                    report.gave_up,
                    report.finished,
                    report.webhooks,
                    report.deleted,
                )
        except Exception:
            log.exception("sweeper pass failed; trying again next interval")
        _stop.wait(settings.sweep_interval_seconds)


@worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    threading.Thread(target=sweep_forever, name="sweeper", daemon=True).start()


@worker_shutdown.connect
def _stop_sweeper(**_: Any) -> None:
    _stop.set()
