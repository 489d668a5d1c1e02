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


class WebhookAttemptOut(BaseModel):
    attempted_at: dt.datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None = Field(description="the first 2 KiB of the receiver's answer")
    outcome: str = Field(description="delivered, retry or gave_up")


class WebhookOut(BaseModel):
    url: str
    event_id: str | None = Field(description="the webhook-id header; null until the request finishes")
    state: str = Field(description="pending, retrying, delivered or failed")
    attempts: int
    next_attempt_at: dt.datetime | None
    last_attempt: WebhookAttemptOut | None
    log: list[WebhookAttemptOut] = Field(description="every attempt, oldest first (the last 50)")


class RequestStatusOut(BaseModel):
    request_id: uuid.UUID
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    progress: Progress
    webhook: WebhookOut | None
    total_products: int
    offset: int
    limit: int
    products: list[ProductStatus]
