"""Rendered status answers, kept per (request, revision, page) in this API process.

A status page of 1,000 products takes tens of milliseconds to query and render, and pollers ask for the same page
over and over; the request's revision (db/revisions.py) changes with everything the answer shows, so an answer
stored under the revision read a moment ago is still right. Entries also expire after ``TTL_SECONDS``, so presigned
output URLs inside them are always fresh, and the cache holds at most ``MAX_BYTES`` of answers.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

TTL_SECONDS = 60.0
MAX_BYTES = 32 * 1024 * 1024


class AnswerCache:
    def __init__(self, max_bytes: int = MAX_BYTES, ttl_seconds: float = TTL_SECONDS) -> None:
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # cheap insurance: nothing here may assume one thread

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, body = entry
            if time.monotonic() - stored_at > self.ttl_seconds:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return body

    def put(self, key: str, body: bytes) -> None:
        if len(body) > self.max_bytes // 4:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (time.monotonic(), body)
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, body = self._entries.pop(key)
        self._bytes -= len(body)
