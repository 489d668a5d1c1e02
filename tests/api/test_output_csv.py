"""The output CSV: the input's rows in order, output URLs, sizes and reuse lined up with inputs, and no formula gets
through."""

from __future__ import annotations

import csv
import io
import uuid

from starlette.testclient import TestClient

from batchpress.context import Context
from tests.support.inprocess import process_inline
from tests.support.photos import make_image
from tests.support.servers import ImageServer


def test_output_csv_lines_up_with_the_input_and_neutralises_formulas(
    context: Context, api: TestClient, image_server: ImageServer
) -> None:
    sources = [make_image("jpeg", i, (320, 240)) for i in range(3)]
    good = [image_server.add(f"/outcsv/{i}.jpg", data) for i, data in enumerate(sources)]
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
    body = "S. No.,Product Name,Input Image Urls\n" + "\n".join(rows) + "\n"
    accepted = api.post("/api/upload/", files={"file": ("p.csv", body.encode(), "text/csv")})
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["request_id"]
    csv_url = f"{context.settings.public_base_url}/api/requests/{request_id}/output.csv"

    early = api.get(csv_url)
    assert early.status_code == 409
    assert "has finished" in early.json()["error"]["message"]

    process_inline(context, uuid.UUID(request_id))
    status = api.get(f"/api/status/{request_id}/").json()
    assert status["status"] == "completed_with_errors"
    assert status["output_csv_url"] == csv_url

    response = api.get(status["output_csv_url"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    # The original brief's four columns first, as they were; the sizes and reuse after them.
    assert table[0] == [
        "S. No.",
        "Product Name",
        "Input Image Urls",
        "Output Image Urls",
        "Input Image Bytes",
        "Output Image Bytes",
        "Reused",
    ]
    assert [r[0] for r in table[1:]] == ["1", "2", "3", "4", "5", "6"]
    assert [r[1] for r in table[1:]] == ["'" + n for n in names[:5]] + [names[5]]
    first_inputs, first_outputs = table[1][2].split(","), table[1][3].split(",")
    assert first_inputs == [good[0], missing]
    assert first_outputs[0] == status["products"][0]["output_image_urls"][0]
    assert first_outputs[1] == ""
    for row, product in zip(table[1:], status["products"], strict=True):
        assert row[3].split(",") == [u or "" for u in product["output_image_urls"]]
        assert row[4].split(",") == ["" if n is None else str(n) for n in product["input_image_bytes"]]
        assert row[5].split(",") == ["" if n is None else str(n) for n in product["output_image_bytes"]]
        assert row[6].split(",") == [why or "" for why in product["reused"]]
    assert table[1][4].split(",") == [str(len(sources[0])), ""]
    # Rows 4 to 6 repeat the sources of rows 1 to 3, so they took those outputs.
    assert [r[6] for r in table[1:]] == [",", "", ""] + ["same source in this request"] * 3
    # Each listed size is the size of what its URL serves, and of what was downloaded.
    for row in table[1:]:
        for url, output, size_in, size_out in zip(*(row[k].split(",") for k in range(2, 6)), strict=True):
            if output:
                assert int(size_in) == len(sources[good.index(url)])
                assert int(size_out) == len(api.get(output).content)
    # Every listed output is really there, a JPEG served by the app.
    for url in {url for row in table[1:] for url in row[3].split(",") if url}:
        served = api.get(url)
        assert served.status_code == 200, url
        assert served.content.startswith(b"\xff\xd8")

    # The same CSV again: every source's bytes are those of an output already stored.
    again = api.post("/api/upload/", files={"file": ("p.csv", body.encode(), "text/csv")}).json()["request_id"]
    process_inline(context, uuid.UUID(again))
    table = list(csv.reader(io.StringIO(api.get(f"/api/requests/{again}/output.csv").content.decode("utf-8-sig"))))
    assert [r[6] for r in table[1:]] == ["same content,", "same content", "same content"] + [
        "same source in this request"
    ] * 3

    unknown = api.get("/api/requests/00000000-0000-0000-0000-000000000000/output.csv")
    assert unknown.status_code == 404


def test_every_formula_start_is_neutralised() -> None:
    from batchpress.api.output_csv import safe_cell

    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert safe_cell(start + "x") == "'" + start + "x"
    assert safe_cell("plain") == "plain"
    assert safe_cell("") == ""
