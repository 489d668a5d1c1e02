"""Every HTTP request gets an id: the caller's ``X-Request-ID`` when it is sane, else a new one.

The id is returned in the ``X-Request-ID`` response header, put in every error body and on every log record made
while the request is served. Pure ASGI rather than ``BaseHTTPMiddleware``: no extra task per request, and streamed
responses pass through untouched.
"""

from __future__ import annotations

import logging
import random
import re

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchpress.api.errors import error_body
from batchpress.logs import request_id_var

log = logging.getLogger(__name__)
HEADER = "X-Request-ID"
# Short and free of anything that could forge a log line or a header.
SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def pick_request_id(incoming: str | None) -> str:
    # Not uuid4(): its os.urandom call lets go of the GIL, and under load winning it back cost more than the rest
    # of this middleware. A log correlation id needs to be unique, not unguessable.
    return incoming if incoming and SANE_ID.fullmatch(incoming) else f"{random.getrandbits(128):032x}"


class RequestIdMiddleware:
    """Also the last word on unexpected exceptions: they are logged here, with the id and traceback, and answered
    with the usual error shape. Starlette's own last-resort handler sits outside every middleware, where the id is
    no longer known and the header cannot be added."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = pick_request_id(Headers(scope=scope).get(HEADER))
        token = request_id_var.set(request_id)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", []), (HEADER.lower().encode(), request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s -> 500", scope.get("method"), scope.get("path"))
            if started:
                raise  # the status line is gone; the server can only drop the connection
            response = JSONResponse(error_body("internal_error", "internal server error"), status_code=500)
            await response(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
