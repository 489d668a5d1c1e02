"""Rendered status answers, kept per (request, revision, page) in this API process.

A status page of 1,000 products takes tens of milliseconds to query and render, and pollers ask for the same page
over and over; the request's revision (db/revisions.py) changes with everything the answer shows, so an answer
stored under the revision read a moment ago is still right. Entries also expire after ``TTL_SECONDS``, so presigned
output URLs inside them are always fresh, and the cache holds at most ``MAX_BYTES`` of answers.

Each answer is kept as JSON and gzipped: a full page of 1,000 products is ~375 kB of JSON and ~20 kB gzipped, which
clients that send ``Accept-Encoding: gzip`` (browsers, requests, httpx) get. Compressing once per revision costs
~2 ms; sending 18 times the bytes to every poller measured a third of the status route's throughput. A page holds at
most ~1 MiB of products (api/status_page.py), so every page fits in the cache.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass

TTL_SECONDS = 60.0
MAX_BYTES = 32 * 1024 * 1024
GZIP_LEVEL = 5  # nearly all of level 9's saving for a fraction of its time (docs/performance.md)
# Above this, level 1: on big pages level 5 costs several times the CPU for a few % fewer bytes (docs/performance.md).
LARGE_ANSWER_BYTES = 64 * 1024
# A large answer whose start compresses worse than this is mostly random tokens (signed URLs): run-length matching
# only is faster there and sends fewer bytes (docs/performance.md).
RANDOM_RATIO = 0.3


@dataclass(frozen=True, slots=True)
class Answer:
    json: bytes
    gzipped: bytes

    @classmethod
    def of(cls, body: bytes) -> Answer:
        return cls(body, _gzip(body))

    @property
    def size(self) -> int:
        return len(self.json) + len(self.gzipped)


def _gzip(body: bytes) -> bytes:
    if len(body) <= LARGE_ANSWER_BYTES:
        return gzip.compress(body, GZIP_LEVEL, mtime=0)
    start = body[:LARGE_ANSWER_BYTES]
    random_tokens = len(zlib.compress(start, 1)) > len(start) * RANDOM_RATIO
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31, 8, zlib.Z_RLE if random_tokens else zlib.Z_DEFAULT_STRATEGY)
    return compressor.compress(body) + compressor.flush()


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header admits gzip (or ``*``) with a quality above zero."""
    for item in (accept_encoding or "").split(","):
        coding, *params = (part.strip().lower() for part in item.split(";"))
        if coding in ("gzip", "*"):
            return _quality(params) > 0
    return False


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


class AnswerCache:
    def __init__(self, max_bytes: int = MAX_BYTES, ttl_seconds: float = TTL_SECONDS) -> None:
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._entries: OrderedDict[str, tuple[float, Answer]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # cheap insurance: nothing here may assume one thread

    def get(self, key: str) -> Answer | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, answer = entry
            if time.monotonic() - stored_at > self.ttl_seconds:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return answer

    def put(self, key: str, answer: Answer) -> None:
        if answer.size > self.max_bytes // 4:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (time.monotonic(), answer)
            self._bytes += answer.size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, answer = self._entries.pop(key)
        self._bytes -= answer.size
