"""Outputs on local storage, served as a CDN would want them: an output under a content key never changes, so it is
cached for a year with a strong ETag taken from its key (processing/reuse.py ``content_key``)."""

from __future__ import annotations

import os

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, PathLike, StaticFiles
from starlette.types import Scope

from batchpress.processing.reuse import etag_in

IMMUTABLE = "public, max-age=31536000, immutable"


class OutputFiles(StaticFiles):
    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        root = os.path.realpath(self.directory) if self.directory else ""
        key = os.path.relpath(full_path, root).replace(os.sep, "/") if root else ""
        etag = etag_in(key)
        # Per-image keys of before content keys may be written again by a retry: they keep Starlette's headers.
        headers = {"cache-control": IMMUTABLE, "etag": f'"{etag}"'} if etag else None
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result, headers=headers)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response
