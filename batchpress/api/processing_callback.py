"""An external image processor reports the result of one image.

The result enters the database through ``record_result`` and the request through ``finish``, exactly as a built-in
worker's would, so completion, status and the outgoing webhook cannot tell the two apart. Deliveries are signed with
Standard Webhooks and may be repeated: an image that is already final is left alone and still answered with 200, so
the sender stops retrying.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select

from batchpress.api.deps import Ctx
from batchpress.api.errors import ApiError
from batchpress.api.schemas import EXAMPLE_ID, error_responses
from batchpress.db.engine import Database
from batchpress.ingest.csv_reader import url_problem
from batchpress.lifecycle.finish import finish
from batchpress.lifecycle.transitions import mark_processing
from batchpress.models import Image, ProcessingRequest, Product
from batchpress.processing.results import Compressed, Failed, Outcome, record_result
from batchpress.webhooks.signing import InvalidSignature, verify

router = APIRouter()


def _downloadable(url: str) -> str:
    """The CSV's own URL rule, and the URL kept exactly as sent (pydantic's ``HttpUrl`` would normalise it)."""
    if problem := url_problem(url):
        raise ValueError(problem)
    return url


# The columns are 32-bit integers; a larger number must be a 422, not a database error.
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
Size = Annotated[int, Field(ge=0, le=2**31 - 1)]


class ProcessingCallback(BaseModel):
    request_id: uuid.UUID
    image_id: Id | None = None
    serial_number: Id | None = Field(default=None, description="the product's S. No. in the CSV")
    position: Id | None = Field(default=None, description="1-based place of the URL in its CSV cell")
    output_url: Annotated[str, AfterValidator(_downloadable)] | None = None
    error: str | None = Field(default=None, min_length=1)
    input_bytes: Size | None = None
    output_bytes: Size | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> Self:
        half_a_place = (self.serial_number is None) != (self.position is None)
        if half_a_place or (self.image_id is None) == (self.place is None):
            raise ValueError("give either image_id, or serial_number and position")
        if (self.output_url is None) == (self.error is None):
            raise ValueError("give exactly one of output_url or error")
        return self

    @property
    def place(self) -> tuple[int, int] | None:
        """(serial number, 0-based position) when the image is addressed by where it sits in the CSV."""
        if self.serial_number is None or self.position is None:
            return None
        return self.serial_number, self.position - 1

    @property
    def outcome(self) -> Outcome:
        if self.output_url is None:
            return Failed(self.error or "")
        # Sizes the sender leaves out are stored as 0: ``Compressed`` has no "unknown".
        return Compressed(self.output_url, self.input_bytes or 0, self.output_bytes or 0, output_key=None)


class CallbackRecorded(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"recorded": True, "image_id": 17, "request_status": "processing"}]}
    )

    recorded: bool = Field(description="false when the image was already final: a repeated delivery, or a worker won")
    image_id: int
    request_status: str


async def verified_body(request: Request) -> bytes:
    """The raw body, once a configured secret verifies its signature; the bytes must be checked before parsing."""
    secrets = request.app.state.context.settings.processing_callback_secret.get_secret_value()
    if not secrets.strip():
        raise ApiError(
            401,
            "callbacks_disabled",
            "processing callbacks are disabled: BATCHPRESS_PROCESSING_CALLBACK_SECRET is not set",
        )
    body = await request.body()
    try:
        verify(secrets, body, dict(request.headers))
    except InvalidSignature as exc:
        raise ApiError(401, "invalid_signature", f"the webhook signature did not verify: {exc}") from None
    return body


def _parse(body: bytes) -> ProcessingCallback:
    try:
        return ProcessingCallback.model_validate_json(body)
    except ValidationError as exc:
        # Re-raised as FastAPI's own error so the app's handler gives it the usual 422 shape.
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _find_image(db: Database, callback: ProcessingCallback) -> int:
    with db.session(read_only=True) as session:
        if session.get(ProcessingRequest, callback.request_id) is None:
            raise ApiError(404, "not_found", f"no request with id {callback.request_id}")
        query = select(Image.id).where(Image.request_id == callback.request_id)
        if (place := callback.place) is not None:
            serial_number, position = place
            query = query.join(Product, Product.id == Image.product_id).where(
                Product.serial_number == serial_number, Image.position == position
            )
            missing = f"image {position + 1} of product {serial_number}"
        else:
            query = query.where(Image.id == callback.image_id)
            missing = f"image {callback.image_id}"
        image_id = session.scalar(query)
    if image_id is None:
        raise ApiError(404, "not_found", f"request {callback.request_id} has no {missing}")
    return image_id


def _request_status(db: Database, request_id: uuid.UUID) -> str:
    with db.session(read_only=True) as session:
        return str(session.scalar(select(ProcessingRequest.status).where(ProcessingRequest.id == request_id)))


SIGNED_JSON: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": ProcessingCallback.model_json_schema(),
                "examples": {
                    "compressed": {
                        "value": {
                            "request_id": EXAMPLE_ID,
                            "image_id": 17,
                            "output_url": "https://cdn.example.com/out/17.jpg",
                            "input_bytes": 482113,
                            "output_bytes": 120544,
                        }
                    },
                    "failed, by serial and position": {
                        "value": {"request_id": EXAMPLE_ID, "serial_number": 3, "position": 2, "error": "timed out"}
                    },
                },
            }
        },
    }
}


@router.post(
    "/api/webhooks/processing/",
    response_model=CallbackRecorded,
    summary="An external image processor reports one image's result (Standard Webhooks signed)",
    openapi_extra=SIGNED_JSON,
    responses=error_responses(
        401,
        404,
        e401="missing or bad signature, a timestamp over 5 minutes off, or no secret configured",
        e404="no such request, or no such image in it",
        e422="the body is not a valid report",
    ),
)
def processing_callback(body: Annotated[bytes, Depends(verified_body)], ctx: Ctx) -> CallbackRecorded:
    """Record the result the way a worker does, then try the request's terminal move in its own transaction."""
    callback = _parse(body)
    image_id = _find_image(ctx.db, callback)
    with ctx.db.session() as session:
        recorded = record_result(session, image_id, callback.outcome, token=None)
        if recorded:
            mark_processing(session, callback.request_id)
    finished = finish(ctx.db, callback.request_id, settings=ctx.settings, enqueue_event=ctx.queue.webhook)
    status = finished or _request_status(ctx.db, callback.request_id)
    return CallbackRecorded(recorded=recorded, image_id=image_id, request_status=status)
