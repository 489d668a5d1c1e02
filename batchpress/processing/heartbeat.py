"""A lease heartbeat: the leases a process holds stay alive exactly as long as the process does.

A lease renewed only as images finish makes one choose between a long lease (a dead worker's images wait it out)
and a short one (a live worker on a slow image loses it). Renewed by a thread of the process that holds it, a lease
can be short: it lapses a few seconds after a ``kill -9``, and never while its holder lives, however slow the image.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)

# Renewals per lease: three can fail in a row (a database restart, SQLite's write lock held by a big upload)
# before the lease lapses under a live worker.
BEATS_PER_LEASE = 4

Renew = Callable[[list[str]], None]


class LeaseHeartbeat:
    """Renews every lease token this process holds, one statement per beat, on a daemon thread of its own."""

    def __init__(self, renew: Renew, lease_seconds: float) -> None:
        self._renew = renew
        self.interval = lease_seconds / BEATS_PER_LEASE
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, token: str) -> None:
        """Keep ``token``'s lease alive until ``release``; starts the thread on first use (after any fork)."""
        with self._lock:
            self._held[token] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
                self._thread.start()

    def release(self, token: str) -> None:
        with self._lock:
            self._held[token] -= 1
            if self._held[token] <= 0:
                del self._held[token]

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)

    def beat(self) -> None:
        """Renew what is held now; a failure is logged and the next beat tries again."""
        tokens = self.held()
        if not tokens:
            return
        try:
            self._renew(tokens)
        except Exception:
            log.warning(
                "could not renew %d lease(s); trying again in %.1f s", len(tokens), self.interval, exc_info=True
            )

    def stop(self) -> None:
        self._stop.set()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()
