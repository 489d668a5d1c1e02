from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from batchpress.db.base import Base, utcnow


class SourceValidator(Base):
    """What an origin said about a URL at its last full download, for the next one's conditional GET.

    Kept per API key (``scope``; empty with keys off): a 304 reuses an output only for a key that downloaded those
    bytes itself, so a URL alone never reveals what another key processed.
    """

    __tablename__ = "source_validator"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    url_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the URL as the CSV gave it
    etag: Mapped[str | None] = mapped_column(Text, default=None)
    last_modified: Mapped[str | None] = mapped_column(Text, default=None)
    source_hash: Mapped[str] = mapped_column(String(64))
    source_bytes: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
