"""Every CSV rule, posted to the real API: a clear 4xx naming the line and field, and nothing stored."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import StartService
from tests.support.servers import Service

HEADER = "S. No.,Product Name,Input Image Urls\n"
URL = "https://cdn.example.com/a.jpg"


def post(service: Service, body: bytes | str, field: str = "file") -> httpx.Response:
    data = body.encode() if isinstance(body, str) else body
    return httpx.post(f"{service.base_url}/api/upload/", files={field: ("p.csv", data, "text/csv")}, timeout=30)


def problems(response: httpx.Response) -> list[dict[str, object]]:
    error = response.json()["error"]
    assert error["code"] == "invalid_csv"
    details: list[dict[str, object]] = error["details"]
    return details


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
    ],
)
def test_row_rules(api_only: Service, body: str, line: int, field: str | None, words: str) -> None:
    response = post(api_only, body)
    assert response.status_code == 400, response.text
    found = problems(response)
    assert any(
        p["line"] == line and p["field"] == field and words.lower() in str(p["message"]).lower() for p in found
    ), found


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
def test_file_rules(api_only: Service, body: bytes, words: str) -> None:
    response = post(api_only, body)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"] + " " + str(response.json()["error"]["details"])
    assert words.lower() in message.lower()


def test_missing_file_field_is_a_4xx(api_only: Service) -> None:
    response = post(api_only, HEADER + f"1,Shoe,{URL}\n", field="csv")
    assert response.status_code == 422
    assert "file" in response.json()["error"]["message"]
    assert httpx.post(f"{api_only.base_url}/api/upload/", timeout=10).status_code == 422


def test_every_problem_is_listed_up_to_fifty(api_only: Service) -> None:
    rows = "".join(f"{i},,{URL}\n" for i in range(1, 81))
    response = post(api_only, HEADER + rows)
    assert response.status_code == 400
    found = problems(response)
    assert len(found) == 50
    assert [p["line"] for p in found] == list(range(2, 52))
    assert "80" in response.json()["error"]["message"]


def test_header_is_matched_loosely_and_extra_columns_ignored(api_only: Service) -> None:
    body = "\ufeff  s. no. ,PRODUCT NAME, Notes ,input image urls\n" + f'7,Shoe,"ignored, text","{URL} , {URL}"\n'
    response = post(api_only, body)
    assert response.status_code == 202, response.text
    status = httpx.get(f"{api_only.base_url}/api/status/{response.json()['request_id']}/").json()
    assert status["status"] == "pending"
    assert status["products"][0]["serial_number"] == 7
    assert status["products"][0]["input_image_urls"] == [URL, URL]


def test_rejected_files_store_nothing(api_only: Service) -> None:
    """A file with one bad row among good ones is refused whole: no request appears for the good rows."""
    import sqlite3

    good = "".join(f"{i},Item,{URL}\n" for i in range(1, 30))
    response = post(api_only, HEADER + good + "30,Item,not-a-url\n")
    assert response.status_code == 400
    if api_only.env.get("BATCHPRESS_DATABASE_URL"):
        import psycopg

        with psycopg.connect(api_only.env["BATCHPRESS_DATABASE_URL"]) as conn:
            count = conn.execute("SELECT count(*) FROM product WHERE product_name = 'Item'").fetchone()
    else:
        with sqlite3.connect(api_only.data_dir / "batchpress.db") as conn:
            count = conn.execute("SELECT count(*) FROM product WHERE product_name = 'Item'").fetchone()
    assert count == (0,)


def test_size_and_row_caps_answer_413(start_service: StartService) -> None:
    service = start_service("--no-worker", BATCHPRESS_MAX_UPLOAD_BYTES="20000", BATCHPRESS_MAX_CSV_ROWS="100")
    too_big = HEADER + "".join(f"{i},Item {i},{URL}\n" for i in range(1, 5000))
    response = post(service, too_big)
    assert response.status_code == 413
    assert "20000-byte" in response.json()["error"]["message"]

    too_many = HEADER + "".join(f"{i},I,{URL}\n" for i in range(1, 150))
    response = post(service, too_many)
    assert response.status_code == 413
    assert "more than 100 product rows" in str(response.json()["error"])
