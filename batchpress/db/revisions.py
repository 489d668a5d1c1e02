"""A request's revision: bumped in the same transaction as every change its status answer shows.

The status API renders an answer once per (request, revision, page) and serves it again after one primary-key read
of the revision, so a writer that forgets to bump leaves status stale. The writers are few and all call this:
results and the terminal move (processing/results.py), images given up (processing/leases.py) and every webhook
state change (webhooks/). Lease renewals, claims and requeues are not shown and do not bump.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from sqlalchemy import Dialect, bindparam, select, update
from sqlalchemy.orm import Session

from batchpress.db.engine import autocommit_engine
from batchpress.models import ProcessingRequest


def bump_revision(session: Session, request_ids: Iterable[uuid.UUID]) -> None:
    ids = sorted(set(request_ids))  # a fixed order, so two writers never lock the same rows crosswise
    if ids:
        session.execute(
            update(ProcessingRequest)
            .where(ProcessingRequest.id.in_(ids))
            .values(revision=ProcessingRequest.revision + 1)
            .execution_options(synchronize_session=False)
        )


def read_revision(request_id: uuid.UUID) -> tuple[int, str | None] | None:
    """The request's revision and owning key id, or ``None`` if there is no such request.

    The status route asks this on every call, a thousand times a second under load: on a bare DBAPI cursor outside
    any transaction it takes ~20 us on SQLite, against ~300 us for the same SELECT through a SQLAlchemy connection.
    """
    engine = autocommit_engine()
    sql, params = _revision_query(engine.dialect)
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(sql, params(request_id))
        row = cursor.fetchone()
        cursor.close()
    finally:
        connection.close()
    return None if row is None else (int(row[0]), row[1])


@lru_cache(maxsize=4)
def _revision_query(dialect: Dialect) -> tuple[str, Callable[[uuid.UUID], Any]]:
    """The SELECT compiled once for the dialect, and how to turn an id into its parameters (the column type's
    own conversion: a hex string on SQLite, a native uuid on PostgreSQL)."""
    compiled = (
        select(ProcessingRequest.revision, ProcessingRequest.api_key_id)
        .where(ProcessingRequest.id == bindparam("rid"))
        .compile(dialect=dialect)
    )
    column_type = ProcessingRequest.__table__.c.id.type
    convert = column_type.dialect_impl(dialect).bind_processor(dialect)

    def params(request_id: uuid.UUID) -> Any:
        value = convert(request_id) if convert else request_id
        return (value,) if compiled.positional else {"rid": value}

    return str(compiled), params
