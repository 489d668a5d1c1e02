"""The output CSV: the input's rows in order, output URLs lined up with inputs, and no formula gets through."""

from __future__ import annotations

import csv
import io

import httpx

from tests.conftest import StartService
from tests.support.photos import make_image
from tests.support.servers import ImageServer


def test_output_csv_lines_up_with_the_input_and_neutralises_formulas(
    start_service: StartService, image_server: ImageServer
) -> None:
    good = [image_server.add(f"/outcsv/{i}.jpg", make_image("jpeg", i, (320, 240))) for i in range(3)]
    missing = image_server.url("/outcsv/missing.jpg")
    names = ['=HYPERLINK("http://evil","click")', "+cmd", "-2+3", "@SUM(A1)", "=cmd|' /C calc'!A0", "Plain, with comma"]
    rows = [
        f'1,"{names[0].replace(chr(34), chr(34) * 2)}","{good[0]},{missing}"',
        f"2,{names[1]},{good[1]}",
        f"3,{names[2]},{good[2]}",
        f"4,{names[3]},{good[0]}",
        f'5,"{names[4]}",{good[1]}',
        f'6,"{names[5]}",{good[2]}',
    ]
    service = start_service()
    request_id = service.upload("S. No.,Product Name,Input Image Urls\n" + "\n".join(rows) + "\n").json()["request_id"]
    early = httpx.get(f"{service.base_url}/api/requests/{request_id}/output.csv")
    assert early.status_code in (200, 409)
    if early.status_code == 409:
        assert "has finished" in early.json()["error"]["message"]
    status = service.wait_until(request_id)
    assert status["output_csv_url"] == f"{service.base_url}/api/requests/{request_id}/output.csv"

    response = httpx.get(status["output_csv_url"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert table[0] == ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls"]
    assert [r[0] for r in table[1:]] == ["1", "2", "3", "4", "5", "6"]
    assert [r[1] for r in table[1:]] == ["'" + n for n in names[:5]] + [names[5]]
    first_inputs, first_outputs = table[1][2].split(","), table[1][3].split(",")
    assert first_inputs == [good[0], missing]
    assert first_outputs[0] == status["products"][0]["output_image_urls"][0]
    assert first_outputs[1] == ""
    for row, product in zip(table[1:], status["products"], strict=True):
        assert row[3].split(",") == [u or "" for u in product["output_image_urls"]]

    unknown = httpx.get(f"{service.base_url}/api/requests/00000000-0000-0000-0000-000000000000/output.csv")
    assert unknown.status_code == 404


def test_every_formula_start_is_neutralised() -> None:
    from batchpress.api.output_csv import safe_cell

    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert safe_cell(start + "x") == "'" + start + "x"
    assert safe_cell("plain") == "plain"
    assert safe_cell("") == ""
