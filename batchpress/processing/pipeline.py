"""Compressing a chunk of images: claim, download, compress, store, record, then try to finish their requests.

The task in ``tasks.py`` is a thin wrapper over ``ChunkWorker.run``. Every step re-reads state from the database and
changes it with guarded UPDATEs, so running it twice, or on a message delivered twice, changes nothing. Starting,
finishing and sweeping requests live in ``batchpress/lifecycle``.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field

import httpx

from batchpress.config import Settings
from batchpress.db.engine import Database, once_more_if_disconnected
from batchpress.lifecycle.finish import EnqueueEvent, finish
from batchpress.lifecycle.transitions import mark_processing
from batchpress.processing.compress import ImageRejected, compress_image
from batchpress.processing.download import Downloaded, DownloadFailed, download
from batchpress.processing.download_window import DownloadWindow
from batchpress.processing.heartbeat import LeaseHeartbeat
from batchpress.processing.leases import ClaimedImage, claim_images, new_token, renew_leases
from batchpress.processing.results import Compressed, Failed, Outcome, record_results
from batchpress.processing.write_behind import WriteBehind
from batchpress.storage import ImageStorage

log = logging.getLogger(__name__)

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "avif": "image/avif"}


@dataclass
class ChunkWorker:
    """One per pool process. It composes three named parts, each with its policy and its own tests: the lease
    heartbeat, the download window and the write-behind recorder."""

    settings: Settings
    db: Database
    storage: ImageStorage
    client: httpx.Client
    # Publishes a finished request's webhook event (webhooks/tasks.py in the worker).
    enqueue_event: EnqueueEvent
    downloads: DownloadWindow[ClaimedImage, Fetched] = field(init=False)
    recorder: WriteBehind[_Write] = field(init=False)
    heartbeat: LeaseHeartbeat = field(init=False)

    def __post_init__(self) -> None:
        self.heartbeat = LeaseHeartbeat(self._renew, self.settings.lease_seconds)
        self.downloads = DownloadWindow(lambda image: self._download(image.input_url))
        self.recorder = WriteBehind(self._write)

    def _renew(self, tokens: list[str]) -> None:
        with self.db.session(autocommit=True) as session:
            renew_leases(session, tokens=tokens, lease_seconds=self.settings.lease_seconds)

    def run(self, image_ids: list[int]) -> int:
        """Claim, download, compress and store a chunk; returns how many images it claimed.

        Their results are still being written when this returns. A process that dies before the write commits
        leaves those images leased, as one that dies mid-chunk does: the sweeper hands them out again once the
        lease lapses. A process that exits normally writes them first (``drain``).
        """
        token = new_token()
        claimed = once_more_if_disconnected(lambda: self._claim(image_ids, token))
        if not claimed:
            return 0
        # Held until the chunk's last write commits (``_write``), or dropped at once if the chunk fails, so the
        # lease then lapses and the sweeper hands the images out again.
        self.heartbeat.hold(token)
        requests = {c.request_id for c in claimed}
        outcomes: list[tuple[int, Outcome]] = []
        try:
            for image, pending_download in self.downloads.over(claimed):
                outcomes.append((image.id, self._compress_and_store(image, pending_download)))
                if self.recorder.due():
                    self.recorder.submit(_Write(outcomes, token, requests))
                    outcomes = []
        except BaseException:
            self.heartbeat.release(token)
            raise
        self.recorder.submit(_Write(outcomes, token, requests, finishing=True))
        return len(claimed)

    def _claim(self, image_ids: list[int], token: str) -> list[ClaimedImage]:
        """The claim is one statement; marking a pending request is another, which the next claim redoes if lost.
        Repeated after a dropped connection, a claim that did commit finds its images taken and returns none:
        nobody renews those leases, so they lapse and come back."""
        with self.db.session(autocommit=True) as session:
            claimed = claim_images(
                session,
                image_ids,
                token=token,
                lease_seconds=self.settings.lease_seconds,
                max_attempts=self.settings.max_attempts,
            )
            for request_id in {c.request_id for c in claimed if c.request_pending}:
                mark_processing(session, request_id)
        return claimed

    def _record(self, write: _Write) -> None:
        with self.db.session() as session:
            record_results(session, write.outcomes, token=write.token, request_ids=write.requests)

    def drain(self) -> None:
        """Wait for the results write in flight, if any."""
        self.recorder.drain()

    def _write(self, write: _Write) -> None:
        try:
            try:
                once_more_if_disconnected(lambda: self._record(write))
            finally:
                if write.finishing:  # the chunk's images are all recorded now, or left to lapse
                    self.heartbeat.release(write.token)
            for request_id in write.requests if write.finishing else ():
                finish(self.db, request_id, settings=self.settings, enqueue_event=self.enqueue_event)
        except Exception:
            # Nothing else can report it: the task has moved on. The images stay leased, and come back once the
            # lease lapses; the next claim meets the same database and fails its task if it is still down.
            log.exception("writing %d results failed; the images will be handed out again", len(write.outcomes))

    def _download(self, url: str) -> Fetched:
        started = time.monotonic()
        try:
            result: Downloaded | DownloadFailed = download(self.client, url, max_bytes=self.settings.max_image_bytes)
        except DownloadFailed as exc:
            result = exc
        return Fetched(result, elapsed_ms(started))

    def _compress_and_store(self, image: ClaimedImage, pending_download: Future[Fetched]) -> Outcome:
        """The outcome carries how long each step took, so the API's /metrics can build its histograms from the
        database (observability/metrics.py)."""
        download_ms = None
        started = time.monotonic()
        try:
            fetched = pending_download.result()
            download_ms = fetched.download_ms
            if isinstance(fetched.result, DownloadFailed):
                return Failed(str(fetched.result), download_ms=download_ms)
            data = fetched.result.data
            started = time.monotonic()
            result = compress_image(
                data,
                quality=image.quality,
                max_pixels=self.settings.max_image_pixels,
                output_format=image.output_format,
                max_dimension=image.max_dimension,
            )
        except ImageRejected as exc:
            return Failed(str(exc), download_ms=download_ms, process_ms=elapsed_ms(started))
        except Exception as exc:  # a codec bug must fail one image, not the batch
            log.exception("compressing image %s failed", image.id)
            return Failed(f"could not compress the image ({type(exc).__name__})", download_ms=download_ms)
        # Storage errors propagate: the lease lapses and the image is retried, rather than failed for good.
        key = f"{image.key_stem}.{result.extension}"
        url = self.storage.save(key, result.data, CONTENT_TYPES.get(result.extension, ""))
        return Compressed(
            output_url=url,
            input_bytes=len(data),
            output_bytes=len(result.data),
            output_key=key,
            download_ms=download_ms,
            process_ms=elapsed_ms(started),
        )


@dataclass(frozen=True, slots=True)
class _Write:
    """Results for the recorder thread; the chunk's last write (``finishing``) then tries to finish its requests."""

    outcomes: list[tuple[int, Outcome]]
    token: str
    requests: set[uuid.UUID]
    finishing: bool = False


@dataclass(frozen=True, slots=True)
class Fetched:
    """A download's bytes or why it failed, and how long it took either way."""

    result: Downloaded | DownloadFailed
    download_ms: int


def elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
