"""Process-wide logging: every record carries the id of the HTTP request it belongs to, as text or as JSON lines.

The id lives in a context variable set by the API's request-id middleware; asyncio tasks and the thread pool that
runs sync routes copy the context, so records logged anywhere while serving a request see it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from contextvars import ContextVar
from typing import Any, Literal

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (``None`` outside a request) to every record its handler sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class TextFormatter(logging.Formatter):
    """The classic one-line format, with ``[<request id>]`` after the logger name when there is one."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, defaults={"request_tag": ""})

    def formatMessage(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.request_tag = f" [{request_id}]" if request_id else ""
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors: no multi-line tracebacks to stitch back together."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if request_id := getattr(record, "request_id", None):
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: Literal["text", "json"], level: int = logging.INFO) -> None:
    """One stderr handler on the root logger; uvicorn and Celery are told to propagate to it."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx logs every request at INFO: a line per downloaded image, and per webhook attempt, which the service
    # already records. Shown when debugging.
    logging.getLogger("httpx").setLevel(logging.WARNING if level > logging.DEBUG else level)
    # Alembic announces each of its plugins at INFO when imported: noise before every start-up line.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING if level > logging.DEBUG else level)
    # Python warnings (Celery's, libraries') as records, so they follow the same format.
    logging.captureWarnings(True)
