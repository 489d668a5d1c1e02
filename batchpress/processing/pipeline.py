"""Compressing a chunk of images: claim, download, compress, store, record, then try to finish their requests.

The task in ``tasks.py`` is a thin wrapper over ``ChunkWorker.run``. Every step re-reads state from the database and
changes it with guarded UPDATEs, so running it twice, or on a message delivered twice, changes nothing. Starting,
finishing and sweeping requests live in ``batchpress/lifecycle``.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field

import httpx

from batchpress.config import Settings
from batchpress.db.engine import Database, once_more_if_disconnected
from batchpress.lifecycle.delete import doomed_under, revive
from batchpress.lifecycle.finish import EnqueueEvent, finish
from batchpress.lifecycle.start import Enqueue
from batchpress.lifecycle.transitions import mark_processing
from batchpress.logs import request_id_var
from batchpress.models import Reuse
from batchpress.processing.compress import ImageRejected, compress_image
from batchpress.processing.cpu_budget import CpuBudget, OverBudget
from batchpress.processing.download import Downloaded, DownloadFailed, download
from batchpress.processing.download_window import DownloadWindow
from batchpress.processing.fair_share import claim_next, has_pending, planned_chunks, release, someone_else_waits
from batchpress.processing.heartbeat import LeaseHeartbeat
from batchpress.processing.leases import ClaimedImage, new_token, renew_leases
from batchpress.processing.results import Compressed, Failed, Outcome, Seen, record_results
from batchpress.processing.reuse import (
    Conditional,
    Found,
    conditions_for,
    content_key,
    find_outputs,
    keep_outputs,
    key_prefix,
    preview_keys,
    recipe_of,
    scope_of,
    sha256,
)
from batchpress.processing.write_behind import WriteBehind
from batchpress.storage import ImageStorage
from batchpress.worker.memory import over_ceiling

log = logging.getLogger(__name__)

# A chunk runs this long before it gives way to a request nobody works on: short enough for a small request's
# latency, long enough that requests outnumbering processes take turns without wasting the downloads run ahead.
YIELD_AFTER_SECONDS = 1.0
# How often it asks after that (a read of ~0.5 ms).
YIELD_CHECK_SECONDS = 0.2
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
    # Publishes a message that wakes a worker for a request (worker/queue.py).
    wake: Enqueue
    # Stops an image that spends more CPU than it may; worker processes have one (worker/process.py).
    budget: CpuBudget | None = None
    downloads: DownloadWindow[ClaimedImage, Fetched] = field(init=False)
    recorder: WriteBehind[_Write] = field(init=False)
    heartbeat: LeaseHeartbeat = field(init=False)
    # Stores an image's previews while this thread stores its output: one storage round trip an image, not three.
    saves: ThreadPoolExecutor = field(init=False)
    # The current chunk's validators to send, by image id (processing/reuse.py).
    conditions: dict[int, Conditional] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.heartbeat = LeaseHeartbeat(self._renew, self.settings.lease_seconds)
        self.downloads = DownloadWindow(self._download)
        self.recorder = WriteBehind(self._write)
        self.saves = ThreadPoolExecutor(max_workers=2, thread_name_prefix="preview-save")

    def _renew(self, tokens: list[str]) -> None:
        with self.db.session(autocommit=True) as session:
            renew_leases(session, tokens=tokens, lease_seconds=self.settings.lease_seconds)

    def run_next(self, turn_of: uuid.UUID | None = None) -> int:
        """Claim the chunk whose turn it is, then download, compress and store it; returns how many images it
        claimed (0 when no open request has one left).

        ``turn_of`` is the request whose message woke this call. When the claim serves another request's turn,
        ``turn_of`` gets its message back, so every request keeps one message per chunk it has left.

        Results are still being written when this returns. A process that dies before the write commits leaves
        those images leased, as one that dies mid-chunk does: the sweeper hands them out again once the lease
        lapses. A process that exits normally writes them first (``drain``).
        """
        token = new_token()
        claimed = once_more_if_disconnected(lambda: self._claim(token))
        if turn_of is not None and (not claimed or claimed[0].request_id != turn_of):
            # Spent on another request's turn, or on none as other claims held every image locked: its request
            # gets it back while it has images waiting.
            self._hand_back(turn_of)
        if not claimed:
            return 0
        # Held until the chunk's last write commits (``_write``), or dropped at once if the chunk fails, so the
        # lease then lapses and the sweeper hands the images out again.
        self.heartbeat.hold(token)
        self.conditions = self._conditions(claimed)
        requests = {c.request_id for c in claimed}
        outcomes: list[tuple[int, Outcome]] = []
        log_token = request_id_var.set(str(claimed[0].request_id))
        checked = time.monotonic() + YIELD_AFTER_SECONDS - YIELD_CHECK_SECONDS
        try:
            for done, (image, pending_download) in enumerate(self.downloads.over(claimed), 1):
                outcomes.append((image.id, self._compress_and_store(image, pending_download, token)))
                if self.recorder.due():
                    self.recorder.submit(_Write(outcomes, token, requests))
                    outcomes = []
                if done == len(claimed):
                    continue
                rest = [c.id for c in claimed[done:]]
                if over_ceiling(self.settings):  # Celery replaces this process once the task ends
                    log.warning("this process holds more memory than its ceiling; giving back %d images", len(rest))
                    self._give_back(claimed[0], rest, token)
                    break
                if time.monotonic() - checked >= YIELD_CHECK_SECONDS:
                    checked = time.monotonic()
                    if self._someone_else_waits(claimed[0].request_id):
                        self._give_back(claimed[0], rest, token)
                        break
        except BaseException:
            self.heartbeat.release(token)
            raise
        finally:
            request_id_var.reset(log_token)
        self.recorder.submit(_Write(outcomes, token, requests, finishing=True))
        return len(claimed)

    def _claim(self, token: str) -> list[ClaimedImage]:
        """One transaction: the claim, and the request moved to ``processing`` when it was still pending.
        Repeated after a dropped connection, a claim that did commit leaves its images to lapse and come back, as
        nobody renews their leases."""
        with self.db.session() as session:
            claimed = claim_next(
                session, token=token, lease_seconds=self.settings.lease_seconds, max_attempts=self.settings.max_attempts
            )
            for request_id in {c.request_id for c in claimed if c.request_pending}:
                mark_processing(session, request_id)
        return claimed

    def _conditions(self, claimed: list[ClaimedImage]) -> dict[int, Conditional]:
        """Validators for the chunk's downloads; without them (the read failed) every download is a full one."""
        try:
            with self.db.session(read_only=True) as session:
                return conditions_for(session, claimed)
        except Exception:
            log.warning("could not read the validators of past downloads; downloading in full", exc_info=True)
            return {}

    def _stored(self, recipe: str) -> tuple[Found | None, bool]:
        """The stored output of ``recipe``, if any, and whether one of its outputs is doomed (deleted with its last
        request, lifecycle/delete.py), in one read. A failed read compresses again rather than fail the image."""
        try:
            with self.db.session(read_only=True) as session:
                found = find_outputs(session, [recipe]).get(recipe)
                return found, found is None and doomed_under(session, key_prefix(recipe))
        except Exception:
            log.warning("could not look up stored outputs; compressing", exc_info=True)
            return None, True

    def _revive(self, key: str) -> None:
        """Take ``key`` off the doomed list before writing it again, in a transaction of its own (lifecycle/delete.py).
        A failure propagates, like a storage error."""
        with self.db.session() as session:
            revive(session, key)

    def _someone_else_waits(self, request_id: uuid.UUID) -> bool:
        """Whether the chunk should end here for a request nobody works on; a failure lets it go on."""
        try:
            with self.db.session(read_only=True) as session:
                return someone_else_waits(session, request_id, max_attempts=self.settings.max_attempts)
        except Exception:
            log.warning("could not check whether another request waits; going on with the chunk", exc_info=True)
            return False

    def _give_back(self, first: ClaimedImage, rest: list[int], token: str) -> None:
        """End the chunk early: the images not started go back, with a message for each chunk they make. Left
        leased if that fails, they come back when the lease lapses."""
        try:
            with self.db.session() as session:
                release(session, rest, token=token, lease_seconds=self.settings.lease_seconds)
            for _ in range(planned_chunks(len(rest), first.request_images or len(rest))):
                self.wake(first.request_id)
        except Exception:
            log.warning(
                "could not give back %d images; they come back when their lease lapses", len(rest), exc_info=True
            )

    def _hand_back(self, request_id: uuid.UUID) -> None:
        """Publish ``request_id``'s message again if it still has images waiting; a failure is left to the sweeper,
        which brings back pending images nobody claims."""
        try:
            with self.db.session(read_only=True) as session:
                waiting = has_pending(session, request_id, max_attempts=self.settings.max_attempts)
            if waiting:
                self.wake(request_id)
        except Exception:
            log.warning("could not hand request %s its turn back; the sweeper will", request_id, exc_info=True)

    def _record(self, write: _Write) -> None:
        with self.db.session() as session:
            outcomes, dropped = keep_outputs(session, write.outcomes, url_for=self.storage.url_for)
            record_results(session, outcomes, token=write.token, request_ids=write.requests)
        for key in dropped:  # another worker stored this recipe first, with other bytes: its output is listed
            try:
                self.storage.delete(key)
            except Exception:
                log.warning("could not delete %s, whose recipe another output holds", key, exc_info=True)

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

    def _download(self, image: ClaimedImage) -> Fetched:
        started = time.monotonic()
        conditional = self.conditions.get(image.id)
        try:
            result: Downloaded | DownloadFailed = download(
                self.client,
                image.input_url,
                max_bytes=self.settings.max_image_bytes,
                conditional=conditional.headers if conditional else None,
            )
        except DownloadFailed as exc:
            result = exc
        return Fetched(result, elapsed_ms(started), conditional)

    def _compress_and_store(self, image: ClaimedImage, pending_download: Future[Fetched], token: str) -> Outcome:
        """The outcome carries how long each step took, so the API's /metrics can build its histograms from the
        database (observability/metrics.py)."""
        download_ms = None
        started = time.monotonic()
        try:
            fetched = pending_download.result()
            download_ms = fetched.download_ms
            if isinstance(fetched.result, DownloadFailed):
                return Failed(str(fetched.result), download_ms=download_ms)
            downloaded = fetched.result
            if downloaded.not_modified and fetched.conditional is not None:
                return self._reuse(fetched.conditional.found, fetched.conditional.source_bytes, Reuse.ORIGIN, fetched)
            data = downloaded.data
            source_hash = sha256(data)
            seen = Seen(
                scope_of(image), image.input_url, downloaded.etag, downloaded.last_modified, source_hash, len(data)
            )
            recipe = recipe_of(source_hash, image)
            found, doomed = self._stored(recipe)
            if found is not None:
                return self._reuse(found, len(data), Reuse.CONTENT, fetched, seen)
            started = time.monotonic()
            budget = self.budget
            with budget.limit(functools.partial(self._give_up, image, token)) if budget else nullcontext():
                result = compress_image(
                    data,
                    quality=image.quality,
                    max_pixels=self.settings.max_image_pixels,
                    output_format=image.output_format,
                    max_dimension=image.max_dimension,
                    effort=image.effort,
                    stage=budget.enter if budget else None,
                    previews=self.settings.previews,
                )
        except (ImageRejected, OverBudget) as exc:  # for good: another worker would spend the same again
            return Failed(str(exc), download_ms=download_ms, process_ms=elapsed_ms(started))
        except Exception as exc:  # a codec bug must fail one image, not the batch
            log.exception("compressing image %s failed", image.id)
            return Failed(f"could not compress the image ({type(exc).__name__})", download_ms=download_ms)
        # Storage errors propagate: the lease lapses and the image is retried, rather than failed for good.
        key = content_key(recipe, result.data, result.extension)
        if doomed:  # a deleted request's output made again: rarely
            self._revive(key)
        shown, previews = result.previews, preview_keys(key)
        pairs = list(zip(previews, (shown.before, shown.after), strict=True)) if shown and previews else []
        saving = [self.saves.submit(self.storage.save, k, data, CONTENT_TYPES["webp"]) for k, data in pairs]
        url = self.storage.save(key, result.data, CONTENT_TYPES.get(result.extension, ""))
        # Nobody can see the output before its image is recorded, after this: the order of the three is free.
        for pending in saving:
            pending.result()
        return Compressed(
            output_url=url,
            input_bytes=len(data),
            output_bytes=len(result.data),
            output_key=key,
            download_ms=download_ms,
            process_ms=elapsed_ms(started),
            recipe=recipe,
            seen=seen,
            previews=bool(pairs),
        )

    def _reuse(self, found: Found, input_bytes: int, why: Reuse, fetched: Fetched, seen: Seen | None = None) -> Outcome:
        return Compressed(
            output_url=self.storage.url_for(found.output_key),
            input_bytes=input_bytes,
            output_bytes=found.output_bytes,
            output_key=found.output_key,
            previews=found.previews,
            download_ms=fetched.download_ms,
            reused=why.value,
            seen=seen,
        )

    def _give_up(self, image: ClaimedImage, token: str, reason: str) -> None:
        """The CPU budget's hard stop, from its watchdog just before it kills this process: the image fails for
        good, so no other worker takes it up again."""
        with self.db.session() as session:
            record_results(session, [(image.id, Failed(reason))], token=token, request_ids={image.request_id})


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
    # The validators sent, and what a 304 reuses.
    conditional: Conditional | None = None


def elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
