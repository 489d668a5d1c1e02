"""The client's summary of what a request's images came to (reused ones too), from the status answer alone."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from batchpress.cli import display
from batchpress.cli.display import PlainLines, cancel_line, list_lines, size_text, summary_lines


def status(**progress: Any) -> dict[str, Any]:
    counts = {"total_images": 4, "processed": 3, "failed": 1, "pending": 0}
    return {
        "request_id": "6f1c2a3e-4b5d-4c7e-9f80-1a2b3c4d5e6f",
        "status": "completed_with_errors",
        "created_at": "2026-11-23T22:31:45Z",
        "progress": counts | progress,
    }


def bytes_lines(progress: dict[str, Any]) -> list[str]:
    return [line for line in summary_lines(status(**progress)) if line.startswith("bytes")]


def test_sizes_in_the_units_people_read() -> None:
    assert [size_text(n) for n in (0, 999, 1000, 412_530, 12_400_000, 3_100_000_000)] == [
        "0 bytes",
        "999 bytes",
        "1.0 kB",
        "412.5 kB",
        "12.4 MB",
        "3.1 GB",
    ]


def test_the_summary_says_what_went_in_what_came_out_and_what_was_saved() -> None:
    assert bytes_lines({"bytes_in": 12_400_000, "bytes_out": 3_100_000}) == [
        "bytes     12.4 MB → 3.1 MB, saved 9.3 MB (75 %)"
    ]


def test_outputs_that_grew_are_shown_as_larger_not_as_a_saving() -> None:
    assert bytes_lines({"bytes_in": 2000, "bytes_out": 2500}) == ["bytes     2.0 kB → 2.5 kB, 500 bytes larger (25 %)"]


def test_no_sizes_line_before_an_image_is_compressed_or_from_a_server_without_sizes() -> None:
    assert bytes_lines({"processed": 0, "bytes_in": 0, "bytes_out": 0}) == []
    assert bytes_lines({}) == []


def images_line(progress: dict[str, Any]) -> str:
    [line] = [line for line in summary_lines(status(**progress)) if line.startswith("images")]
    return line


def test_the_summary_says_how_many_done_images_were_reused() -> None:
    assert images_line({"reused": 2}) == "images    4 total: 3 done (2 reused), 1 failed, 0 pending"
    # None reused, or a server from before reuse: the line is as it was.
    assert images_line({"reused": 0}) == images_line({}) == "images    4 total: 3 done, 1 failed, 0 pending"


def test_the_plain_progress_line_says_how_many_were_reused() -> None:
    out = io.StringIO()
    PlainLines(Console(file=out, width=200)).update({"total_images": 4, "processed": 3, "failed": 1, "reused": 2})
    assert out.getvalue().startswith("progress: 4/4 images (3 done, 1 failed; 2 reused), ")


def test_the_list_is_a_table_of_aligned_columns() -> None:
    waiting = status(processed=0, failed=0, pending=4) | {"request_id": "0b5e", "status": "pending"}
    done = status(bytes_in=12_400_000, bytes_out=3_100_000) | {"request_id": "6f1c"}
    grown = status(bytes_in=2000, bytes_out=2500) | {"request_id": "77aa", "status": "completed"}
    assert list_lines([waiting, done, grown]) == [
        "ID    STATUS                 CREATED (UTC)        DONE/FAILED/TOTAL  SAVED",
        "0b5e  pending                2026-11-23 22:31:45  0/0/4              -",
        "6f1c  completed_with_errors  2026-11-23 22:31:45  3/1/4              9.3 MB (75 %)",
        "77aa  completed              2026-11-23 22:31:45  3/1/4              -500 bytes (-25 %)",
    ]


def test_a_cancel_says_whether_it_is_done_or_waits_for_images_in_flight() -> None:
    rid = status()["request_id"]
    assert (
        cancel_line(status() | {"status": "cancelled"}) == f"cancelled {rid}: 3 of 4 images done, 1 failed or cancelled"
    )
    open_one = status(processed=1, failed=2, pending=1) | {"status": "processing"}
    assert cancel_line(open_one) == (
        f"cancelling {rid}: 1 image in flight finishes first, then it is cancelled (batchpress status {rid})"
    )


class FakeClient:
    """Answers ``wait_status`` from a script of progress counts, the last of them finished."""

    def __init__(self, *counts: tuple[int, int]) -> None:
        self.answers = [
            status(processed=done, failed=failed, pending=4 - done - failed) | {"status": "processing"}
            for done, failed in counts
        ]
        self.answers[-1]["status"] = "completed_with_errors"
        self.reads: list[int | None] = []

    def wait_status(self, request_id: str, *, limit: int | None = None) -> dict[str, Any]:
        self.reads.append(limit)
        return self.answers[min(len(self.reads), len(self.answers)) - 1]


def test_the_live_bar_knows_its_total_and_count_from_its_first_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(display, "POLL_SECONDS", 0.0)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, force_interactive=True, width=120, color_system=None)
    client = FakeClient((2, 0), (3, 0), (3, 1))
    final = display.follow(client, "6f1c", console)  # type: ignore[arg-type]
    assert final["status"] == "completed_with_errors"
    assert client.reads == [1, 1, 1, None]  # one-product reads while it runs, then the whole status
    frames = [line for line in re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())) if line]
    assert "2/4" in frames[0], frames
    assert "?" not in frames[0], frames
    assert "4/4" in frames[-1], frames
    assert "1 failed" in frames[-1], frames
