"""Refuse an oversized request body while it streams in, before it is spooled to disk or any route runs.

Raising ``HTTPException(413)`` from ``receive`` lets the app's own error handlers answer, so the 413 has the usual
JSON error shape and request id. The CSV reader still enforces the exact limit on the file itself; this cap leaves
room for the multipart framing around it.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        too_large = declared.isdigit() and (len(declared) > 18 or int(declared) > self.max_bytes)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if too_large:
                raise HTTPException(413)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413)
            return message

        await self.app(scope, limited_receive, send)
