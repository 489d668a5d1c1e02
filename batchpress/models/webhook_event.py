from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import ForeignKey, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from batchpress.db.base import Base, utcnow


class WebhookState(enum.StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"

    @classmethod
    def open_states(cls) -> tuple[str, ...]:
        return (cls.PENDING.value, cls.RETRYING.value)


class WebhookEvent(Base):
    """One notification, created with a terminal move of its request; its id is the stable ``webhook-id``.

    ``next_attempt_at`` is when the next attempt is due; ``lease_until`` keeps two workers from sending the same
    attempt at once, as image leases do.
    """

    __tablename__ = "webhook_event"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # One per terminal move: a retried request finishes again with a new event (and ``webhook-id``).
    request_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("processing_request.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=WebhookState.PENDING.value, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    lease_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
