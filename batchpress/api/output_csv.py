"""The output CSV the original brief asked for: the input's columns plus the compressed images' URLs, then each
image's size before and after and why its output was reused, if it was, lined up with the URLs (after the brief's
four columns, which stay as they were).

Spreadsheets run a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula, and
product names come from strangers; such cells are prefixed with an apostrophe, which spreadsheets show as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from itertools import groupby

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from batchpress.api.auth import KeyId, owned_request
from batchpress.api.deps import Ctx
from batchpress.api.errors import ApiError
from batchpress.api.schemas import error_responses
from batchpress.db.engine import Database
from batchpress.models import Image, ImageState, Product, RequestStatus
from batchpress.storage import ImageStorage, output_url
from batchpress.tally import reuse_reason

router = APIRouter()
HEADER = [
    "S. No.",
    "Product Name",
    "Input Image Urls",
    "Output Image Urls",
    "Input Image Bytes",
    "Output Image Bytes",
    "Reused",
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_QUERY = 2000


def safe_cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([safe_cell(cell) for cell in cells])
    return out.getvalue()


@router.get(
    "/api/requests/{request_id}/output.csv",
    summary="The output CSV of a finished request",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "S. No.,Product Name,Input Image Urls,Output Image Urls,Input Image Bytes,Output Image "
            "Bytes,Reused: one row per product; each list column is comma-separated in the order of its input URLs, "
            "with an empty item where an image failed; Reused says why an image's output already existed (same "
            "source in this request, unchanged at origin (304), same content), empty where it was compressed",
            "content": {
                "text/csv": {
                    "example": "S. No.,Product Name,Input Image Urls,Output Image Urls,Input Image Bytes,"
                    "Output Image Bytes,Reused\r\n"
                    '1,SKU1,"https://cdn.example.com/a.jpg,https://cdn.example.com/b.png",'
                    '"http://127.0.0.1:8000/images/c/9b0e...-3f2a....jpg,","1482113,","320544,","same content,"\r\n'
                }
            },
        },
        **error_responses(401, 404, 409, e409="the request has not finished yet"),
    },
)
def output_csv(request_id: str, key_id: KeyId, ctx: Ctx) -> StreamingResponse:
    with ctx.db.session(read_only=True) as session:
        request = owned_request(session, request_id, key_id)
        if request.status in RequestStatus.open_states():
            raise ApiError(
                409,
                "not_finished",
                f"request {request.id} is {request.status}; its output CSV exists once it has finished",
            )
        rid = request.id
    return StreamingResponse(
        _rows(ctx.db, ctx.storage, rid),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="batchpress-{rid}.csv"'},
    )


def _rows(db: Database, storage: ImageStorage, request_id: object) -> Iterator[str]:
    """Stream the file a page of products at a time, so a 100,000-row request never sits in memory whole."""
    yield "\ufeff" + csv_line(HEADER)
    after = 0
    while True:
        with db.session(read_only=True) as session:
            products = session.execute(
                select(Product.id, Product.serial_number, Product.product_name)
                .where(Product.request_id == request_id, Product.id > after)
                .order_by(Product.id)
                .limit(ROWS_PER_QUERY)
            ).all()
            if not products:
                return
            images = session.execute(
                select(
                    Image.product_id,
                    Image.input_url,
                    Image.output_url,
                    Image.output_key,
                    Image.state,
                    Image.input_bytes,
                    Image.output_bytes,
                    Image.reused,
                )
                .where(Image.product_id.in_([p.id for p in products]))
                .order_by(Image.product_id, Image.position)
            ).all()
        by_product = {pid: list(rows) for pid, rows in groupby(images, key=lambda r: r.product_id)}
        for product in products:
            rows = by_product.get(product.id, [])
            yield csv_line(
                [
                    str(product.serial_number),
                    product.product_name,
                    ",".join(r.input_url for r in rows),
                    ",".join(output_url(storage, r.output_key, r.output_url) or "" for r in rows),
                    ",".join(_size(r.state, r.input_bytes) for r in rows),
                    ",".join(_size(r.state, r.output_bytes) for r in rows),
                    ",".join(reuse_reason(r.state, r.reused) or "" for r in rows),
                ]
            )
        after = products[-1].id


def _size(state: str, size: int | None) -> str:
    """A compressed image's size; empty for a failed one, as its output URL is."""
    return str(size) if state == ImageState.DONE.value and size is not None else ""
