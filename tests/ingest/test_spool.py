"""Validated rows set aside in the spool come back whole and in file order, in memory or once moved to disk."""

from __future__ import annotations

import pytest

from batchpress.ingest.csv_reader import ProductRow
from batchpress.ingest.spool import CHUNK_ROWS, RowSpool


def rows(n: int) -> list[ProductRow]:
    return [
        ProductRow(
            i + 2, n - i, f'Prodüct {i}, "quoted"', tuple(f"https://a.example/{i}/{k}.jpg" for k in range(i % 4 + 1))
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("memory_bytes", [64, 4 * 1024 * 1024], ids=["on-disk", "in-memory"])
def test_rows_come_back_in_order_in_bounded_chunks(memory_bytes: int) -> None:
    written = rows(2 * CHUNK_ROWS + 7)
    with RowSpool(memory_bytes).extend(iter(written)) as spool:
        chunks = list(spool.chunks())
        assert [len(chunk) for chunk in chunks] == [CHUNK_ROWS, CHUNK_ROWS, 7]
        assert [row for chunk in chunks for row in chunk] == written
        assert spool.rows == len(written)
        assert [row for chunk in spool.chunks() for row in chunk] == written  # and again, from the start


def test_an_empty_spool_has_no_chunks() -> None:
    with RowSpool().extend([]) as spool:
        assert list(spool.chunks()) == []
