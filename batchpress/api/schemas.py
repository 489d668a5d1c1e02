from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, Field


class UploadAccepted(BaseModel):
    request_id: uuid.UUID


class Progress(BaseModel):
    total_images: int
    processed: int = Field(description="images compressed successfully")
    failed: int
    pending: int = Field(description="images not finished yet")


class ProductStatus(BaseModel):
    serial_number: int
    product_name: str
    input_image_urls: list[str]
    output_image_urls: list[str | None] = Field(description="in input order; null while pending or if it failed")
    errors: list[str] = Field(description="one line per failed image, naming its position and URL")


class RequestStatusOut(BaseModel):
    request_id: uuid.UUID
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    progress: Progress
    total_products: int
    offset: int
    limit: int
    products: list[ProductStatus]
