"""Read an uploaded product CSV in one capped, streaming pass, and reject it whole if any row is wrong.

Every problem is reported at once, with its line and column, so the user can fix the file in one go.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urlsplit

MAX_REPORTED_PROBLEMS = 50
MAX_FIELD_CHARS = 1024 * 1024
MAX_URL_CHARS = 2048
# A product name is a title, not a document: a longer one is a mistake, and every status read would carry it.
MAX_NAME_CHARS = 1000
# Every status page lists a product whole: this bounds the largest page (~2.4 MB of JSON, all images failed).
MAX_URLS_PER_PRODUCT = 1000
# The serial number lands in a 32-bit INTEGER column on PostgreSQL.
MAX_SERIAL_NUMBER = 2**31 - 1

SERIAL_NUMBER = "S. No."
PRODUCT_NAME = "Product Name"
IMAGE_URLS = "Input Image Urls"
REQUIRED_COLUMNS = (SERIAL_NUMBER, PRODUCT_NAME, IMAGE_URLS)
HEADER = ",".join(REQUIRED_COLUMNS)


@dataclass(frozen=True, slots=True)
class ProductRow:
    line: int  # where the record starts; a quoted field may span several lines
    serial_number: int
    product_name: str
    image_urls: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CsvProblem:
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        where += [self.field] if self.field is not None else []
        return f"{', '.join(where)}: {self.message}" if where else self.message


class CsvRejected(Exception):
    """The file breaks the rules; nothing may be stored."""

    def __init__(self, problems: list[CsvProblem], total_problems: int, status_code: int = 400) -> None:
        self.problems = problems[:MAX_REPORTED_PROBLEMS]
        self.total_problems = total_problems
        self.status_code = status_code
        super().__init__(f"CSV rejected with {total_problems} problem(s); first: {problems[0]}")


class _OverCap(Exception):
    """A size cap was hit: reading stops and only this is reported (413), as the file must shrink anyway."""


@dataclass(slots=True)
class _Problems:
    """Keeps the first problems and only counts the rest, so a hostile file cannot inflate the report."""

    first: list[CsvProblem] = field(default_factory=list)
    total: int = 0

    def add(self, line: int | None, column: str | None, message: str) -> None:
        self.total += 1
        if len(self.first) < MAX_REPORTED_PROBLEMS:
            self.first.append(CsvProblem(line, column, message))


def _breaks(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


class _CountingReader(io.BufferedIOBase):
    """Enforces the byte cap while reading and remembers enough to turn a byte offset into a line number.

    Closing it (as the text wrapper does when collected) leaves the upload open: the caller owns that.
    """

    def __init__(self, stream: BinaryIO, max_bytes: int) -> None:
        self._stream = stream
        self._max_bytes = max_bytes
        self.total = 0
        self.head = b""
        self.nul_line: int | None = None
        self._chunk = b""
        self._chunk_start = 0
        self._lines_before_chunk = 1
        self._joins_crlf = False  # the chunk starts with the \n of a \r\n already counted

    @property
    def name(self) -> str:
        return "<upload>"

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            size = self._max_bytes - self.total + 1
        data = self._stream.read(size)
        self._lines_before_chunk = self.line_at(self.total)
        self._joins_crlf = self._chunk.endswith(b"\r") and data.startswith(b"\n")
        self._chunk, self._chunk_start = data, self.total
        self.total += len(data)
        if self.total > self._max_bytes:
            raise _OverCap(f"the file is larger than the {self._max_bytes}-byte limit")
        if len(self.head) < 200:
            self.head += data[: 200 - len(self.head)]
        if self.nul_line is None and (nul := data.find(b"\x00")) >= 0:
            self.nul_line = self.line_at(self._chunk_start + nul)
        return data

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)

    def line_at(self, offset: int) -> int:
        """1-based line of a byte offset in the last chunk, or just before it where a decoder keeps bytes."""
        prefix = self._chunk[: max(offset - self._chunk_start, 0)]
        return self._lines_before_chunk + _breaks(prefix) - (self._joins_crlf and prefix[:1] == b"\n")


def read_products(stream: BinaryIO, *, max_bytes: int, max_rows: int) -> list[ProductRow]:
    """Validate the whole upload and return its rows, or raise ``CsvRejected`` listing what to fix.

    Any input bytes end in one of those two outcomes; only I/O errors of ``stream`` itself escape.
    """
    return list(iter_products(stream, max_bytes=max_bytes, max_rows=max_rows))


def iter_products(stream: BinaryIO, *, max_bytes: int, max_rows: int) -> Iterator[ProductRow]:
    """Yield each valid row as soon as it is read, and raise ``CsvRejected`` once the end shows any problem.

    Rows stop coming at the first problem, but reading goes on to the end so that the report lists them all; a
    consumer that keeps rows as they come must drop them when the rejection arrives. Memory stays flat however long
    the file is, which is why the upload streams through this rather than through ``read_products``.
    """
    csv.field_size_limit(MAX_FIELD_CHARS)  # process-wide; the default 128 KiB is too small for long URL lists
    source = _CountingReader(stream, max_bytes)
    problems = _Problems()
    try:
        for row in _parse(source, problems, max_rows):
            if not problems.total:
                yield row
    except _OverCap as exc:
        raise CsvRejected([CsvProblem(None, None, str(exc))], 1, status_code=413) from None
    if problems.total:
        raise CsvRejected(problems.first, problems.total)


def _parse(source: _CountingReader, problems: _Problems, max_rows: int) -> Iterator[ProductRow]:
    text = io.TextIOWrapper(source, encoding="utf-8-sig", errors="strict", newline="")
    # strict: a stray quote becomes a reported error instead of silently swallowing the following lines.
    records = csv.reader(text, strict=True, skipinitialspace=True)
    checker: _RowChecker | None = None
    valid_rows = 0
    product_records = 0
    line_end = 0  # the physical line on which the previous record ended
    try:
        for fields in records:
            start, line_end = line_end + 1, records.line_num
            if source.nul_line is not None and source.nul_line <= line_end:
                break
            if not fields or not "".join(fields).strip():
                continue  # blank lines, and the ",,," rows spreadsheets leave at the end
            if checker is None:
                checker = _read_header(fields, start, source, problems)
                if checker is None:
                    return
                continue
            product_records += 1
            if product_records > max_rows:
                raise _OverCap(f"the file has more than {max_rows} product rows")
            if (row := checker.check(fields, start)) is not None:
                valid_rows += 1
                yield row
    except UnicodeDecodeError as exc:
        # The decoder saw the bytes up to the end of the last chunk read, so its offsets map back to the file.
        offset = max(source.total - len(exc.object) + exc.start, 0)
        if (line := source.line_at(offset)) == 1 or _known_format(source.head) is not None:
            problems.add(None, None, _not_a_csv(source))
        else:
            problems.add(line, None, f"the file is not valid UTF-8 near line {line} (byte {offset}); {_UTF8}")
        return
    except csv.Error as exc:  # the parser cannot resume reliably after one, so reading stops here
        error = str(exc)
        reason = next((msg for key, msg in _CSV_ERRORS.items() if key in error), f"unreadable line ({error})")
        where: int | None = line_end + 1 if "end of data" in error else records.line_num
        if checker is None:
            where, reason = None, _not_a_csv(source)
        problems.add(where, None, reason)
        return
    if checker is None:
        problems.add(None, None, "the file is empty" if source.nul_line is None else _not_a_csv(source))
    elif source.nul_line is not None:
        problems.add(source.nul_line, None, f"the file contains a NUL byte at line {source.nul_line}")
    elif not valid_rows and not problems.total:
        problems.add(None, None, "the file has a header but no product rows")


_UTF8 = "save it as 'CSV UTF-8'"
_CSV_ERRORS = {
    "field limit": f"a field is longer than {MAX_FIELD_CHARS} characters",
    "unexpected end of data": 'a quoted field starting on this line is never closed; look for a stray "',
    "expected after": 'text follows a closing quote; quote the whole field and write a " inside it as ""',
}


# Files people upload by mistake, by their first bytes: named, they need no guessing from a garbled first line.
_KNOWN_FORMATS = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image", ""),
    (b"\xff\xd8\xff", "a JPEG image", ""),
    (b"GIF8", "a GIF image", ""),
    (b"%PDF-", "a PDF document", ""),
    (b"PK\x03\x04", "a ZIP archive, such as an Excel workbook (.xlsx)", "; save the sheet as 'CSV UTF-8'"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "an Office document, such as an Excel .xls",
        "; save the sheet as 'CSV UTF-8'",
    ),
)


def _known_format(head: bytes) -> tuple[str, str] | None:
    """What a file people upload by mistake is, and what to do about it, from its first bytes."""
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image", ""
    return next(((name, fix) for magic, name, fix in _KNOWN_FORMATS if head.startswith(magic)), None)


def _not_a_csv(source: _CountingReader) -> str:
    head = source.head
    if (known := _known_format(head)) is not None:
        return (
            f"the file is not a CSV: it looks like {known[0]}; expected text whose first line is {HEADER!r}{known[1]}"
        )
    first = head.removeprefix(b"\xef\xbb\xbf").splitlines()[:1] or [b""]
    shown = first[0].decode("utf-8", errors="replace")[:80]
    hint = ""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        hint = f"; it looks like UTF-16, {_UTF8}"
    elif ";" in shown or "\t" in shown:
        hint = "; columns must be separated by commas"
    return f"the file does not look like a CSV: first line is {shown!r}, expected the header {HEADER!r}{hint}"


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode's Cc characters
_REQUIRED_FOLDED = {col.casefold(): col for col in REQUIRED_COLUMNS}
_EXPECTED = ", ".join(repr(col) for col in REQUIRED_COLUMNS)
_HEADER_RULE = "in any order and letter case; other columns are ignored"
MAX_NAMES_SHOWN = 10
_NAME_CHARS_SHOWN = 40


def _read_header(fields: list[str], line: int, source: _CountingReader, problems: _Problems) -> _RowChecker | None:
    """Locate the required columns by name; a header without them is reported with what it has instead."""
    names = [name.replace("\ufeff", "").strip() for name in fields]
    folded = [name.casefold() for name in names]
    found: dict[str, list[int]] = {col: [] for col in REQUIRED_COLUMNS}
    for i, name in enumerate(folded):
        if (col := _REQUIRED_FOLDED.get(name)) is not None:
            found[col].append(i)
    missing = [col for col, positions in found.items() if not positions]
    if len(missing) == len(REQUIRED_COLUMNS) and not _is_a_header(names, source.head):
        problems.add(None, None, _not_a_csv(source))
        return None
    if missing:
        if len(missing) == len(REQUIRED_COLUMNS):
            lacks = "the header names none of the required columns"
        else:
            lacks = f"the header has no {' or '.join(repr(col) for col in missing)} column"
        problems.add(line, missing[0] if len(missing) == 1 else None, f"{lacks}: {_expected_and_found(names, found)}")
    for col, positions in found.items():
        if len(positions) > 1:
            shown = " and ".join(str(i + 1) for i in positions)
            problems.add(line, col, f"the header has the {col!r} column more than once (columns {shown})")
    if problems.total:
        return None
    return _RowChecker(*(found[col][0] for col in REQUIRED_COLUMNS), width=len(fields), problems=problems)


def _is_a_header(names: list[str], head: bytes) -> bool:
    """Plain-text column names: a CSV whatever they are, unless the file is a known other format, markup, or
    separated by semicolons (which ``_not_a_csv`` explains better)."""
    named = [name for name in names if name]
    if not named or _known_format(head) is not None:
        return False
    if any(_CONTROL.search(name) for name in named):
        return False  # control characters: binary that happened to decode
    return len(named) > 1 or not (named[0].startswith(("<", "{", "[")) or ";" in named[0])


def _expected_and_found(names: list[str], found: dict[str, list[int]]) -> str:
    """``expected 'S. No.', ... (rule), found 'Name', 'Urls'``, then which column to rename, or that the line is
    a product row rather than a header."""
    named = [(i, name) for i, name in enumerate(names) if name]
    shown = ", ".join(_shown_name(name) for _, name in named[:MAX_NAMES_SHOWN])
    if len(named) > MAX_NAMES_SHOWN:
        shown += f" and {len(named) - MAX_NAMES_SHOWN} more"
    text = f"expected {_EXPECTED} ({_HEADER_RULE}), found {shown}"
    if any("://" in name for _, name in named):
        return f"{text}; that looks like a product row, not a header: add the line {HEADER!r} above it"
    matched = {i for positions in found.values() for i in positions}
    renames = []
    for col in (col for col, positions in found.items() if not positions):
        close = _close_name(col, [(i, name) for i, name in named[:MAX_REPORTED_PROBLEMS] if i not in matched])
        if close is not None:
            matched.add(close[0])
            renames.append(f"{_shown_name(close[1])} (column {close[0] + 1}) to {col!r}")
    return f"{text}; rename {' and '.join(renames)}" if renames else text


def _shown_name(name: str) -> str:
    return repr(name if len(name) <= _NAME_CHARS_SHOWN else name[: _NAME_CHARS_SHOWN - 3] + "...")


def _letters(name: str) -> str:
    return "".join(char for char in name.casefold() if char.isalnum())


def _close_name(col: str, candidates: list[tuple[int, str]]) -> tuple[int, str] | None:
    """The found column most like ``col`` ("S.No", "Input Image URL", "Image Urls"), if any is close enough."""
    wanted = _letters(col)
    best: tuple[float, int, str] | None = None
    for i, name in candidates:
        if len(name) > 4 * len(col):  # cheap first: a header field may be a megabyte long
            continue
        if not (letters := _letters(name)):
            continue
        score = 1.0 if letters == wanted else difflib.SequenceMatcher(None, wanted, letters).ratio()
        if score >= 0.7 and (best is None or score > best[0]):
            best = (score, i, name)
    return None if best is None else (best[1], best[2])


_SERIAL_RULE = f"a positive whole number (1 to {MAX_SERIAL_NUMBER})"
_QUOTE_HINT = "a field that contains commas (such as a list of URLs) must be wrapped in double quotes"


class _RowChecker:
    """Checks product rows against the located columns; one instance per file because it tracks serials."""

    def __init__(self, serial: int, name: int, urls: int, *, width: int, problems: _Problems) -> None:
        self._serial, self._name, self._urls = serial, name, urls
        self._needed = max(serial, name, urls) + 1
        self._width = width
        self._problems = problems
        self._seen: dict[int, int] = {}

    def check(self, fields: list[str], line: int) -> ProductRow | None:
        add = self._problems.add
        if len(fields) < self._needed:
            add(line, None, f"expected {self._width} fields, found {len(fields)}")
            return None
        if len(fields) > self._width and "".join(fields[self._width :]).strip():
            add(line, None, f"expected {self._width} fields, found {len(fields)}; {_QUOTE_HINT}")
            return None
        before = self._problems.total
        serial_text = fields[self._serial].strip()
        digits = serial_text.isascii() and serial_text.isdigit() and len(serial_text) < 12
        serial = int(serial_text) if digits else 0
        if not serial_text:
            add(line, SERIAL_NUMBER, "the serial number is empty")
        elif not 0 < serial <= MAX_SERIAL_NUMBER:
            add(line, SERIAL_NUMBER, f"the serial number must be {_SERIAL_RULE}, not {serial_text[:40]!r}")
        elif (first := self._seen.setdefault(serial, line)) != line:
            add(line, SERIAL_NUMBER, f"serial number {serial} is repeated; it was first used on line {first}")
        name = fields[self._name].strip()
        if not name:
            add(line, PRODUCT_NAME, "the product name is empty")
        elif len(name) > MAX_NAME_CHARS:
            add(line, PRODUCT_NAME, f"the product name is {len(name)} characters, over the {MAX_NAME_CHARS} allowed")
        urls = tuple([url.strip() for url in fields[self._urls].split(",")])
        if len(urls) > MAX_URLS_PER_PRODUCT:
            add(line, IMAGE_URLS, f"the row lists {len(urls)} image URLs, over the {MAX_URLS_PER_PRODUCT} allowed")
            return None
        if "" in urls:
            add(line, IMAGE_URLS, _empty_url_message(urls))
        for url in urls:
            if url and (message := url_problem(url)):
                add(line, IMAGE_URLS, message)
        if self._problems.total != before:
            return None
        return ProductRow(line, serial, name, urls)


def _empty_url_message(urls: tuple[str, ...]) -> str:
    if not any(urls):
        return "no image URL given; list one or more http(s) URLs separated by commas"
    if urls[-1] == "":
        return "the URL list ends with a comma; remove the trailing comma"
    if urls[0] == "":
        return "the URL list starts with a comma; remove the leading comma"
    return f"the URL list has an empty entry after URL {urls.index('')}; remove the extra comma"


_NEEDS_URLSPLIT = frozenset("@:?#[")


def _shown(url: str) -> str:
    return repr(url if len(url) <= 80 else url[:77] + "...")


def url_problem(url: str) -> str | None:
    """Says what is wrong with one URL, if anything; the common case avoids ``urlsplit``, which costs 3 µs."""
    if len(url) > MAX_URL_CHARS:
        return f"URL {_shown(url)} is longer than {MAX_URL_CHARS} characters"
    if " " in url or not url.isprintable():
        return f"URL {_shown(url)} contains a space or a control character; encode spaces as %20"
    head = url[:8].lower()
    rest = url[8:] if head == "https://" else url[7:] if head.startswith("http://") else None
    if rest is not None:
        authority = rest.partition("/")[0]
        if authority and _NEEDS_URLSPLIT.isdisjoint(authority):
            return None
    shown = _shown(url)
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError:
        return f"URL {shown} has a malformed host or port"
    if parts.scheme not in ("http", "https"):
        if parts.scheme and "://" in url:
            return f"URL {shown} uses {parts.scheme}://; only http:// and https:// URLs can be downloaded"
        return f"URL {shown} is not absolute; it must start with http:// or https://"
    if not host:
        return f"URL {shown} has no host name"
    return None
