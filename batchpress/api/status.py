from __future__ import annotations

from itertools import groupby
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from batchpress.api.auth import KeyId, owned_request
from batchpress.api.schemas import OptionsOut, ProductStatus, Progress, RequestStatusOut, error_responses
from batchpress.api.webhook_status import as_utc, webhook_status
from batchpress.config import get_settings
from batchpress.db.engine import session_scope
from batchpress.models import Image, ImageState, Product, RequestStatus
from batchpress.storage import output_url
from batchpress.webhooks.events import output_csv_url

router = APIRouter()
MAX_PAGE = 1000


@router.get(
    "/api/status/{request_id}/",
    response_model=RequestStatusOut,
    summary="A request's status, progress and products (paged)",
    responses=error_responses(401, 404),
)
def request_status(
    request_id: str,
    key_id: KeyId,
    offset: Annotated[int, Query(ge=0, description="first product to list, in CSV order")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="how many products to list")] = MAX_PAGE,
) -> RequestStatusOut:
    settings = get_settings()
    with session_scope(read_only=True) as session:
        request = owned_request(session, request_id, key_id)
        rid = request.id
        tally = session.execute(
            select(
                Image.state,
                func.count(),
                func.coalesce(func.sum(Image.input_bytes), 0),
                func.coalesce(func.sum(Image.output_bytes), 0),
            )
            .where(Image.request_id == rid)
            .group_by(Image.state)
        ).all()
        counts = {state: n for state, n, _, _ in tally}
        done_bytes = next(
            ((int(i or 0), int(o or 0)) for state, _, i, o in tally if state == ImageState.DONE.value), (0, 0)
        )
        total_products = session.scalar(select(func.count()).where(Product.request_id == rid)) or 0
        webhook = webhook_status(session, request)
        products = session.execute(
            select(Product.id, Product.serial_number, Product.product_name)
            .where(Product.request_id == rid)
            .order_by(Product.id)
            .offset(offset)
            .limit(limit)
        ).all()
        images = (
            session.execute(
                select(
                    Image.product_id,
                    Image.position,
                    Image.input_url,
                    Image.output_url,
                    Image.output_key,
                    Image.state,
                    Image.error,
                    Image.input_bytes,
                    Image.output_bytes,
                )
                .where(Image.product_id.in_([p.id for p in products]))
                .order_by(Image.product_id, Image.position)
            ).all()
            if products
            else []
        )
    by_product = {pid: list(rows) for pid, rows in groupby(images, key=lambda r: r.product_id)}
    done = counts.get(ImageState.DONE.value, 0)
    failed = counts.get(ImageState.FAILED.value, 0)
    total = sum(counts.values())
    return RequestStatusOut(
        request_id=rid,
        status=request.status,
        created_at=as_utc(request.created_at),
        updated_at=as_utc(request.updated_at),
        finished_at=as_utc(request.finished_at) if request.finished_at else None,
        progress=Progress(
            total_images=total,
            processed=done,
            failed=failed,
            pending=total - done - failed,
            bytes_in=done_bytes[0],
            bytes_out=done_bytes[1],
        ),
        options=OptionsOut(
            quality=request.quality, output_format=request.output_format, max_dimension=request.max_dimension
        ),
        output_csv_url=None if request.status in RequestStatus.open_states() else output_csv_url(settings, rid),
        webhook=webhook,
        total_products=total_products,
        offset=offset,
        limit=limit,
        products=[
            ProductStatus(
                serial_number=p.serial_number,
                product_name=p.product_name,
                input_image_urls=[i.input_url for i in by_product.get(p.id, [])],
                output_image_urls=[output_url(i.output_key, i.output_url) for i in by_product.get(p.id, [])],
                errors=[
                    f"image {i.position + 1} ({i.input_url}): {i.error}"
                    for i in by_product.get(p.id, [])
                    if i.state == ImageState.FAILED.value
                ],
                bytes_in=sum(i.input_bytes or 0 for i in by_product.get(p.id, []) if i.state == ImageState.DONE.value),
                bytes_out=sum(
                    i.output_bytes or 0 for i in by_product.get(p.id, []) if i.state == ImageState.DONE.value
                ),
            )
            for p in products
        ],
    )
