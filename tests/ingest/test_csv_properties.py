"""Property tests of the CSV reader: whatever a spreadsheet writes comes back exactly, and no input breaks it."""

from __future__ import annotations

import csv
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchpress.ingest.csv_reader import CsvRejected, ProductRow, read_products

CAPS = {"max_bytes": 10_000_000, "max_rows": 100_000}
names = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda s: s.strip() != ""
)
hosts = st.from_regex(r"[a-z][a-z0-9-]{0,20}\.(com|net|shop)", fullmatch=True)
paths = st.from_regex(r"(/[A-Za-z0-9._~%-]{1,12}){0,3}(\?[a-z]=[0-9]{1,4})?", fullmatch=True)
urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}{path}", st.sampled_from(["http", "https"]), hosts, paths
)
products = st.lists(
    st.tuples(st.integers(1, 2**31 - 1), names, st.lists(urls, min_size=1, max_size=4)),
    min_size=1,
    max_size=25,
    unique_by=lambda p: p[0],
)


@st.composite
def spreadsheets(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, str, list[str]]]]:
    rows = draw(products)
    header = [
        draw(st.sampled_from(["S. No.", "s. no.", " S. NO. "])),
        draw(st.sampled_from(["Product Name", "product name"])),
        draw(st.sampled_from(["Input Image Urls", "INPUT IMAGE URLS "])),
    ]
    out = io.StringIO()
    writer = csv.writer(
        out,
        lineterminator=draw(st.sampled_from(["\n", "\r\n"])),
        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
    )
    writer.writerow(header)
    spacer = draw(st.sampled_from([",", ", ", " , "]))
    for serial, name, row_urls in rows:
        writer.writerow([serial, name, spacer.join(row_urls)])
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return (bom + out.getvalue()).encode(), rows


def normalised(name: str) -> str:
    return name.strip()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spreadsheets())
def test_what_a_spreadsheet_writes_comes_back(sheet: tuple[bytes, list[tuple[int, str, list[str]]]]) -> None:
    data, rows = sheet
    read = read_products(io.BytesIO(data), **CAPS)
    assert [(r.serial_number, r.product_name, list(r.image_urls)) for r in read] == [
        (serial, normalised(name), row_urls) for serial, name, row_urls in rows
    ]
    assert all(isinstance(r, ProductRow) for r in read)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_are_accepted_or_rejected_cleanly(data: bytes) -> None:
    try:
        read_products(io.BytesIO(data), **CAPS)
    except CsvRejected as exc:
        assert exc.status_code in (400, 413)
        assert exc.problems
        assert all(p.message for p in exc.problems)


@settings(max_examples=100, deadline=None)
@given(spreadsheets(), st.data())
def test_damaged_spreadsheets_never_break_the_reader(
    sheet: tuple[bytes, list[tuple[int, str, list[str]]]], data: st.DataObject
) -> None:
    raw = bytearray(sheet[0])
    for _ in range(data.draw(st.integers(1, 5))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    try:
        rows = read_products(io.BytesIO(bytes(raw)), **CAPS)
    except CsvRejected as exc:
        assert exc.problems
        assert all(p.line is None or p.line >= 1 for p in exc.problems)
    else:
        assert all(r.serial_number > 0 and r.product_name and r.image_urls for r in rows)
