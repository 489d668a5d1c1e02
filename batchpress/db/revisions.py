"""A request's revision: bumped in the same transaction as every change its status answer shows.

The status API renders an answer once per (request, revision, page) and serves it again after one primary-key read
of the revision, so a writer that forgets to bump leaves status stale. The writers are few and all call this:
results and the terminal move (processing/results.py), images given up (processing/leases.py) and every webhook
state change (webhooks/). Lease renewals, claims and requeues are not shown and do not bump.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session

from batchpress.models import ProcessingRequest


def bump_revision(session: Session, request_ids: Iterable[uuid.UUID]) -> None:
    ids = sorted(set(request_ids))  # a fixed order, so two writers never lock the same rows crosswise
    if ids:
        session.execute(
            update(ProcessingRequest)
            .where(ProcessingRequest.id.in_(ids))
            .values(revision=ProcessingRequest.revision + 1)
            .execution_options(synchronize_session=False)
        )
