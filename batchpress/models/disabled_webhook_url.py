from __future__ import annotations

import datetime as dt

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from batchpress.db.base import Base, utcnow


class DisabledWebhookUrl(Base):
    """A receiver that answered ``410 Gone``: it asked never to be called again, so later requests skip it."""

    __tablename__ = "disabled_webhook_url"

    url: Mapped[str] = mapped_column(Text, primary_key=True)
    disabled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text)
