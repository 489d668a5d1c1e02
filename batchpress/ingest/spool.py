"""Validated rows set aside until the whole CSV has passed, so that the write transaction only has to insert.

A 100,000-row file must be read to its last line before anything may be stored, and holding its rows as Python
objects meanwhile cost hundreds of megabytes. Here they go, a chunk at a time, into a temporary file that stays in
memory while small and moves to disk beyond that.
"""

from __future__ import annotations

import marshal
import tempfile
from collections.abc import Iterable, Iterator
from types import TracebackType

from batchpress.ingest.csv_reader import ProductRow

CHUNK_ROWS = 2000
MEMORY_BYTES = 4 * 1024 * 1024

_Record = tuple[int, int, str, tuple[str, ...]]


class RowSpool:
    """Rows written once, in order, and read back as often as needed; ``marshal`` is the fastest codec for plain
    tuples, and safe here because the file is ours, written and read by this process only."""

    def __init__(self, memory_bytes: int = MEMORY_BYTES) -> None:
        # Closed by close(); the spool outlives the block that makes it.
        self._file = tempfile.SpooledTemporaryFile(max_size=memory_bytes, prefix="batchpress-rows-")  # noqa: SIM115
        self._pending: list[_Record] = []
        self.rows = 0

    def extend(self, rows: Iterable[ProductRow]) -> RowSpool:
        for row in rows:
            self._pending.append((row.line, row.serial_number, row.product_name, row.image_urls))
            if len(self._pending) == CHUNK_ROWS:
                self._flush()
        self._flush()
        return self

    def _flush(self) -> None:
        if self._pending:
            blob = marshal.dumps(self._pending)
            self._file.write(len(blob).to_bytes(4, "little") + blob)
            self.rows += len(self._pending)
            self._pending = []

    def chunks(self) -> Iterator[list[ProductRow]]:
        """The rows again, in file order, in lists of up to ``CHUNK_ROWS``."""
        self._file.seek(0)
        # One read per chunk: marshal.load on the file itself would call back into Python for every string.
        while size := int.from_bytes(self._file.read(4), "little"):
            records: list[_Record] = marshal.loads(self._file.read(size))  # noqa: S302  (our own file, see above)
            yield [ProductRow(*record) for record in records]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RowSpool:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
