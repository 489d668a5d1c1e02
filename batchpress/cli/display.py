"""What the client commands show: a request's summary, and its progress while ``submit --wait`` polls.

On a terminal the progress is a live Rich bar; elsewhere (CI logs, pipes) Rich cannot redraw, so a plain line is
printed whenever the counts move, at most every few seconds. ``TTY_COMPATIBLE=1`` makes Rich treat any output as a
terminal.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from batchpress.cli.client import TERMINAL, Client

POLL_SECONDS = 0.5
PLAIN_LINE_SECONDS = 3.0
MAX_ERRORS_SHOWN = 5


def exit_code(status: Mapping[str, Any]) -> int:
    """0 while open or completed; 1 once finished with failed images, failed outright or cancelled."""
    return 1 if status["status"] in ("completed_with_errors", "failed", "cancelled") else 0


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC) if value else None


def _clock(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def webhook_line(webhook: Mapping[str, Any]) -> str:
    state, url, attempts = webhook["state"], webhook["url"], webhook["attempts"]
    last = webhook.get("last_attempt") or {}
    outcome = f"HTTP {last['status_code']}" if last.get("status_code") else last.get("error") or ""
    if state == "delivered":
        return f"delivered to {url} ({_plural(attempts, 'attempt')})"
    if state == "retrying":
        next_at = _when(webhook.get("next_attempt_at"))
        return f"retrying {url}: {_plural(attempts, 'attempt')} so far, last {outcome}" + (
            f"; next at {_clock(next_at)}" if next_at else ""
        )
    if state == "failed":
        return f"failed: gave up on {url} after {_plural(attempts, 'attempt')}, last {outcome}"
    return f"{state}: {url}" + ("" if webhook.get("event_id") else " (sent when the request finishes)")


def size_text(size: int) -> str:
    """Decimal units, as the web page and file managers show sizes."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if abs(size) >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def bytes_line(progress: Mapping[str, Any]) -> str | None:
    """What the compressed images came to, e.g. ``12.4 MB → 3.1 MB, saved 9.3 MB (75 %)``; None before any is
    compressed, or from a server that does not report sizes."""
    bytes_in, bytes_out = progress.get("bytes_in") or 0, progress.get("bytes_out") or 0
    if bytes_in <= 0:
        return None
    saved = bytes_in - bytes_out
    percent = round(100 * abs(saved) / bytes_in)
    change = f"saved {size_text(saved)} ({percent} %)" if saved >= 0 else f"{size_text(-saved)} larger ({percent} %)"
    return f"{size_text(bytes_in)} → {size_text(bytes_out)}, {change}"


def done_text(progress: Mapping[str, Any]) -> str:
    """``10 done``, with ``(4 reused)`` when some outputs already existed; servers before reuse send no count."""
    done, reused = progress["processed"], progress.get("reused") or 0
    return f"{done} done ({reused} reused)" if reused else f"{done} done"


def summary_lines(status: Mapping[str, Any]) -> list[str]:
    """A request's state in a few lines: counts, times, webhook, output CSV and the first failed images."""
    p = status["progress"]
    lines = [
        f"request   {status['request_id']}",
        f"status    {status['status']}",
        f"images    {p['total_images']} total: {done_text(p)}, {p['failed']} failed, {p['pending']} pending",
    ]
    if sizes := bytes_line(p):
        lines.append(f"bytes     {sizes}")
    if options := status.get("options"):
        shown = [f"{name} {value}" for name, value in options.items() if value is not None]
        lines.append(f"options   {', '.join(shown)}")
    created, finished = _when(status["created_at"]), _when(status.get("finished_at"))
    if created:
        lines.append(f"created   {_clock(created)}")
    if created and finished:
        lines.append(f"finished  {_clock(finished)} (took {(finished - created).total_seconds():.1f} s)")
    if status.get("webhook"):
        lines.append(f"webhook   {webhook_line(status['webhook'])}")
    if status.get("output_csv_url"):
        lines.append(f"output    {status['output_csv_url']}")
    errors = [
        f"  #{product['serial_number']} {product['product_name']}: {error}"
        for product in status.get("products", [])
        for error in product.get("errors", [])
    ]
    if p["failed"]:
        lines.append(f"errors    {_plural(p['failed'], 'failed image')}")
        lines += errors[:MAX_ERRORS_SHOWN]
        if p["failed"] > min(len(errors), MAX_ERRORS_SHOWN):
            more = p["failed"] - min(len(errors), MAX_ERRORS_SHOWN)
            lines.append(f"  ...and {more} more (`batchpress status {status['request_id']} --json` lists them)")
    return lines


LIST_HEADER = ("ID", "STATUS", "CREATED (UTC)", "DONE/FAILED/TOTAL", "SAVED")


def saved_text(progress: Mapping[str, Any]) -> str:
    """``9.3 MB (75 %)``; a minus sign where the outputs grew; ``-`` before any image is compressed."""
    bytes_in, bytes_out = progress.get("bytes_in") or 0, progress.get("bytes_out") or 0
    if bytes_in <= 0:
        return "-"
    saved = bytes_in - bytes_out
    sign = "-" if saved < 0 else ""
    return f"{sign}{size_text(abs(saved))} ({sign}{round(100 * abs(saved) / bytes_in)} %)"


def list_lines(requests: list[Mapping[str, Any]]) -> list[str]:
    """The list as a table, one request a line: id, status, created, images done/failed/total, bytes saved."""
    rows = [LIST_HEADER]
    for request in requests:
        p, created = request["progress"], _when(request["created_at"])
        rows.append(
            (
                str(request["request_id"]),
                str(request["status"]),
                f"{created:%Y-%m-%d %H:%M:%S}" if created else "",
                f"{p['processed']}/{p['failed']}/{p['total_images']}",
                saved_text(p),
            )
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(LIST_HEADER))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def cancel_line(summary: Mapping[str, Any]) -> str:
    """What a cancel did: cancelled at once, or cancelling until the images in flight have finished."""
    rid, p = summary["request_id"], summary["progress"]
    if summary["status"] in TERMINAL:
        done = f"{p['processed']} of {_plural(p['total_images'], 'image')} done"
        return f"cancelled {rid}: {done}, {p['failed']} failed or cancelled"
    in_flight = f"{_plural(p['pending'], 'image')} in flight {'finishes' if p['pending'] == 1 else 'finish'} first"
    return f"cancelling {rid}: {in_flight}, then it is cancelled (batchpress status {rid})"


def retry_line(summary: Mapping[str, Any]) -> str:
    rid, p = summary["request_id"], summary["progress"]
    return f"retrying {rid}: {_plural(p['pending'], 'failed image')} queued again (batchpress status {rid})"


def delete_question(status: Mapping[str, Any]) -> str:
    created = _when(status["created_at"])
    about = [status["status"], _plural(status["progress"]["total_images"], "image")]
    if created:
        about.append(f"created {_clock(created)}")
    return (
        f"Delete request {status['request_id']} ({', '.join(about)}) for good, "
        "with its output CSV and the images no other request lists?"
    )


class Reporter(Protocol):
    def update(self, progress: Mapping[str, int]) -> None: ...

    def close(self) -> None: ...


class RateColumn(ProgressColumn):
    """Images finished (done or failed) per second, from Rich's recent samples."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} img/s" if speed else "- img/s", style="progress.data.speed")


class LiveBar:
    """A Rich bar started from the first status read, so its first frame already shows the total and the count
    done (a request being retried or already half done is not a jump from 0 that would skew the rate)."""

    def __init__(self, console: Console, progress: Mapping[str, int]) -> None:
        self._progress = Progress(
            TextColumn("[bold]images"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=console,
            refresh_per_second=4,
        )
        self._task: TaskID = self._progress.add_task("images", **self._fields(progress))
        self._progress.start()

    @staticmethod
    def _fields(progress: Mapping[str, int]) -> dict[str, Any]:
        finished = progress["processed"] + progress["failed"]
        return {"total": progress["total_images"] or None, "completed": finished, "failed": progress["failed"]}

    def update(self, progress: Mapping[str, int]) -> None:
        self._progress.update(self._task, **self._fields(progress))

    def close(self) -> None:
        self._progress.stop()


class PlainLines:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._started = time.monotonic()
        self._printed_at = 0.0
        self._last: tuple[int, int, int] | None = None

    def update(self, progress: Mapping[str, int]) -> None:
        total, done, failed = progress["total_images"], progress["processed"], progress["failed"]
        now = time.monotonic()
        finished = done + failed
        if (total, done, failed) == self._last or (now - self._printed_at < PLAIN_LINE_SECONDS and finished < total):
            return
        self._last, self._printed_at = (total, done, failed), now
        elapsed = now - self._started
        rate = finished / elapsed if elapsed > 0 else 0.0
        reused = progress.get("reused") or 0
        counts = f"{done} done, {failed} failed" + (f"; {reused} reused" if reused else "")
        line = f"progress: {finished}/{total} images ({counts}), {rate:.1f} img/s"
        if finished >= total:
            line += f", finished in {elapsed:.1f} s"
        elif rate > 0:
            line += f", ETA {dt.timedelta(seconds=round((total - finished) / rate))}"
        self._console.print(line, highlight=False, soft_wrap=True)

    def close(self) -> None:
        pass


def follow(client: Client, request_id: str, console: Console) -> dict[str, Any]:
    """Poll the (cheap, one-product) status until the request finishes; return the full final status."""
    status = client.wait_status(request_id, limit=1)  # before the bar starts: its first frame has the total
    reporter: Reporter = LiveBar(console, status["progress"]) if console.is_interactive else PlainLines(console)
    try:
        while True:
            reporter.update(status["progress"])
            if status["status"] in TERMINAL:
                break
            time.sleep(POLL_SECONDS)
            status = client.wait_status(request_id, limit=1)
    finally:
        reporter.close()
    return client.wait_status(request_id)
