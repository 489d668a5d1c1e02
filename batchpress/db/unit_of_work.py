"""One unit of work: a transaction, and the tasks to publish once it has committed.

A task published inside the transaction could reach a worker before its rows are visible, or outlive a rollback;
published after the commit, it can only be lost, and everything it carries is in the database, where the sweeper
finds it again. So every caller (upload, finish, redeliver, the sweep) collects its publishes here, and they share
one failure policy: the first publish that fails is logged with how many were left unsent, the rest are skipped
(with the broker down each would wait out its own retries), and the sweeper catches up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

Publish = Callable[[], None]


@dataclass
class UnitOfWork:
    session: Session
    _pending: list[tuple[str, Publish]] = field(default_factory=list)

    def publish(self, what: str, send: Publish) -> None:
        """Call ``send`` (e.g. an ``apply_async``) after the commit, never after a rollback; ``what`` names it in
        the log if it fails."""
        self._pending.append((what, send))


def publish_all(pending: list[tuple[str, Publish]]) -> int:
    """Send in order until one fails; returns how many were sent."""
    for sent, (what, send) in enumerate(pending):
        try:
            send()
        except Exception:
            left = len(pending) - sent - 1
            more = f" (and {left} more task{'s' if left != 1 else ''} not sent)" if left else ""
            log.warning("could not enqueue %s%s; the sweeper will", what, more, exc_info=True)
            return sent
    return len(pending)


@contextmanager
def unit_of_work(scope: AbstractContextManager[Session]) -> Iterator[UnitOfWork]:
    """A transaction (``scope``, e.g. ``db.session()``) whose publishes go out after its commit."""
    with scope as session:
        work = UnitOfWork(session)
        yield work
    publish_all(work._pending)
