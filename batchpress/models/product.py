from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from batchpress.db.base import Base

if TYPE_CHECKING:
    from batchpress.models.image import Image
    from batchpress.models.processing_request import ProcessingRequest


class Product(Base):
    """A CSV row. The URL columns keep the seed's comma-separated form; ``Image`` rows carry per-image state."""

    __tablename__ = "product"
    __table_args__ = (
        UniqueConstraint("request_id", "serial_number"),
        Index("ix_product_request_id", "request_id", "id"),  # status pages list a request's products by id
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("processing_request.id", ondelete="CASCADE"))
    serial_number: Mapped[int] = mapped_column(Integer)
    product_name: Mapped[str] = mapped_column(Text)
    input_image_urls: Mapped[str] = mapped_column(Text)
    # Filled when the request finishes; a failed image leaves an empty slot so positions still line up.
    output_image_urls: Mapped[str | None] = mapped_column(Text, default=None)

    request: Mapped[ProcessingRequest] = relationship(back_populates="products", lazy="raise")
    images: Mapped[list[Image]] = relationship(back_populates="product", lazy="raise", order_by="Image.position")
