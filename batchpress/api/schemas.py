from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from batchpress.tally import Tally

EXAMPLE_ID = "6f1c2a3e-4b5d-4c7e-9f80-1a2b3c4d5e6f"


class UploadAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"request_id": EXAMPLE_ID}]})

    request_id: uuid.UUID


class Progress(BaseModel):
    total_images: int
    processed: int = Field(description="images compressed successfully")
    failed: int
    pending: int = Field(description="images not finished yet")
    reused: int = Field(
        default=0,
        description="of the processed images, those whose output already existed, so they were not compressed "
        "again (each product's reused says why)",
    )
    bytes_in: int = Field(default=0, description="total size of the compressed images' inputs")
    bytes_out: int = Field(default=0, description="total size of their outputs; bytes saved = bytes_in - bytes_out")
    bytes_saved: int = Field(
        default=0,
        description="bytes_in - bytes_out: what compression saved; negative when the outputs grew, as a conversion "
        "or resize asked for (output_format, max_dimension) may make them",
    )
    saved_percent: float | None = Field(
        default=None, description="bytes_saved as a percentage of bytes_in, to one decimal; null while bytes_in is 0"
    )


def progress_of(counted: Tally) -> Progress:
    return Progress(
        total_images=counted.total,
        processed=counted.done,
        failed=counted.failed,
        pending=counted.total - counted.done - counted.failed,
        reused=counted.reused,
        **counted.byte_counts(),
    )


class RequestSummary(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": EXAMPLE_ID,
                    "status": "cancelled",
                    "created_at": "2026-12-07T10:00:00Z",
                    "finished_at": "2026-12-07T10:00:05Z",
                    "progress": {
                        "total_images": 3,
                        "processed": 1,
                        "failed": 2,
                        "pending": 0,
                        "reused": 0,
                        "bytes_in": 1482113,
                        "bytes_out": 320544,
                        "bytes_saved": 1161569,
                        "saved_percent": 78.4,
                    },
                    "status_url": f"http://127.0.0.1:8000/api/status/{EXAMPLE_ID}/",
                }
            ]
        }
    )

    request_id: uuid.UUID
    status: str = Field(
        description="pending, processing, completed, completed_with_errors, failed or cancelled (the last four "
        "are final)"
    )
    created_at: dt.datetime
    finished_at: dt.datetime | None
    progress: Progress
    status_url: str


class RequestList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "requests": [
                        {
                            "request_id": EXAMPLE_ID,
                            "status": "completed",
                            "created_at": "2026-12-07T10:00:00Z",
                            "finished_at": "2026-12-07T10:00:41Z",
                            "progress": {
                                "total_images": 3,
                                "processed": 3,
                                "failed": 0,
                                "pending": 0,
                                "reused": 1,
                                "bytes_in": 1734112,
                                "bytes_out": 412530,
                                "bytes_saved": 1321582,
                                "saved_percent": 76.2,
                            },
                            "status_url": f"http://127.0.0.1:8000/api/status/{EXAMPLE_ID}/",
                        }
                    ],
                    "next_cursor": "MjAyNi0xMi0wN1QxMDowMDowMCswMDowMHw2ZjFjMmEzZQ",
                }
            ]
        }
    )

    requests: list[RequestSummary] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last one")


class ProductStatus(BaseModel):
    serial_number: int
    product_name: str
    input_image_urls: list[str]
    output_image_urls: list[str | None] = Field(description="in input order; null while pending or if it failed")
    errors: list[str] = Field(description="one line per failed image, naming its position and URL")
    bytes_in: int = Field(default=0, description="input bytes of this product's compressed images")
    bytes_out: int = Field(default=0, description="output bytes of this product's compressed images")
    input_image_bytes: list[int | None] = Field(
        default_factory=list,
        description="each input's size in bytes, in the order of input_image_urls; null while pending or if it "
        "failed (their sum is bytes_in)",
    )
    output_image_bytes: list[int | None] = Field(
        default_factory=list,
        description="each output's size in bytes, in the order of output_image_urls and null where its URL is "
        "(their sum is bytes_out); an image saved its input size minus this",
    )
    reused: list[str | None] = Field(
        default_factory=list,
        description="why each image's output is one that already existed, in the order of input_image_urls: "
        '"same source in this request", "unchanged at origin (304)" or "same content"; null where it was '
        "compressed for itself, failed or is not done yet",
    )
    input_preview_urls: list[str | None] = Field(
        default_factory=list,
        description="a small preview of each input (WebP, at most 320 px a side, a few kB), in the order of "
        "input_image_urls; null while pending, if it failed, or for outputs made before previews existed",
    )
    output_preview_urls: list[str | None] = Field(
        default_factory=list,
        description="the same for each output, in the order of output_image_urls; the previews of an output never "
        "change, so they may be cached for ever",
    )


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
    effort: str = Field(
        description="max: the smallest files, from the slower encoders; fast: the quicker encoders, larger files",
    )


class RequestStatusOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": EXAMPLE_ID,
                    "status": "completed_with_errors",
                    "created_at": "2026-11-23T22:31:45.181051Z",
                    "updated_at": "2026-11-23T22:31:45.727317Z",
                    "finished_at": "2026-11-23T22:31:45.727317Z",
                    "progress": {
                        "total_images": 3,
                        "processed": 2,
                        "failed": 1,
                        "pending": 0,
                        "reused": 1,
                        "bytes_in": 1734112,
                        "bytes_out": 412530,
                        "bytes_saved": 1321582,
                        "saved_percent": 76.2,
                    },
                    "options": {"quality": 50, "output_format": "original", "max_dimension": None, "effort": "max"},
                    "output_csv_url": f"http://127.0.0.1:8000/api/requests/{EXAMPLE_ID}/output.csv",
                    "webhook": None,
                    "total_products": 2,
                    "offset": 0,
                    "limit": 1000,
                    "next_offset": None,
                    "products": [
                        {
                            "serial_number": 1,
                            "product_name": "SKU1",
                            "input_image_urls": ["https://cdn.example.com/a.jpg", "https://cdn.example.com/b.png"],
                            "output_image_urls": [
                                "http://127.0.0.1:8000/images/c/9b0e51c2d47a86f3e1b05c9d2a74e6f8-3f2a91c7d05b8e64.jpg",
                                "http://127.0.0.1:8000/images/c/2c7d0e94b1a35f68d9e20b4c7a1f53e6-8d41f0a2c96e7b35.png",
                            ],
                            "errors": [],
                            "bytes_in": 1734112,
                            "bytes_out": 412530,
                            "input_image_bytes": [1482113, 251999],
                            "output_image_bytes": [320544, 91986],
                            "reused": [None, "unchanged at origin (304)"],
                            "input_preview_urls": [
                                "http://127.0.0.1:8000/images/p/9b0e51c2d47a86f3e1b05c9d2a74e6f8-3f2a91c7d05b8e64-before.webp",
                                "http://127.0.0.1:8000/images/p/2c7d0e94b1a35f68d9e20b4c7a1f53e6-8d41f0a2c96e7b35-before.webp",
                            ],
                            "output_preview_urls": [
                                "http://127.0.0.1:8000/images/p/9b0e51c2d47a86f3e1b05c9d2a74e6f8-3f2a91c7d05b8e64-after.webp",
                                "http://127.0.0.1:8000/images/p/2c7d0e94b1a35f68d9e20b4c7a1f53e6-8d41f0a2c96e7b35-after.webp",
                            ],
                        },
                        {
                            "serial_number": 2,
                            "product_name": "SKU2",
                            "input_image_urls": ["https://cdn.example.com/c.jpg"],
                            "output_image_urls": [None],
                            "errors": ["image 1 (https://cdn.example.com/c.jpg): HTTP 404 Not Found"],
                            "bytes_in": 0,
                            "bytes_out": 0,
                            "input_image_bytes": [None],
                            "output_image_bytes": [None],
                            "reused": [None],
                            "input_preview_urls": [None],
                            "output_preview_urls": [None],
                        },
                    ],
                }
            ]
        }
    )

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
    offset: int = Field(description="the first product listed, in CSV order (0-based)")
    limit: int = Field(description="the limit asked for; a page can end sooner (see next_offset)")
    next_offset: int | None = Field(
        default=None,
        description="the offset of the next page, or null after the last product: a page ends before 1 MiB of "
        "products' JSON or 10,000 images (always listing at least one product), so it can list fewer than limit",
    )
    # Last, as api/status.py appends the products' own JSON after the rest of the answer.
    products: list[ProductStatus]


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. invalid_csv, not_found, unauthorized")
    message: str
    details: Any = Field(default=None, description="per-problem list where there is one (CSV lines, fields)")
    request_id: str | None = Field(default=None, description="the X-Request-ID of the failed request, as logged")


class ErrorResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "invalid_csv",
                        "message": "the CSV was not accepted: 1 problem",
                        "details": [
                            {
                                "line": 3,
                                "field": "S. No.",
                                "message": "serial number 1 is repeated; it was first used on line 2",
                            }
                        ],
                        "request_id": "9b2f4c1d8e7a6b5c",
                    }
                }
            ]
        }
    )

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
