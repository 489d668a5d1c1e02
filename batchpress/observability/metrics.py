"""Prometheus metrics, computed from the database each time they are scraped.

Why the database and not counters in memory: images are compressed in Celery prefork pool processes, on this
machine in the embedded mode and on other machines at scale. Counters kept there would be invisible to the API
process that serves ``/metrics``, lost whenever a pool process is recycled, and would need prometheus_client's
multiprocess mode plus an HTTP endpoint on every worker machine. Every result already lands in the ``image`` and
``webhook_attempt`` tables, so the collector below turns a few aggregate queries into metric families at scrape
time; the workers only add two durations to the row they write anyway (``image.download_ms``, ``image.process_ms``).
The numbers are therefore cluster-wide, the same from every API replica, and survive restarts.

What follows for whoever runs it:

- Every API replica reports the same totals: scrape one, or combine replicas with ``max`` rather than ``sum``.
- Totals count the rows still in the database; deleting old requests lowers them, which Prometheus reads as a
  counter reset.
- Histograms are cumulative over every image with a stored duration, bucketed in SQL, so ``rate()`` and
  ``histogram_quantile()`` work as with in-process histograms. Images finished before migration 0005 carry no
  durations and are left out of them.
- A scrape costs four aggregate queries; the queue-depth and failure ones use the ``(state, lease_until)`` index,
  the totals scan the finished images. Even a few million images take well under the usual scrape timeout.
- Failure reasons are a fixed set of labels matched from the start of the stored error text (``FAILURE_REASONS``),
  never the text itself, so a hostile URL cannot mint new series.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session

from batchpress.db.engine import Database
from batchpress.models import Image, ImageState, StoredOutput, WebhookAttempt
from batchpress.observability.probes import limit_statement_time

log = logging.getLogger(__name__)

SCRAPE_STATEMENT_TIMEOUT_MS = 10_000

# Label -> LIKE patterns for the error texts written by download.py, compress.py and the sweeper, tried in order.
FAILURE_REASONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("blocked", ("blocked: %",)),
    ("timeout", ("timed out%", "took longer than the %")),
    ("connection_failed", ("connection failed: %",)),
    ("http_error", ("HTTP %", "more than % redirects")),
    ("too_large", ("image is % bytes, over the %-byte limit", "image is over the %-byte limit")),
    ("not_an_image", ("not an image (%", "unsupported image format (%")),
    (
        "too_many_pixels",
        ("image is % MP, over the % MP limit", "image is %x%, over the % pixels a side", "image has too many pixels%"),
    ),
    ("corrupt", ("truncated or corrupt %", "image has an invalid size %")),
    ("worker_lost", ("gave up after % attempts%",)),
)
OTHER_REASON = "other"
REASON_LABELS = (*(label for label, _ in FAILURE_REASONS), OTHER_REASON)
WEBHOOK_OUTCOMES = ("delivered", "retry", "gave_up")

DOWNLOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PROCESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def failure_reason(error: ColumnElement[str] | InstrumentedAttribute[str | None]) -> ColumnElement[str]:
    """The SQL expression that maps an error text to one of ``REASON_LABELS``."""
    return case(
        *((or_(*(error.like(pattern) for pattern in patterns)), label) for label, patterns in FAILURE_REASONS),
        else_=OTHER_REASON,
    )


def _histogram_columns(
    column: InstrumentedAttribute[int | None], bounds: tuple[float, ...]
) -> list[ColumnElement[int]]:
    """COUNT, SUM and one cumulative count per bucket bound, all from a single pass over the rows."""
    per_bucket = [func.coalesce(func.sum(case((column <= round(b * 1000), 1), else_=0)), 0) for b in bounds]
    return [func.count(column), func.coalesce(func.sum(column), 0), *per_bucket]


def _histogram(
    name: str, documentation: str, bounds: tuple[float, ...], values: tuple[int, ...]
) -> HistogramMetricFamily:
    count, total_ms, *cumulative = values
    buckets = [(str(float(b)), float(n)) for b, n in zip(bounds, cumulative, strict=True)]
    buckets.append(("+Inf", float(count)))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=total_ms / 1000)


class DatabaseCollector(Collector):
    """Reads every metric from the database when scraped; see the module docstring for why."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "batchpress_metrics_database_up", "1 when the database answered this scrape; the other metrics need it"
        )
        try:
            with self.db.session(read_only=True) as session:
                limit_statement_time(session, SCRAPE_STATEMENT_TIMEOUT_MS)
                families = list(_families(session))
        except SQLAlchemyError:
            log.warning("metrics: the database did not answer", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _families(session: Session) -> Iterator[Metric]:
    by_state = dict(
        session.execute(
            select(Image.state, func.count())
            .where(Image.state.in_([ImageState.PENDING.value, ImageState.PROCESSING.value]))
            .group_by(Image.state)
        ).all()
    )
    queue = GaugeMetricFamily(
        "batchpress_queue_depth",
        "Images waiting for a worker (pending) or being worked on (processing)",
        labels=["state"],
    )
    for state in (ImageState.PENDING, ImageState.PROCESSING):
        queue.add_metric([state.value], by_state.get(state.value, 0))
    yield queue

    done = Image.state == ImageState.DONE.value
    finished = session.execute(
        select(
            func.count().filter(done),
            func.coalesce(func.sum(Image.input_bytes).filter(done), 0),
            func.coalesce(func.sum(Image.output_bytes).filter(done), 0),
            *_histogram_columns(Image.download_ms, DOWNLOAD_BUCKETS),
            *_histogram_columns(Image.process_ms, PROCESS_BUCKETS),
        ).where(Image.state.in_([ImageState.DONE.value, ImageState.FAILED.value]))
    ).one()
    processed, input_bytes, output_bytes, *histograms = (int(v or 0) for v in finished)
    yield CounterMetricFamily("batchpress_images_processed", "Images compressed and stored", value=processed)
    yield CounterMetricFamily(
        "batchpress_image_input_bytes", "Bytes downloaded for the images that were compressed", value=input_bytes
    )
    yield CounterMetricFamily(
        "batchpress_image_output_bytes", "Bytes stored for the compressed images", value=output_bytes
    )
    split = 2 + len(DOWNLOAD_BUCKETS)
    yield _histogram(
        "batchpress_image_download_seconds",
        "Time to download one image, retries and redirects included, whether it succeeded or not",
        DOWNLOAD_BUCKETS,
        tuple(histograms[:split]),
    )
    yield _histogram(
        "batchpress_image_process_seconds",
        "Time to decode, compress and store one downloaded image, rejected images included",
        PROCESS_BUCKETS,
        tuple(histograms[split:]),
    )

    reason = failure_reason(Image.error)
    by_reason = dict(
        session.execute(
            select(reason, func.count()).where(Image.state == ImageState.FAILED.value).group_by(reason)
        ).all()
    )
    failed = CounterMetricFamily(
        "batchpress_images_failed", "Images that failed for good, by reason", labels=["reason"]
    )
    for label in REASON_LABELS:
        failed.add_metric([label], by_reason.get(label, 0))
    yield failed

    stored = session.execute(select(func.count(), func.coalesce(func.sum(StoredOutput.output_bytes), 0))).one()
    yield GaugeMetricFamily(
        "batchpress_stored_outputs", "Distinct outputs in storage (each stored once, whoever lists it)", value=stored[0]
    )
    yield GaugeMetricFamily(
        "batchpress_stored_output_bytes",
        "Bytes of the distinct outputs in storage; retention (BATCHPRESS_RETENTION_DAYS) bounds it",
        value=int(stored[1] or 0),
    )

    by_outcome = dict(
        session.execute(select(WebhookAttempt.outcome, func.count()).group_by(WebhookAttempt.outcome)).all()
    )
    webhooks = CounterMetricFamily(
        "batchpress_webhook_delivery_attempts",
        "Webhook POSTs by outcome: delivered (2xx), retry (another attempt is scheduled) or gave_up",
        labels=["outcome"],
    )
    for outcome in WEBHOOK_OUTCOMES:
        webhooks.add_metric([outcome], by_outcome.get(outcome, 0))
    yield webhooks


def make_registry(db: Database) -> CollectorRegistry:
    """A registry of our own: the default one would add this API process's Python and process metrics, which say
    nothing about the workers and would differ between replicas that otherwise report the same numbers."""
    own = CollectorRegistry()
    own.register(DatabaseCollector(db))
    return own


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
