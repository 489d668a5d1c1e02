from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, Uuid, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from batchpress.db.base import Base, utcnow

if TYPE_CHECKING:
    from batchpress.models.product import Product


class ImageState(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    # Its URL appeared earlier in its request: it takes that image's result (``repeat_of``) and is never claimed.
    WAITING = "waiting"


class Reuse(enum.StrEnum):
    """Why an image took an output that already existed instead of compressing its source."""

    REQUEST = "request"  # the same URL earlier in this request
    ORIGIN = "origin"  # the origin answered 304 to the validators of the last download
    CONTENT = "content"  # the downloaded bytes and the options matched a stored output

    @property
    def reason(self) -> str:
        return _REASONS[self]


_REASONS = {
    Reuse.REQUEST: "same source in this request",
    Reuse.ORIGIN: "unchanged at origin (304)",
    Reuse.CONTENT: "same content",
}


class Image(Base):
    """One input URL of a product: the unit of work, and the source of truth for its progress.

    ``lease_until`` is a deadline in both open states: for ``processing`` it is when the claiming worker's
    lease runs out, for ``pending`` when the sweeper should enqueue it again because no worker took it.
    """

    __tablename__ = "image"
    __table_args__ = (
        # A claim reads a request's next pending images in id order from it, and the status page's progress
        # (counts, bytes and reuse per state) without reading any image row (docs/performance.md).
        Index("ix_image_request_state_bytes", "request_id", "state", "id", "input_bytes", "output_bytes", "reused"),
        # Deleting a request removes an output only when no other image lists it.
        Index(
            "ix_image_output_key",
            "output_key",
            sqlite_where=text("output_key IS NOT NULL"),
            postgresql_where=text("output_key IS NOT NULL"),
        ),
        Index("ix_image_state_lease", "state", "lease_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("processing_request.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    input_url: Mapped[str] = mapped_column(Text)
    output_url: Mapped[str | None] = mapped_column(Text, default=None)
    # Where our storage keeps the output; URLs are built from it when read, so presigned links never go stale.
    output_key: Mapped[str | None] = mapped_column(Text, default=None)
    state: Mapped[str] = mapped_column(String(16), default=ImageState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    lease_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    lease_token: Mapped[str | None] = mapped_column(String(32), default=None)
    input_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    output_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    # How long the download and the compress-and-store steps took, for the /metrics histograms; None where a step
    # never ran (the download failed) or the result came from an external processor.
    download_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    process_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The first image of the same request with the same URL, whose result this one takes (state ``waiting``).
    repeat_of: Mapped[int | None] = mapped_column(Integer, default=None)
    # Why its output is one that already existed (``Reuse``); None when it was compressed for it, or failed.
    reused: Mapped[str | None] = mapped_column(String(16), default=None)
    # Whether its output's previews are stored (processing/reuse.py ``preview_keys``); outputs made before previews
    # existed, and external results, have none.
    previews: Mapped[bool] = mapped_column(Boolean, server_default=false())

    product: Mapped[Product] = relationship(back_populates="images", lazy="raise")
