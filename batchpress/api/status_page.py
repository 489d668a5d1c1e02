"""Which products one status page holds, and their JSON.

A page lists at most ``limit`` products (1,000 at most), and ends early, before the product that would take its
products' JSON past ``PAGE_BYTES`` or its images past ``PAGE_IMAGES``; it always holds at least one product, so
``next_offset`` always moves on. The largest request the upload accepts (~50 MB of CSV, up to 100,000 products)
would otherwise be one page of ~100 MB of JSON that took 2-15 s to render (docs/performance.md), and every reader
of it held a copy. One product is bounded by the upload's own caps (a 1,000-character name, at most 1,000 URLs in a
1 MiB field), so no page goes past ~2.5 MB.

Products are read a batch at a time, each batch sized from those already rendered, so a page reads about its own
budget's worth of rows; each product's JSON is written once with the standard library's C encoder instead of
through pydantic models.
"""

from __future__ import annotations

import json
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from batchpress.models import Image, ImageState, Product
from batchpress.processing.reuse import preview_keys
from batchpress.storage import ImageStorage, output_url
from batchpress.tally import reuse_reason

# A page this size takes ~20-35 ms of CPU to read, encode and gzip here, inside 50 ms (docs/performance.md).
PAGE_BYTES = 1024 * 1024
# Bounds the rows read for a page whose URLs are short (a pending image with a short URL is a few dozen bytes of JSON).
PAGE_IMAGES = 10_000
# Products read at most at once: bounds what counting their images costs when the page's first products are small.
MAX_BATCH = 256
_DONE = ImageState.DONE.value
_FAILED = ImageState.FAILED.value
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def product_ids(session: Session, rid: Any) -> array[int]:
    """The request's product ids in CSV order. They never change after the upload, so the API keeps them
    (``ProductIds``): an ``OFFSET`` query for a page near the end of 100,000 products read 98,000 index entries,
    63 ms on PostgreSQL with the statistics it has right after a big upload."""
    return array("q", session.scalars(select(Product.id).where(Product.request_id == rid).order_by(Product.id)))


class ProductIds:
    """Product ids of the requests read lately, at most ``max_ids`` in all (8 bytes each)."""

    def __init__(self, max_ids: int = 2_000_000) -> None:
        self.max_ids = max_ids
        self._entries: OrderedDict[Any, array[int]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()  # render threads share it

    def get(self, session: Session, rid: Any) -> array[int]:
        with self._lock:
            ids = self._entries.get(rid)
            if ids is not None:
                self._entries.move_to_end(rid)
                return ids
        ids = product_ids(session, rid)
        with self._lock:
            if rid not in self._entries:
                self._entries[rid] = ids
                self._count += len(ids)
            while self._count > self.max_ids and len(self._entries) > 1:
                self._count -= len(self._entries.popitem(last=False)[1])
        return ids


def page_products(
    session: Session, storage: ImageStorage, all_ids: Sequence[int], offset: int, limit: int
) -> tuple[bytes, int]:
    """The JSON of the products on the page that starts at ``offset`` (comma-separated, in CSV order), and how
    many there are; ``all_ids`` are the request's products (``product_ids``).

    Products are read in batches sized from those already rendered, so a page reads about its own budget's worth
    of rows, not ``limit`` products' worth; their images are counted from an index before any is read.
    """
    conn = session.connection()
    ids = all_ids[offset : offset + limit]
    parts: list[bytes] = []
    listed = page_bytes = page_images = 0
    start, batch = 0, 1
    while start < len(ids):
        chunk = ids[start : start + batch]
        counts = dict(conn.execute(_COUNTS, {"lo": chunk[0], "hi": chunk[-1]}).all())
        keep = len(chunk)
        for n, pid in enumerate(chunk):
            if (listed or n) and page_images + counts.get(pid, 0) > PAGE_IMAGES:
                keep = n
                break
            page_images += counts.get(pid, 0)
        bodies = product_bodies(conn, storage, chunk[:keep])
        # The batch in one call to the encoder when it fits, as it nearly always does (a call per product was
        # half the page's time for 1,000 small products); one product at a time where the page ends.
        whole = _encode(bodies).encode()[1:-1]
        if page_bytes + len(whole) + 1 <= PAGE_BYTES or (not listed and len(bodies) == 1):
            parts.append(whole)
            listed += len(bodies)
            page_bytes += len(whole) + 1
        else:
            for body in bodies:
                part = _encode(body).encode()
                if listed and page_bytes + len(part) + 1 > PAGE_BYTES:
                    return b",".join(parts), listed
                parts.append(part)
                listed += 1
                page_bytes += len(part) + 1
        if keep < len(chunk) or page_bytes >= PAGE_BYTES or page_images >= PAGE_IMAGES:
            break
        start += len(chunk)
        by_bytes = (PAGE_BYTES - page_bytes) * listed // page_bytes
        by_images = (PAGE_IMAGES - page_images) * listed // max(page_images, 1)
        batch = max(1, min(by_bytes, by_images, MAX_BATCH) + 1)
    return b",".join(parts), listed


# A batch is a range of the request's product ids (increasing in CSV order), read by primary key and through the
# image.product_id index: no list of ids to bind, which cost more than the rows for a page of 1,000 small products,
# and no join, which PostgreSQL planned as a scan of every image while its statistics were older than the upload.
# Where uploads' ids interleave (PostgreSQL's sequence), rows of other requests in the range are read and ignored.


def _in_batch(column: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    return column.between(bindparam("lo"), bindparam("hi"))


_COUNTS = select(Image.product_id, func.count()).where(_in_batch(Image.product_id)).group_by(Image.product_id)
_NAMES = select(Product.id, Product.serial_number, Product.product_name).where(_in_batch(Product.id))
_IMAGES = (
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
        Image.reused,
        Image.previews,
    )
    .where(_in_batch(Image.product_id))
    .order_by(Image.product_id, Image.position)
)


def product_bodies(conn: Connection, storage: ImageStorage, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Each product as the schema's ``ProductStatus`` has it, in order; ``ids`` are consecutive products of the
    request."""
    if not ids:
        return []
    batch = {"lo": ids[0], "hi": ids[-1]}
    named = {pid: (serial, name) for pid, serial, name in conn.execute(_NAMES, batch)}
    by_product = {pid: list(rows) for pid, rows in groupby(conn.execute(_IMAGES, batch), key=lambda r: r[0])}
    out = []
    for pid in ids:
        serial, name = named[pid]
        rows = by_product.get(pid, [])
        # Sizes of compressed images only, lined up with the URLs: an open or failed image has none yet.
        sizes_in = [r[7] if r[5] == _DONE else None for r in rows]
        sizes_out = [r[8] if r[5] == _DONE else None for r in rows]
        # Most images were compressed for themselves: no call for those, as a page can hold thousands.
        reused = [reuse_reason(r[5], r[9]) if r[9] else None for r in rows]
        previews = [preview_keys(r[4]) if r[10] and r[4] and r[5] == _DONE else None for r in rows]
        out.append(
            {
                "serial_number": serial,
                "product_name": name,
                "input_image_urls": [r[2] for r in rows],
                "output_image_urls": [output_url(storage, r[4], r[3]) for r in rows],
                "errors": [f"image {r[1] + 1} ({r[2]}): {r[6]}" for r in rows if r[5] == _FAILED],
                "bytes_in": sum(filter(None, sizes_in)),
                "bytes_out": sum(filter(None, sizes_out)),
                "input_image_bytes": sizes_in,
                "output_image_bytes": sizes_out,
                "reused": reused,
                "input_preview_urls": [storage.url_for(p[0]) if p else None for p in previews],
                "output_preview_urls": [storage.url_for(p[1]) if p else None for p in previews],
            }
        )
    return out
