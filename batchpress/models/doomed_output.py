from __future__ import annotations

import datetime as dt

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from batchpress.db.base import Base, utcnow


class DoomedOutput(Base):
    """An output no image lists any more, to be removed from storage (lifecycle/delete.py). Written in the
    transaction that deleted its last listing, removed once the object is gone: a crash in between leaves this row
    for the sweeper, never an orphan object for ever. A worker that writes the same key again removes the row
    first."""

    __tablename__ = "doomed_output"

    output_key: Mapped[str] = mapped_column(Text, primary_key=True)
    doomed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
