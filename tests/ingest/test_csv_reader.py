import io
import random
import tempfile

import pytest

from batchpress.ingest.csv_reader import (
    IMAGE_URLS,
    MAX_FIELD_CHARS,
    MAX_REPORTED_PROBLEMS,
    MAX_URL_CHARS,
    MAX_URLS_PER_PRODUCT,
    PRODUCT_NAME,
    SERIAL_NUMBER,
    CsvProblem,
    CsvRejected,
    ProductRow,
    iter_products,
    read_products,
)

HEADER = "S. No.,Product Name,Input Image Urls"
URL = "https://cdn.example.com/a.jpg"


def make_csv(*rows: str, header: str = HEADER, eol: str = "\n") -> bytes:
    return "".join(line + eol for line in (header, *rows)).encode()


def read(data: bytes, *, max_bytes: int = 10_000_000, max_rows: int = 1000) -> list[ProductRow]:
    return read_products(io.BytesIO(data), max_bytes=max_bytes, max_rows=max_rows)


def rejected(data: bytes, **limits: int) -> CsvRejected:
    with pytest.raises(CsvRejected) as info:
        read(data, **limits)
    return info.value


def only_problem(data: bytes, **limits: int) -> CsvProblem:
    error = rejected(data, **limits)
    assert error.total_problems == 1, error.problems
    return error.problems[0]


def test_valid_file_gives_rows_with_normalised_values() -> None:
    data = make_csv(
        f'1,  Red shoe  ,"{URL},  http://img.example.org/b.png ,HTTPS://X.example.com/c"',
        f"2,Blue shoe,{URL}",
    )
    assert read(data) == [
        ProductRow(2, 1, "Red shoe", (URL, "http://img.example.org/b.png", "HTTPS://X.example.com/c")),
        ProductRow(3, 2, "Blue shoe", (URL,)),
    ]


def test_bom_and_odd_case_header_are_accepted() -> None:
    data = b"\xef\xbb\xbf  s. no. ,PRODUCT NAME,  input IMAGE urls \r\n" + f"1,Shoe,{URL}\r\n".encode()
    assert [row.serial_number for row in read(data)] == [1]


def test_extra_columns_in_any_position_are_ignored() -> None:
    header = "Notes,Input Image Urls,SKU,S. No.,Product Name,Colour"
    data = make_csv(f'"a, note",{URL},SKU-1,7,Shoe,red', header=header)
    assert read(data) == [ProductRow(2, 7, "Shoe", (URL,))]


def test_trailing_empty_fields_are_tolerated() -> None:
    assert len(read(make_csv(f"1,Shoe,{URL},,"))) == 1


EXPECTED = (
    "expected 'S. No.', 'Product Name', 'Input Image Urls' (in any order and letter case; other columns are ignored)"
)


@pytest.mark.parametrize("missing", [SERIAL_NUMBER, PRODUCT_NAME, IMAGE_URLS])
def test_missing_required_column_is_named(missing: str) -> None:
    names = [name for name in HEADER.split(",") if name != missing] + ["Other"]
    problem = only_problem(make_csv("1,Shoe,x", header=",".join(names)))
    assert (problem.line, problem.field) == (1, missing)
    found = ", ".join(repr(name) for name in names)
    assert problem.message == f"the header has no '{missing}' column: {EXPECTED}, found {found}"


def test_a_header_of_other_names_is_named_as_such_not_as_not_a_csv() -> None:
    problem = only_problem(make_csv(f"1,Shoe,{URL}", header="\n\nID,Title, Images ,,Notes"))
    assert (problem.line, problem.field) == (3, None)
    assert problem.message == (
        f"the header names none of the required columns: {EXPECTED}, found 'ID', 'Title', 'Images', 'Notes'"
    )


def test_a_header_of_one_other_name_is_still_a_header() -> None:
    problem = only_problem(make_csv("Shoe", header="Name"))
    assert problem.message == f"the header names none of the required columns: {EXPECTED}, found 'Name'"


def test_names_close_to_the_required_ones_say_what_to_rename() -> None:
    problem = only_problem(make_csv(f"1,Shoe,{URL}", header="S.No,Product Name,Notes,input image URL"))
    assert (problem.line, problem.field) == (1, None)
    assert problem.message == (
        f"the header has no 'S. No.' or 'Input Image Urls' column: {EXPECTED}, found 'S.No', 'Product Name', "
        "'Notes', 'input image URL'; rename 'S.No' (column 1) to 'S. No.' and 'input image URL' (column 4) to "
        "'Input Image Urls'"
    )
    nbsp = only_problem(make_csv(f"1,Shoe,{URL}", header="S. No.,Product\u00a0Name,Input Image Urls"))
    assert nbsp.field == PRODUCT_NAME
    assert nbsp.message.endswith("rename 'Product\\xa0Name' (column 2) to 'Product Name'")


def test_a_file_without_its_header_says_to_add_it() -> None:
    problem = only_problem(f"1,Shoe,{URL}\n2,Hat,{URL}\n".encode())
    assert (problem.line, problem.field) == (1, None)
    assert problem.message.startswith("the header names none of the required columns")
    assert problem.message.endswith(
        f"found '1', 'Shoe', '{URL}'; that looks like a product row, not a header: add the line '{HEADER}' above it"
    )


def test_the_names_shown_are_capped() -> None:
    header = ",".join([f"column {i}" for i in range(30)] + ["x" * 5000])
    message = only_problem(make_csv("1", header=header)).message
    assert message.endswith(
        "found 'column 0', 'column 1', 'column 2', 'column 3', 'column 4', 'column 5', "
        "'column 6', 'column 7', 'column 8', 'column 9' and 21 more"
    )
    long = only_problem(make_csv("1,2", header="y" * 5000 + ",z")).message
    assert f"found '{'y' * 37}...', 'z'" in long


def test_duplicate_required_column_names_both_positions() -> None:
    problem = only_problem(make_csv(f"1,Shoe,{URL},Hat", header=HEADER + ", product name"))
    assert (problem.line, problem.field) == (1, PRODUCT_NAME)
    assert "more than once (columns 2 and 4)" in problem.message


@pytest.mark.parametrize("serial", ["1.5", "-3", "0", "abc", "+4", "1e3", "99999999999", "٣"])
def test_serial_number_must_be_a_positive_whole_number(serial: str) -> None:
    error = rejected(make_csv(f"1,Hat,{URL}", f'"{serial}",Shoe,{URL}'))
    assert error.status_code == 400
    message = f"the serial number must be a positive whole number (1 to 2147483647), not {serial!r}"
    assert error.problems == [CsvProblem(3, SERIAL_NUMBER, message)]


def test_serial_number_may_have_spaces_and_leading_zeros() -> None:
    assert [row.serial_number for row in read(make_csv(f"  007 ,Shoe,{URL}"))] == [7]


def test_empty_serial_number() -> None:
    assert only_problem(make_csv(f" ,Shoe,{URL}")) == CsvProblem(2, SERIAL_NUMBER, "the serial number is empty")


def test_duplicate_serial_number_names_the_first_line() -> None:
    problem = only_problem(make_csv(f"5,Shoe,{URL}", f"6,Hat,{URL}", f"5,Sock,{URL}"))
    assert problem == CsvProblem(4, SERIAL_NUMBER, "serial number 5 is repeated; it was first used on line 2")


def test_empty_product_name() -> None:
    assert only_problem(make_csv(f"1,   ,{URL}")) == CsvProblem(2, PRODUCT_NAME, "the product name is empty")


@pytest.mark.parametrize(
    ("urls", "expected"),
    [
        ("", "no image URL given"),
        (" , ", "no image URL given"),
        (f"{URL},", "ends with a comma"),
        (f",{URL}", "starts with a comma"),
        (f"{URL},,{URL}", "empty entry after URL 1"),
        ("ftp://example.com/a.jpg", "uses ftp://; only http:// and https://"),
        ("file:///etc/passwd", "uses file://"),
        ("javascript:alert(1)", "is not absolute"),
        ("cdn.example.com/a.jpg", "not absolute; it must start with http:// or https://"),
        ("/images/a.jpg", "is not absolute"),
        ("//cdn.example.com/a.jpg", "is not absolute"),
        ("http:///a.jpg", "has no host name"),
        ("https://user@/a.jpg", "has no host name"),
        ("http://example.com:http/a.jpg", "malformed host or port"),
        ("http://[::1/a.jpg", "malformed host or port"),
        ("http://example.com/a b.jpg", "contains a space or a control character"),
        ("http://example.com/a\tb.jpg", "contains a space or a control character"),
        ("http://example.com/a\u00a0b.jpg", "contains a space or a control character"),
        ("http://example.com/" + "a" * MAX_URL_CHARS, f"longer than {MAX_URL_CHARS} characters"),
    ],
)
def test_bad_image_urls(urls: str, expected: str) -> None:
    problem = only_problem(make_csv(f'1,Shoe,"{urls}"'))
    assert (problem.line, problem.field) == (2, IMAGE_URLS)
    assert expected in problem.message


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "https://user:pw@example.com:8443/a.jpg?x=1#f",
        "http://[::1]:8080/a.jpg",
        "https://例え.jp/画像.jpg",
        "https://example.com/" + "a" * (MAX_URL_CHARS - 20),
    ],
)
def test_unusual_but_valid_urls_are_accepted(url: str) -> None:
    assert read(make_csv(f'1,Shoe,"{url}"'))[0].image_urls == (url,)


def test_each_bad_url_in_a_list_is_reported() -> None:
    error = rejected(make_csv(f'1,Shoe,"{URL}, ftp://a/b ,{URL}, relative.jpg"'))
    assert [p.message.split(" ")[1] for p in error.problems] == ["'ftp://a/b'", "'relative.jpg'"]


def test_spaces_around_commas_in_url_lists() -> None:
    data = make_csv(f'1,Shoe,"  {URL} ,{URL}2 ,   {URL}3"')
    assert read(data)[0].image_urls == (URL, URL + "2", URL + "3")


def test_row_with_too_few_fields() -> None:
    assert only_problem(make_csv("1,Shoe")) == CsvProblem(2, None, "expected 3 fields, found 2")


def test_unquoted_url_list_explains_quoting() -> None:
    problem = only_problem(make_csv(f"1,Shoe,{URL},{URL}"))
    assert (problem.line, problem.field) == (2, None)
    assert "expected 3 fields, found 4" in problem.message
    assert "wrapped in double quotes" in problem.message


def test_blank_lines_are_skipped_and_lines_still_counted() -> None:
    data = f"\n{HEADER}\n\n,,\n   \n1,Shoe,{URL}\n\n2,,{URL}\n".encode()
    assert only_problem(data) == CsvProblem(8, PRODUCT_NAME, "the product name is empty")


def test_quoted_commas_and_newlines_keep_line_numbers_right() -> None:
    data = make_csv(
        f'1,"Shoe, red","{URL},\n  {URL}2"',
        f'2,"Hat\n\nwith ""quotes""\n",{URL}',
        "0,Sock,not-a-url",
    )
    error = rejected(data)
    assert [(p.line, p.field) for p in error.problems] == [(8, SERIAL_NUMBER), (8, IMAGE_URLS)]


def test_quoted_fields_values() -> None:
    rows = read(make_csv(f'1,"Shoe, red","{URL},\n  {URL}2"', f'2,"Hat\n""x""",{URL}'))
    assert [(r.line, r.product_name, len(r.image_urls)) for r in rows] == [
        (2, "Shoe, red", 2),
        (4, 'Hat\n"x"', 1),
    ]


def test_mixed_line_endings() -> None:
    data = (HEADER + "\r\n" + f"1,Shoe,{URL}\n" + f"2,Hat,{URL}\r" + f"3,,{URL}\r\n" + f"4,Sock,{URL}").encode()
    assert only_problem(data) == CsvProblem(4, PRODUCT_NAME, "the product name is empty")
    assert [row.line for row in read(data.replace(b"3,,", b"3,Cap,"))] == [2, 3, 4, 5]


def test_more_than_fifty_problems_reports_the_first_fifty_and_counts_all() -> None:
    rows = [f"{i},,{URL}" for i in range(1, 121)]
    error = rejected(make_csv(*rows))
    assert error.total_problems == 120
    assert len(error.problems) == MAX_REPORTED_PROBLEMS == 50
    assert [p.line for p in error.problems] == list(range(2, 52))
    assert "120 problem(s)" in str(error)
    assert str(error.problems[0]) == "line 2, Product Name: the product name is empty"


def test_a_row_of_a_thousand_urls_is_accepted_and_one_more_is_a_problem() -> None:
    urls = [f"https://cdn.example.com/p/{i}.jpg" for i in range(MAX_URLS_PER_PRODUCT + 1)]
    rows = read(make_csv(f'1,Shoe,"{", ".join(urls[:-1])}"'))
    assert rows[0].image_urls == tuple(urls[:-1])
    error = rejected(make_csv(f"1,Shoe,{URL}", f'2,Boot,"{", ".join(urls)}"'))
    assert [str(p) for p in error.problems] == [
        f"line 3, Input Image Urls: the row lists {MAX_URLS_PER_PRODUCT + 1} image URLs, over the 1000 allowed"
    ]


def test_long_field_under_the_limit_is_accepted() -> None:
    """A product's URL list may be long (names have their own, smaller cap)."""
    one = "https://cdn.example.com/" + "p" * 700 + "/{}.jpg"
    urls = [one.format(n) for n in range(MAX_URLS_PER_PRODUCT)]
    field = ",".join(urls)
    assert MAX_FIELD_CHARS // 2 < len(field) < MAX_FIELD_CHARS
    assert read(make_csv(f'1,Shoe,"{field}"'))[0].image_urls == tuple(urls)


def test_field_over_the_limit_is_a_problem_not_a_crash() -> None:
    data = make_csv(f"1,Shoe,{URL}", f"2,{'x' * (MAX_FIELD_CHARS + 1)},{URL}")
    error = rejected(data, max_bytes=10 * MAX_FIELD_CHARS)
    assert error.status_code == 400
    assert error.problems == [CsvProblem(3, None, f"a field is longer than {MAX_FIELD_CHARS} characters")]


def test_unclosed_quote_points_at_the_line_where_it_starts() -> None:
    data = make_csv(f"1,Shoe,{URL}", f'2,"Hat,{URL}', f"3,Sock,{URL}", "4,Cap,x")
    assert only_problem(data) == CsvProblem(
        3, None, 'a quoted field starting on this line is never closed; look for a stray "'
    )


def test_text_after_a_closing_quote() -> None:
    problem = only_problem(make_csv(f"1,Shoe,{URL}", f'2,"Hat" large,{URL}'))
    assert (problem.line, problem.field) == (3, None)
    assert "text follows a closing quote" in problem.message


def test_row_problems_before_a_fatal_error_are_kept_in_file_order() -> None:
    error = rejected(make_csv("0,Shoe,x", f'2,"Hat,{URL}'))
    assert [(p.line, p.field) for p in error.problems] == [(2, SERIAL_NUMBER), (2, IMAGE_URLS), (3, None)]


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n\r\n\n", b",,\n"])
def test_empty_file(data: bytes) -> None:
    error = rejected(data)
    assert error.status_code == 400
    assert error.problems == [CsvProblem(None, None, "the file is empty")]


def test_header_only() -> None:
    assert only_problem(make_csv()) == CsvProblem(None, None, "the file has a header but no product rows")


def test_not_utf8_reports_line_and_byte() -> None:
    data = make_csv(f"1,Shoe,{URL}", f"2,Caf\xe9,{URL}").replace(b"\xc3\xa9", b"\xe9")
    problem = only_problem(data)
    assert problem.line == 3
    assert problem.message == (
        f"the file is not valid UTF-8 near line 3 (byte {data.index(b'Caf') + 3}); save it as 'CSV UTF-8'"
    )


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("bad", [b"\xff", b"\x00"])
def test_bad_byte_line_is_exact_far_into_the_file(eol: str, bad: bytes) -> None:
    """Lines of varying length put line breaks, and \\r\\n pairs, across the reader's chunk boundaries."""
    for bad_line in (2, 700, 2201, 2999):
        rows = [f"{i},{'n' * (1 + i % 37)},{URL}" for i in range(1, 3000)]
        data = make_csv(*rows, eol=eol)
        lines = data.split(eol.encode())
        lines[bad_line - 1] = lines[bad_line - 1][:3] + bad + lines[bad_line - 1][3:]
        problem = only_problem(eol.encode().join(lines), max_rows=5000)
        assert problem.line == bad_line
        assert f"at line {bad_line}" in problem.message or f"near line {bad_line}" in problem.message


def test_crlf_split_between_reads_keeps_line_numbers() -> None:
    """Shifting the text by 0..59 bytes makes some \\r\\n pair straddle the 8 KiB read boundary."""
    for pad in range(60):
        rows = [f"{i},{'n' * 20}{'p' * pad if i == 1 else ''},{URL}" for i in range(1, 200)]
        lines = make_csv(*rows, eol="\r\n").split(b"\r\n")
        lines[179] = lines[179].replace(b"nnn", b"n\xffn", 1)
        assert only_problem(b"\r\n".join(lines)).line == 180


def test_nul_byte() -> None:
    data = make_csv(f"1,Shoe,{URL}", f"2,Ha\x00t,{URL}", "3,,x")
    assert only_problem(data) == CsvProblem(3, None, "the file contains a NUL byte at line 3")


def test_nul_byte_inside_a_multiline_record() -> None:
    data = make_csv(f"1,Shoe,{URL}", f'2,"Hat\nred\x00",{URL}')
    assert only_problem(data).message == "the file contains a NUL byte at line 4"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (
            b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(range(256)) * 40,
            "a JPEG image",
        ),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "a PNG image"),
        (b"GIF89a\x01\x00\x01\x00\x80\x00\x00", "a GIF image"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00", "a WebP image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "a PDF document"),
    ],
)
def test_a_file_of_another_kind_is_named(data: bytes, kind: str) -> None:
    problem = only_problem(data)
    assert (problem.line, problem.field) == (None, None)
    assert (
        problem.message == f"the file is not a CSV: it looks like {kind}; expected text whose first line is '{HEADER}'"
    )


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00[Content_Types].xml", "a ZIP archive, such as an Excel workbook (.xlsx)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "an Office document, such as an Excel .xls"),
    ],
)
def test_a_spreadsheet_is_told_to_save_as_csv(data: bytes, kind: str) -> None:
    assert only_problem(data).message == (
        f"the file is not a CSV: it looks like {kind}; expected text whose first line is '{HEADER}'; "
        "save the sheet as 'CSV UTF-8'"
    )


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (b"<html><body>nope</body></html>\n", "first line is '<html><body>nope</body></html>'"),
        (b"S. No.;Product Name;Input Image Urls\n1;a;b\n", "separated by commas"),
        (HEADER.encode("utf-16"), "looks like UTF-16"),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(40), "first line is '\\x7fELF"),
        (b"MZ\x90\x00\x03,\x00\x00\x04\nx", "first line is 'MZ"),
        (b'{"products": []}\n', "first line is '{\"products\": []}'"),
        (b'"unclosed header\n1,2,3\n', "first line is '\"unclosed header'"),
    ],
)
def test_not_a_csv(data: bytes, hint: str) -> None:
    problem = only_problem(data)
    assert (problem.line, problem.field) == (None, None)
    assert problem.message.startswith("the file does not look like a CSV")
    assert f"expected the header '{HEADER}'" in problem.message
    assert hint in problem.message


def test_file_over_the_byte_limit_is_413() -> None:
    data = make_csv(*(f"{i},Shoe,{URL}" for i in range(1, 2000)))
    assert len(read(data, max_bytes=len(data), max_rows=2000)) == 1999
    error = rejected(data, max_bytes=len(data) - 1, max_rows=2000)
    assert error.status_code == 413
    assert error.problems == [CsvProblem(None, None, f"the file is larger than the {len(data) - 1}-byte limit")]


def test_too_many_rows_is_413() -> None:
    data = make_csv(*(f"{i},Shoe,{URL}" for i in range(1, 12)), "\n\n")
    assert len(read(data, max_rows=11)) == 11
    error = rejected(data, max_rows=10)
    assert error.status_code == 413
    assert error.problems == [CsvProblem(None, None, "the file has more than 10 product rows")]


def test_spooled_upload_is_read_and_left_open() -> None:
    with tempfile.SpooledTemporaryFile(max_size=100) as upload:
        upload.write(make_csv(*(f"{i},Shoe,{URL}" for i in range(1, 50))))
        upload.seek(0)
        # typeshed does not declare SpooledTemporaryFile a BinaryIO, though it is one at run time.
        rows = read_products(upload, max_bytes=1_000_000, max_rows=100)  # type: ignore[arg-type]
        assert len(rows) == 49
        upload.seek(0)
        assert upload.read(6) == b"S. No."


def test_random_bytes_only_ever_raise_csv_rejected() -> None:
    rng = random.Random(20240611)
    valid = make_csv(*(f'{i},"Shoe {i}","{URL}, {URL}"' for i in range(1, 40)))
    alphabet = b'\x00\x80\xff\xe2\xef\xbb\xbf\r\n,"; \tS.hN'
    for _ in range(400):
        garbage = rng.randbytes(rng.randrange(0, 3000))
        mutated = bytearray(valid)
        for _ in range(rng.randrange(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.choice(alphabet)
        for data in (garbage, HEADER.encode() + b"\n" + garbage, bytes(mutated)):
            outcome: list[ProductRow] | CsvRejected
            try:
                outcome = read(data, max_bytes=rng.choice([500, 100_000]), max_rows=rng.choice([5, 1000]))
            except CsvRejected as error:  # anything else escaping fails the test
                outcome = error
            if isinstance(outcome, CsvRejected):
                assert 1 <= len(outcome.problems) <= min(outcome.total_problems, MAX_REPORTED_PROBLEMS)
                assert outcome.status_code in (400, 413)
                assert all(problem.message for problem in outcome.problems)


def test_rows_stream_out_before_the_end_and_stop_at_the_first_problem() -> None:
    """The upload keeps rows aside as they come, so it must get them early, and none after a problem."""
    data = make_csv(*(f"{i},Shoe {i},{URL}" for i in range(1, 3001)), "3001,,not-a-url", f"3002,Boot,{URL}")
    stream = io.BytesIO(data)
    rows = iter_products(stream, max_bytes=10_000_000, max_rows=10_000)
    first = next(rows)
    assert first == ProductRow(2, 1, "Shoe 1", (URL,))
    assert stream.tell() < len(data)  # only part of the file has been read
    kept = [first]
    with pytest.raises(CsvRejected) as info:
        kept.extend(rows)
    assert [row.serial_number for row in kept] == list(range(1, 3001))
    assert [(p.line, p.field) for p in info.value.problems] == [(3002, PRODUCT_NAME), (3002, IMAGE_URLS)]
