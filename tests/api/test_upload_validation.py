"""Every CSV rule, posted to the API: a clear 4xx naming the line and field, and nothing stored."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from batchpress.context import Context
from batchpress.models import Image, ProcessingRequest, Product
from tests.support.inprocess import api_with_settings

HEADER = "S. No.,Product Name,Input Image Urls\n"
URL = "https://cdn.example.com/a.jpg"


def post(api: TestClient, body: bytes | str, field: str = "file") -> httpx.Response:
    data = body.encode() if isinstance(body, str) else body
    return api.post("/api/upload/", files={field: ("p.csv", data, "text/csv")})


def problems(response: httpx.Response) -> list[dict[str, object]]:
    error = response.json()["error"]
    assert error["code"] == "invalid_csv"
    details: list[dict[str, object]] = error["details"]
    return details


def stored_rows(context: Context) -> tuple[int, int, int]:
    """How many requests, products and images the database holds."""
    with context.db.session(read_only=True) as session:
        return (
            session.scalar(select(func.count()).select_from(ProcessingRequest)) or 0,
            session.scalar(select(func.count()).select_from(Product)) or 0,
            session.scalar(select(func.count()).select_from(Image)) or 0,
        )


@pytest.mark.parametrize(
    ("body", "line", "field", "words"),
    [
        (HEADER + f"0,Shoe,{URL}\n", 2, "S. No.", "positive"),
        (HEADER + f"abc,Shoe,{URL}\n", 2, "S. No.", "whole number"),
        (HEADER + f"1.5,Shoe,{URL}\n", 2, "S. No.", "whole number"),
        (HEADER + f"1,Shoe,{URL}\n1,Boot,{URL}\n", 3, "S. No.", "line 2"),
        (HEADER + f"1,  ,{URL}\n", 2, "Product Name", "empty"),
        (HEADER + "1,Shoe,\n", 2, "Input Image Urls", "url"),
        (HEADER + "1,Shoe,ftp://host/a.jpg\n", 2, "Input Image Urls", "http"),
        (HEADER + "1,Shoe,/images/a.jpg\n", 2, "Input Image Urls", "http"),
        (HEADER + f'1,Shoe,"{URL},,{URL}"\n', 2, "Input Image Urls", "empty"),
        (HEADER + "1,Shoe\n", 2, None, "field"),
        (HEADER + f"1,{'Shoe ' * 201},{URL}\n", 2, "Product Name", "over the 1000 allowed"),
        (HEADER + f"1,Shoe,https://cdn.example.com/{'a' * 2048}.jpg\n", 2, "Input Image Urls", "longer than 2048"),
    ],
)
def test_row_rules(context: Context, api: TestClient, body: str, line: int, field: str | None, words: str) -> None:
    response = post(api, body)
    assert response.status_code == 400, response.text
    found = problems(response)
    assert any(
        p["line"] == line and p["field"] == field and words.lower() in str(p["message"]).lower() for p in found
    ), found
    assert stored_rows(context) == (0, 0, 0)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        (HEADER.encode(), "no product rows"),
        (b"Name,Urls\nShoe,https://a/b.jpg\n", "S. No."),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00" + bytes(range(256)) * 8, ""),
        (HEADER.encode() + b"1,Caf\xe9,https://a.example/b.jpg\n", "utf-8"),
        (HEADER.encode() + b"1,Sh\x00oe,https://a.example/b.jpg\n", "nul"),
    ],
)
def test_file_rules(context: Context, api: TestClient, body: bytes, words: str) -> None:
    response = post(api, body)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"] + " " + str(response.json()["error"]["details"])
    assert words.lower() in message.lower()
    assert stored_rows(context) == (0, 0, 0)


EXPECTED = (
    "expected 'S. No.', 'Product Name', 'Input Image Urls' (in any order and letter case; other columns are ignored)"
)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        # Not a CSV at all: an image uploaded by mistake is named, with no line to point at.
        (
            PNG,
            {
                "line": None,
                "field": None,
                "message": "the file is not a CSV: it looks like a PNG image; expected text whose first line is "
                "'S. No.,Product Name,Input Image Urls'",
            },
        ),
        # A CSV whose header has other names: what was expected, and what was found.
        (
            b"Name,Urls\nShoe,https://a.example/b.jpg\n",
            {
                "line": 1,
                "field": None,
                "message": f"the header names none of the required columns: {EXPECTED}, found 'Name', 'Urls'",
            },
        ),
        # A header missing one column names that column as the field.
        (
            b"Product Name,Input Image Urls,Notes\nShoe,https://a.example/b.jpg,x\n",
            {
                "line": 1,
                "field": "S. No.",
                "message": f"the header has no 'S. No.' column: {EXPECTED}, found 'Product Name', "
                "'Input Image Urls', 'Notes'",
            },
        ),
    ],
)
def test_the_header_problem_says_what_was_expected_and_found(
    context: Context, api: TestClient, body: bytes, detail: dict[str, object]
) -> None:
    response = post(api, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"] == "the CSV was not accepted: 1 problem"
    assert problems(response) == [detail]
    assert stored_rows(context) == (0, 0, 0)


def test_missing_file_field_is_a_4xx(context: Context, api: TestClient) -> None:
    response = post(api, HEADER + f"1,Shoe,{URL}\n", field="csv")
    assert response.status_code == 422
    assert "file" in response.json()["error"]["message"]
    assert api.post("/api/upload/").status_code == 422
    assert stored_rows(context) == (0, 0, 0)


def test_every_problem_is_listed_up_to_fifty(api: TestClient) -> None:
    rows = "".join(f"{i},,{URL}\n" for i in range(1, 81))
    response = post(api, HEADER + rows)
    assert response.status_code == 400
    found = problems(response)
    assert len(found) == 50
    assert [p["line"] for p in found] == list(range(2, 52))
    assert "80" in response.json()["error"]["message"]


def test_header_is_matched_loosely_and_extra_columns_ignored(context: Context, api: TestClient) -> None:
    body = "\ufeff  s. no. ,PRODUCT NAME, Notes ,input image urls\n" + f'7,Shoe,"ignored, text","{URL} , {URL}"\n'
    response = post(api, body)
    assert response.status_code == 202, response.text
    status = api.get(f"/api/status/{response.json()['request_id']}/").json()
    assert status["status"] == "pending"
    assert status["products"][0]["serial_number"] == 7
    assert status["products"][0]["input_image_urls"] == [URL, URL]
    assert stored_rows(context) == (1, 1, 2)


def test_rejected_files_store_nothing(context: Context, api: TestClient) -> None:
    """A file with one bad row among good ones is refused whole: no request appears for the good rows."""
    good = "".join(f"{i},Item,{URL}\n" for i in range(1, 30))
    response = post(api, HEADER + good + "30,Item,not-a-url\n")
    assert response.status_code == 400
    assert stored_rows(context) == (0, 0, 0)


def test_size_and_row_caps_answer_413(context: Context) -> None:
    with api_with_settings(context, max_upload_bytes=20000, max_csv_rows=100) as api:
        too_big = HEADER + "".join(f"{i},Item {i},{URL}\n" for i in range(1, 5000))
        response = post(api, too_big)
        assert response.status_code == 413
        assert "20000-byte" in response.json()["error"]["message"]

        too_many = HEADER + "".join(f"{i},I,{URL}\n" for i in range(1, 150))
        response = post(api, too_many)
        assert response.status_code == 413
        assert "more than 100 product rows" in str(response.json()["error"])
    assert stored_rows(context) == (0, 0, 0)
