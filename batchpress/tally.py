"""What a request's images came to, counted one way for every place that reports it: the status and the webhook
event."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from batchpress.models import Image, ImageState, Reuse


@dataclass(frozen=True, slots=True)
class Tally:
    by_state: dict[str, int]
    # Of the compressed images only: a failed one has no output to weigh against its input.
    bytes_in: int
    bytes_out: int
    # Done images whose output already existed (``Image.reused`` set), whatever the reason.
    reused: int

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def done(self) -> int:
        return self.by_state.get(ImageState.DONE.value, 0)

    @property
    def failed(self) -> int:
        return self.by_state.get(ImageState.FAILED.value, 0)

    def byte_counts(self) -> dict[str, int | float | None]:
        """The byte fields of a request's counts. Saved bytes are negative where outputs grew, as a conversion or
        a resize that was asked for may make them."""
        return {
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "bytes_saved": self.bytes_in - self.bytes_out,
            "saved_percent": saved_percent(self.bytes_in, self.bytes_out),
        }


def saved_percent(bytes_in: int, bytes_out: int) -> float | None:
    """The bytes saved as a percentage of the input, to a tenth; None before any image is compressed."""
    if bytes_in <= 0:
        return None
    return round(100 * (bytes_in - bytes_out) / bytes_in, 1)


_REASONS = {why.value: why.reason for why in Reuse}


def reuse_reason(state: str, reused: str | None) -> str | None:
    """What users are told about a done image whose output already existed (``Reuse.reason``); None where it was
    compressed for itself, failed or is not done."""
    if state != ImageState.DONE.value or not reused:
        return None
    # A code this version does not know (written by a newer worker mid-deploy) is shown as it is, not dropped.
    return _REASONS.get(reused, reused)


def tally(session: Session, request_id: uuid.UUID) -> Tally:
    """Counted from the image index on (request, state, id, bytes, reused), without reading an image row."""
    return tallies(session, [request_id])[request_id]


def tallies(session: Session, request_ids: list[uuid.UUID]) -> dict[uuid.UUID, Tally]:
    """``tally`` of several requests in one query (the request list's page)."""
    rows = session.execute(
        select(
            Image.request_id,
            Image.state,
            Image.reused,
            func.count(),
            func.coalesce(func.sum(Image.input_bytes), 0),
            func.coalesce(func.sum(Image.output_bytes), 0),
        )
        .where(Image.request_id.in_(request_ids))
        .group_by(Image.request_id, Image.state, Image.reused)
    ).all()
    counts: dict[uuid.UUID, list[int]] = {rid: [0, 0, 0] for rid in request_ids}  # bytes in, out, reused
    by_state: dict[uuid.UUID, dict[str, int]] = {rid: {} for rid in request_ids}
    for rid, state, why, n, size_in, size_out in rows:
        by_state[rid][state] = by_state[rid].get(state, 0) + n
        if state == ImageState.DONE.value:
            counts[rid][0] += int(size_in or 0)
            counts[rid][1] += int(size_out or 0)
            counts[rid][2] += n if why is not None else 0
    return {rid: Tally(by_state[rid], *counts[rid]) for rid in request_ids}
