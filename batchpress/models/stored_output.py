from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from batchpress.db.base import Base, utcnow


class StoredOutput(Base):
    """One output per recipe: a source's SHA-256 and every option that changes what the encoders write.

    Images list outputs by key (``image.output_key``); this row is how a later image with the same recipe finds one.
    The first writer of a recipe wins (an INSERT that ignores conflicts); a loser drops its own object and lists the
    winner's, so a recipe never has two outputs.
    """

    __tablename__ = "stored_output"
    __table_args__ = (Index("ix_stored_output_output_key", "output_key"),)

    recipe: Mapped[str] = mapped_column(String(64), primary_key=True)
    output_key: Mapped[str] = mapped_column(Text)
    output_bytes: Mapped[int] = mapped_column(Integer)
    # Whether the output's previews are stored beside it (``Image.previews``).
    previews: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
