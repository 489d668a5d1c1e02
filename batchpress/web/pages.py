"""Serves the upload page and its assets; everything else it shows comes from the public API.

The files are listed by name rather than served from a directory, so no path from a URL ever reaches the disk. The
page shows product names from strangers' CSVs: the script only ever sets them as text, and the Content-Security-Policy
allows scripts and styles from this origin only, so a name that looks like markup stays a name. Input thumbnails are
fetched from wherever the CSV points, without a Referer.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from batchpress.api.errors import ApiError

STATIC = Path(__file__).parent / "static"
JS = "text/javascript; charset=utf-8"
ASSETS = {
    "app.js": JS,
    "api.js": JS,
    "compare.js": JS,
    "products.js": JS,
    "requests.js": JS,
    "style.css": "text/css; charset=utf-8",
}
HEADERS = {
    # Revalidate every time so a new release is picked up; the files are a few kilobytes.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' http: https: data:; "
    "connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(
        STATIC / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**HEADERS, "Content-Security-Policy": CSP},
    )


@router.get("/static/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"no static file {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)
