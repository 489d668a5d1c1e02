"""Recording what happened to an image: ``record_results`` is the single way results enter the database,
whoever produced them. The request's terminal move (lifecycle/transitions.py ``finish_request``) must run in a
transaction of its own *after* the result is committed: if two workers recorded their last images and checked for
completion in the same transactions, each would still see the other's image open and neither would finish it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from sqlalchemy import Table, Update, bindparam, literal, select, update
from sqlalchemy.orm import Session

from batchpress.db.base import utcnow
from batchpress.db.revisions import bump_revision
from batchpress.models import Image, ImageState
from batchpress.processing.leases import OPEN_STATES
from batchpress.processing.repeats import settle_repeats

MAX_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class Seen:
    """What a full download of a URL gave: kept for the next download's validators (processing/reuse.py)."""

    scope: str
    url: str
    etag: str | None
    last_modified: str | None
    source_hash: str
    source_bytes: int


@dataclass(frozen=True, slots=True)
class Compressed:
    output_url: str
    input_bytes: int
    output_bytes: int
    # None when the output lives outside our storage (an external processor reported its own URL).
    output_key: str | None = None
    download_ms: int | None = None
    process_ms: int | None = None
    # Why an existing output was taken (models.Reuse), or None when this image's source was compressed.
    reused: str | None = None
    # The recipe of a freshly compressed output, which later images with the same one reuse (processing/reuse.py).
    recipe: str | None = None
    # The download's validators and source hash, when it was a full download.
    seen: Seen | None = None
    # Whether the output's previews are stored (processing/reuse.py ``preview_keys``).
    previews: bool = False


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str
    download_ms: int | None = None
    process_ms: int | None = None


Outcome = Compressed | Failed


def record_results(
    session: Session,
    outcomes: list[tuple[int, Outcome]],
    *,
    token: str | None = None,
    request_ids: Collection[uuid.UUID] | None = None,
) -> int:
    """Store several images' outcomes in one transaction and bump their requests' revisions once; returns how
    many were stored. An outcome is stored only while its image is open and, with ``token`` (the claiming
    worker's lease token), still leased by that worker; results from outside the worker pool pass ``None``.
    A caller that knows the images' requests passes them in ``request_ids``, saving the query for them.

    One executemany per kind of outcome: an ORM UPDATE per image cost a tenth of a pool process's time next to
    the codec (docs/performance.md)."""
    if not outcomes:
        return 0
    now = utcnow()
    connection = session.connection()
    stored = 0
    for compressed in (True, False):
        rows = [_params(i, o, now, token) for i, o in outcomes if isinstance(o, Compressed) == compressed]
        if rows:
            stored += connection.execute(_record_statement(compressed, token is not None), rows).rowcount
    if stored:
        request_ids = request_ids if request_ids is not None else _requests_of(session, outcomes)
        # Repeats of these images later in their requests take their results in the same transaction.
        settle_repeats(session, request_ids)
        # Every request of the batch, though an image whose lease was lost changed nothing: an extra bump only
        # makes pollers fetch an unchanged answer once.
        bump_revision(session, request_ids)
    return stored


def _requests_of(session: Session, outcomes: list[tuple[int, Outcome]]) -> list[uuid.UUID]:
    ids = [image_id for image_id, _ in outcomes]
    return list(session.scalars(select(Image.request_id).where(Image.id.in_(ids)).distinct()))


@lru_cache(maxsize=4)
def _record_statement(compressed: bool, leased: bool) -> Update:
    """The guarded UPDATE for one kind of outcome, built once; ``_params`` gives each row's parameters."""
    table = cast(Table, Image.__table__)
    # The open states as literals: an expanding IN parameter cannot go into an executemany.
    conditions = [table.c.id == bindparam("b_id"), table.c.state.in_([literal(s) for s in OPEN_STATES])]
    if leased:
        conditions.append(table.c.lease_token == bindparam("b_token"))
    fields = ["download_ms", "process_ms", "updated_at", "error", "reused"]
    if compressed:
        fields += ["output_url", "output_key", "input_bytes", "output_bytes", "previews"]
    state = ImageState.DONE.value if compressed else ImageState.FAILED.value
    return (
        update(table)
        .where(*conditions)
        .values(state=state, lease_token=None, lease_until=None, **{f: bindparam(f"b_{f}") for f in fields})
    )


def _params(image_id: int, outcome: Outcome, now: dt.datetime, token: str | None) -> dict[str, object]:
    """One row's parameters for ``_record_statement`` of its kind."""
    row: dict[str, object] = {
        "b_id": image_id,
        "b_token": token,
        "b_download_ms": outcome.download_ms,
        "b_process_ms": outcome.process_ms,
        "b_updated_at": now,
    }
    if isinstance(outcome, Failed):
        return row | {"b_error": outcome.reason[:MAX_ERROR_CHARS], "b_reused": None}
    return row | {
        "b_error": None,
        "b_reused": outcome.reused,
        "b_output_url": outcome.output_url,
        "b_output_key": outcome.output_key,
        "b_input_bytes": outcome.input_bytes,
        "b_output_bytes": outcome.output_bytes,
        "b_previews": outcome.previews,
    }


def record_result(session: Session, image_id: int, outcome: Outcome, *, token: str | None = None) -> bool:
    """One image's outcome (see ``record_results``); False when it was already final or another worker owns it."""
    return record_results(session, [(image_id, outcome)], token=token) == 1
