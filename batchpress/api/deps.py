"""The API process's context (built when its app is created, api/app.py), as a route parameter."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from batchpress.context import Context


async def context_of(request: Request) -> Context:
    """``async``: a plain ``def`` dependency costs a hop to the thread pool on every request."""
    context: Context = request.app.state.context
    return context


Ctx = Annotated[Context, Depends(context_of)]
