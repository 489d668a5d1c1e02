"""How long to wait before trying again: a dependency that does not answer yet, a child process that died.

One policy for every supervised child (the ``batchpress worker`` beside ``serve``, each API process): a child that
dies soon after it was started is failing at start, and starting it again at once would only repeat the failure in
a tight loop, so the next start waits 1, 2, 4 ... 30 s, and after a few such failures in a row (or one exit with
``EXIT_STARTUP``, a child's "restarting will not help") the supervision loop (cli/supervision.py) gives up. A child
that ran longer than the grace period had started fine; if it dies then it is replaced at once, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# sysexits.h EX_CONFIG: a setting or dependency is wrong and a restart would fail the same way.
EXIT_STARTUP = 78
# Uvicorn's exit code when the app or its socket could not start (uvicorn.config.STARTUP_FAILURE).
UVICORN_STARTUP_FAILURE = 3
FIRST_DELAY_SECONDS = 1.0
# Long enough to stop hammering a dependency, short enough that a fixed one is noticed within half a minute.
MAX_DELAY_SECONDS = 30.0
# Longer than a worker takes to connect and be ready, with room for a slow machine (docs/reliability.md).
GRACE_SECONDS = 30.0
# Enough failures in a row to ride out a hiccup, few enough not to hide a fault.
GIVE_UP_AFTER = 5
# A child that crashed after running fine is replaced after this pause (the restart that existed before backoff).
RESTART_DELAY_SECONDS = 1.0


def backoff_delay(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (0-based): 1, 2, 4, 8, 16, 30, 30, ..."""
    return min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * float(1 << min(attempt, 16)))


@dataclass(frozen=True)
class Decision:
    """What to do about a child that exited: start another after ``delay`` seconds, or give up (``delay`` None)."""

    delay: float | None
    message: str
    exit_code: int = 1


class Restarts:
    """The restart policy for one supervised child slot; ``clock`` and ``delay`` are injectable so tests need not
    sleep."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        grace_seconds: float = GRACE_SECONDS,
        give_up_after: int = GIVE_UP_AFTER,
        permanent_codes: frozenset[int] = frozenset({EXIT_STARTUP, UVICORN_STARTUP_FAILURE}),
        delay: Callable[[int], float] = backoff_delay,
    ) -> None:
        self._clock = clock
        self._delay = delay
        self._grace = grace_seconds
        self._give_up_after = give_up_after
        self._permanent = permanent_codes
        self._started_at = clock()
        self._failures = 0

    def started(self) -> None:
        self._started_at = self._clock()

    def exited(self, code: int | None, name: str, pid: int | None) -> Decision:
        """Decide about the child ``name`` (e.g. "worker process") ``pid``, which has just exited with ``code``."""
        what = f"{name} {pid}"
        uptime = self._clock() - self._started_at
        if uptime >= self._grace:
            self._failures = 0
            return Decision(
                RESTART_DELAY_SECONDS, f"{what} exited with code {code} after {uptime:.0f} s; starting another"
            )
        if code in self._permanent:
            return Decision(
                None, f"{what} could not start (exit code {code}); see its error above", exit_code=EXIT_STARTUP
            )
        self._failures += 1
        if self._failures >= self._give_up_after:
            return Decision(
                None,
                f"{name} keeps failing at start ({self._failures} times in a row, last with exit code {code});"
                " see its error above",
            )
        delay = self._delay(self._failures - 1)
        return Decision(
            delay, f"{what} exited with code {code} at start ({uptime:.0f} s); starting another in {delay:g} s"
        )
