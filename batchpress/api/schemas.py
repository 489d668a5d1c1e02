from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

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


class OptionsOut(BaseModel):
    quality: int
    output_format: str
    max_dimension: int | None


class RequestStatusOut(BaseModel):
    request_id: uuid.UUID
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    progress: Progress
    options: OptionsOut
    output_csv_url: str | None = Field(description="the output CSV, once the request has finished")
    webhook: WebhookOut | None
    total_products: int
    offset: int
    limit: int
    products: list[ProductStatus]


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. invalid_csv, not_found, unauthorized")
    message: str
    details: Any = Field(default=None, description="per-problem list where there is one (CSV lines, fields)")
    request_id: str | None = Field(default=None, description="the X-Request-ID of the failed request, as logged")


class ErrorResponse(BaseModel):
    error: ErrorDetail


ERROR_MEANINGS = {
    400: "the input breaks a rule; details say which and where",
    401: "API keys are configured and none was sent, or it is not one of them",
    404: "no such request (or it belongs to another API key)",
    409: "the request is not in a state that allows this",
    413: "the upload is over the size or row limit",
    422: "a parameter or field is missing or malformed",
    500: "an unexpected error; the request id finds it in the logs",
}


def error_responses(*codes: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give, all in the one error shape."""
    return {
        code: {"model": ErrorResponse, "description": meanings.get(f"e{code}", ERROR_MEANINGS[code])}
        for code in (*codes, 422, 500)
    }
