from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from batchpress.db.base import Base, utcnow

if TYPE_CHECKING:
    from batchpress.models.product import Product


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    # Cancelled by its owner: the images not started then failed as cancelled; those in flight finished.
    CANCELLED = "cancelled"

    @classmethod
    def open_states(cls) -> tuple[str, ...]:
        return (cls.PENDING.value, cls.PROCESSING.value)


class ProcessingRequest(Base):
    """One uploaded CSV. Its status leaves the open states exactly once, by a guarded UPDATE."""

    __tablename__ = "processing_request"
    __table_args__ = (
        # Listed newest first, a page at a time: all requests, or one API key's.
        Index("ix_request_created", "created_at", "id"),
        Index("ix_request_key_created", "api_key_id", "created_at", "id"),
        # Retention finds the requests that finished longest ago.
        Index("ix_request_finished", "finished_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(32), default=RequestStatus.PENDING.value, index=True)
    # Per-request compression options, chosen at upload.
    quality: Mapped[int] = mapped_column(Integer, default=50, server_default="50")
    output_format: Mapped[str] = mapped_column(String(16), default="original", server_default="original")
    max_dimension: Mapped[int | None] = mapped_column(Integer, default=None)
    effort: Mapped[str] = mapped_column(String(8), default="max", server_default="max")
    # Where to POST the completion event; the upload's own field, else BATCHPRESS_WEBHOOK_URL at upload time.
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)
    # Which API key created it (the first 16 hex digits of the key's SHA-256, never the key); only that key sees
    # it. NULL when the API was open.
    api_key_id: Mapped[str | None] = mapped_column(String(16), default=None)
    # Bumped (db/revisions.py) by every change its status answer shows: the API caches answers per revision.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # How many images it holds: sizes the chunks workers claim from it (lifecycle/start.py).
    image_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When a worker last claimed images of it: the claim serves the request (and key) that waited longest.
    served_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # When its owner cancelled it: its terminal move is then ``cancelled`` (lifecycle/transitions.py).
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    products: Mapped[list[Product]] = relationship(back_populates="request", lazy="raise")
