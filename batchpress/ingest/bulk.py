"""Bulk inserts for ingest: hundreds of thousands of rows with no per-row work in SQLAlchemy.

At 300,000 image rows, SQLAlchemy's per-row parameter handling (a dict per row, each datetime and UUID converted
again) took longer than the database's own work, and fetching each product's new id back cost as much again
(SQLite's RETURNING in parameter order falls back to one INSERT per row). So ids are reserved first, the values that
are the same on every row are converted once, and rows go to the driver as plain tuples: ``executemany`` on SQLite,
``COPY`` on PostgreSQL, where it takes about half the time of an ``executemany``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, select


class BulkInsert:
    """Rows for ``table`` that give the ``varying`` columns, in that order; ``constants`` fill in the rest."""

    def __init__(self, conn: Connection, table: Table, varying: Sequence[str], constants: Mapping[str, Any]) -> None:
        dialect = conn.dialect
        self._conn = conn
        self._names = (*varying, *constants)
        if dialect.driver == "psycopg":
            quote = dialect.identifier_preparer.quote
            self._copy: str | None = f"COPY {quote(table.name)} ({', '.join(map(quote, self._names))}) FROM STDIN"
            self._fixed = tuple(constants.values())  # psycopg adapts Python values itself
            return
        self._copy = None
        compiled = insert(table).values({name: bindparam(name) for name in self._names}).compile(dialect=dialect)
        self._sql = compiled.string
        fixed = []
        for name, value in constants.items():
            process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            fixed.append(process(value) if process else value)
        for name in varying:  # these go to the driver as they are, so they must need no conversion
            if table.c[name].type.dialect_impl(dialect).bind_processor(dialect) is not None:
                raise TypeError(f"{table.name}.{name} needs converting for {dialect.name}; pass it as a constant")
        self._fixed = tuple(fixed)
        order = compiled.positiontup
        self._pack = itemgetter(*(self._names.index(name) for name in order)) if order else None

    def run(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        fixed = self._fixed
        if self._copy is not None:
            driver = self._conn.connection.driver_connection
            assert driver is not None  # the connection is open: this transaction is using it
            with driver.cursor() as cursor, cursor.copy(self._copy) as copy:
                for row in rows:
                    copy.write_row(row + fixed)
        elif self._pack is not None:
            pack = self._pack
            self._conn.exec_driver_sql(self._sql, [pack(row + fixed) for row in rows])
        else:
            names = self._names
            self._conn.exec_driver_sql(self._sql, [dict(zip(names, row + fixed, strict=True)) for row in rows])


def reserve_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """``count`` unused ids for ``table``, increasing, so that rows are written with their ids already known."""
    if conn.dialect.name == "postgresql":
        serial = func.nextval(func.pg_get_serial_sequence(table.name, "id"))
        return sorted(conn.scalars(select(serial).select_from(func.generate_series(1, count))))
    if conn.dialect.name == "sqlite":
        # Only once this transaction has written does it hold SQLite's single write lock, which keeps any other
        # connection from taking these ids before it commits.
        if not conn.in_transaction():
            raise RuntimeError("reserve_ids needs a transaction that has already written")
        last = conn.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0
        return list(range(last + 1, last + 1 + count))
    raise NotImplementedError(f"no id reservation for {conn.dialect.name}")
