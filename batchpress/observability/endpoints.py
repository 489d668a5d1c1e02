"""``/readyz`` and ``/metrics``: open like ``/healthz``, since probes and scrapers carry no API key. Neither shows any
request's data: readiness names only this deployment's dependencies, metrics are totals."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from batchpress.api.deps import Ctx
from batchpress.observability.disk import nearly_full
from batchpress.observability.metrics import exposition
from batchpress.observability.readiness import OK, readiness

router = APIRouter()


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(
        description='database, broker and storage: "ok", or what is wrong (e.g. "unreachable: ...", "timed out")'
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="what needs attention without stopping work yet, e.g. the output volume nearly full",
    )


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The database, broker and storage answer",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {"status": "ready", "checks": {"database": "ok", "broker": "ok", "storage": "ok"}}
                }
            }
        },
        503: {
            "model": Readiness,
            "description": "a dependency failed; its check says how",
            "content": {
                "application/json": {
                    "example": {
                        "status": "not_ready",
                        "checks": {"database": "ok", "broker": "unreachable: connection refused", "storage": "ok"},
                    }
                }
            },
        },
    },
)
def readyz(request: Request, ctx: Ctx) -> JSONResponse:
    """Each check is bounded, so the probe answers within about two seconds whatever hangs."""
    report = readiness(request.app.state.readiness_checks, ctx.settings, ctx.db.engine, ctx.storage)
    ready = all(value == OK for value in report.values())
    warnings = [warning] if (warning := nearly_full(ctx.settings)) else []
    body = Readiness(status="ready" if ready else "not_ready", checks=report, warnings=warnings)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(exposition(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
