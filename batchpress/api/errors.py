"""One error shape for every failure: ``{"error": {"code", "message", "details", "request_id"}}``, never a stack trace.

Each error answer is also logged once with its request id: 4xx at INFO (WARNING for refused credentials), 5xx at
ERROR. Unexpected exceptions are turned into the 500 by the request-id middleware, which sits inside Starlette's
last-resort handler and so can still log them with the request's id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from batchpress.logs import request_id_var

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details, "request_id": request_id_var.get()}}


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    level = logging.ERROR if status_code >= 500 else logging.WARNING if status_code in (401, 403) else logging.INFO
    log.log(level, "%s %s -> %d %s: %s", request.method, request.url.path, status_code, code, message)
    return JSONResponse(error_body(code, message, details), status_code=status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 413:
            limit = request.app.state.context.settings.max_upload_bytes
            message = f"the request body is larger than the {limit}-byte upload limit (BATCHPRESS_MAX_UPLOAD_BYTES)"
        elif exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}; see /docs"
        return error_response(request, exc.status_code, code, message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"location": ".".join(str(part) for part in err.get("loc", ())), "message": err.get("msg", "")}
            for err in exc.errors()
        ]
        summary = "; ".join(f"{d['location']}: {d['message']}" for d in details[:5])
        return error_response(request, 422, "invalid_request", summary, details)
