"""The page at ``/`` in a real headless Chromium, against the real service, worker and photos served on 127.0.0.1."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import StartService, fresh_database
from tests.support.photos import make_image
from tests.support.servers import ImageServer, Service

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "no /usr/bin/chromium (apt-get install chromium; .ci/run does); the page tests need a real browser",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (uv sync installs it)")
expect = sync_api.expect

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HEADER = "S. No.,Product Name,Input Image Urls\n"
SLOW = 60_000


@dataclass
class Tab:
    page: Any
    base_url: str
    console_errors: list[str] = field(default_factory=list)

    def open(self, path: str = "/") -> None:
        self.page.goto(self.base_url + path)
        expect(self.page.get_by_role("heading", name="Upload a CSV")).to_be_visible()

    def upload(self, csv_path: Path) -> None:
        self.page.set_input_files("#csv-file", str(csv_path))
        self.page.get_by_role("button", name="Upload").click()

    def unexpected_errors(self, *allowed_statuses: int) -> list[str]:
        """Console errors and uncaught exceptions, less the browser's own note about an expected error answer."""
        expected = [f"status of {code} " for code in allowed_statuses]
        return [
            e
            for e in self.console_errors
            if not (e.startswith("Failed to load resource") and any(s in e for s in expected))
        ]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service with its worker for the module's tests that need no special settings (starting one takes seconds)."""
    with fresh_database() as url:
        env = {"BATCHPRESS_DATABASE_URL": url} if url else {}
        started = Service(tmp_path_factory.mktemp("web") / "data", env).start()
        yield started
        started.stop()


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    made = Tab(page, "")
    page.on("console", lambda msg: msg.type == "error" and made.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: made.console_errors.append(f"uncaught: {exc}"))
    yield made
    context.close()


def write_csv(tmp_path: Path, name: str, rows: list[tuple[int, str, list[str]]]) -> Path:
    lines = [f'{serial},{product},"{", ".join(urls)}"\n' for serial, product, urls in rows]
    path = tmp_path / name
    path.write_text(HEADER + "".join(lines))
    return path


def photo_urls(image_server: ImageServer, *kinds: str) -> list[str]:
    prefix = f"/web/{uuid.uuid4().hex[:8]}"
    return [image_server.add(f"{prefix}/{i}.{kind}", make_image(kind, i)) for i, kind in enumerate(kinds)]


def current_request_id(page: Any) -> str:
    return str(page.locator("#request-id").inner_text())


def assert_loaded(page: Any, images: Any) -> None:
    for i in range(images.count()):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())


SIZES = r"([\d.]+) (bytes|kB|MB) → ([\d.]+) (bytes|kB|MB)"
# An image's sizes and its change in size, as "1.5 MB → 320.5 kB (-78 %)" with U+2212 for the minus sign.
IMAGE_SIZES = re.compile(rf"^{SIZES} \(([\u2212+±])(\d+) %\)$")
SCALES = {"bytes": 1, "kB": 1e3, "MB": 1e6}


def near(amount: str, unit: str, size: int) -> bool:
    """Whether a size shown rounded to a tenth of its unit is ``size``."""
    return abs(float(amount) * SCALES[unit] - size) <= 0.05 * SCALES[unit] + 1


def percent_of(shown: str, part: int, whole: int) -> bool:
    """Whether a whole percentage shown is ``part`` of ``whole``, rounded either way at a half."""
    return abs(int(shown) - 100 * part / whole) <= 0.5 + 1e-9


def assert_sizes_shown(page: Any, status: dict[str, Any]) -> None:
    """Every compressed image shows its size before and after, as the status has them: rounded in the text,
    exact on hover; the request's sizes and saving are in the counts."""
    for product in status["products"]:
        sizes = page.locator(f"#product-rows tr[data-serial='{product['serial_number']}'] .pair .sizes")
        both = zip(product["input_image_bytes"], product["output_image_bytes"], strict=True)
        pairs = [(size_in, size_out) for size_in, size_out in both if size_out is not None]
        expect(sizes).to_have_count(len(pairs))
        for k, (size_in, size_out) in enumerate(pairs):
            assert sizes.nth(k).get_attribute("title") == f"{size_in:,} bytes → {size_out:,} bytes"
            shown = IMAGE_SIZES.match(sizes.nth(k).inner_text())
            assert shown, sizes.nth(k).inner_text()
            assert near(shown[1], shown[2], size_in)
            assert near(shown[3], shown[4], size_out)
            sign = "±" if shown[6] == "0" else "\u2212" if size_out < size_in else "+"
            assert shown[5] == sign
            assert percent_of(shown[6], abs(size_out - size_in), size_in)
    progress = status["progress"]
    request_sizes = re.fullmatch(SIZES, page.locator("#count-sizes").inner_text())
    assert request_sizes, page.locator("#count-sizes").inner_text()
    assert near(request_sizes[1], request_sizes[2], progress["bytes_in"])
    assert near(request_sizes[3], request_sizes[4], progress["bytes_out"])
    saved = re.fullmatch(r"[\d.]+ (?:bytes|kB|MB) \((\d+) %\)", page.locator("#count-saved").inner_text())
    assert saved, page.locator("#count-saved").inner_text()
    assert percent_of(saved[1], progress["bytes_saved"], progress["bytes_in"])


def test_upload_progress_thumbnails_csv_and_recent(
    service: Service, image_server: ImageServer, tab: Tab, tmp_path: Path
) -> None:
    tab.base_url = service.base_url
    page = tab.page
    jpeg, png, webp = photo_urls(image_server, "jpeg", "png", "webp")
    hostile_name = "Boot <img src=x onerror=alert(1)>"
    good = write_csv(tmp_path, "good.csv", [(1, "Shoe", [jpeg, png]), (2, "Sock", [webp]), (3, hostile_name, [jpeg])])

    tab.open()
    tab.upload(good)
    expect(page.locator("#status-value")).to_have_text("completed", timeout=SLOW)
    first_id = current_request_id(page)
    for name, count in {"processed": "4", "reused": "1", "failed": "0", "pending": "0", "total": "4"}.items():
        expect(page.locator(f"#count-{name}")).to_have_text(count)
    expect(page.locator("#progress-text")).to_have_text("completed: 4 of 4 images processed (1 reused).")
    assert page.locator("#progress-text").get_attribute("aria-live") == "polite"
    assert page.eval_on_selector("#progress", "p => [p.value, p.max]") == [4, 4]

    rows = page.locator("#product-rows tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0).locator("th")).to_have_text("Shoe")
    # A product name is shown as text, never run as markup.
    expect(rows.nth(2).locator("th")).to_have_text(hostile_name)
    expect(page.locator("img[src='x']")).to_have_count(0)
    # The last product's photo is the first's: it says it took that output, and why; the others say nothing.
    expect(page.locator("#product-rows .reused")).to_have_count(1)
    expect(rows.nth(2).locator(".pair .reused")).to_have_text("reused: same source in this request")
    assert_loaded(page, page.locator("img[alt$='compressed']"))
    assert_loaded(page, page.locator("img[alt$='original']"))
    expect(page.locator("img[alt$='compressed']")).to_have_count(4)
    out_src = page.locator("img[alt='Shoe, image 1, compressed']").get_attribute("src")
    # The 72 px thumbnail is the output's small WebP preview; its link, and the output CSV, give the output itself.
    assert out_src.startswith(f"{service.base_url}/images/p/")
    assert out_src.endswith(".webp")
    out_href = page.locator("a:has(img[alt='Shoe, image 1, compressed'])").get_attribute("href")
    assert out_href.startswith(f"{service.base_url}/images/c/")  # outputs are stored by content
    assert_sizes_shown(page, httpx.get(f"{service.base_url}/api/status/{first_id}/", timeout=10).json())

    link = page.get_by_role("link", name="Download the output CSV")
    href = link.get_attribute("href")
    assert href == f"{service.base_url}/api/requests/{first_id}/output.csv"
    with page.expect_download() as download:
        link.click()
    text = Path(download.value.path()).read_bytes().decode("utf-8-sig")
    assert text.startswith(
        "S. No.,Product Name,Input Image Urls,Output Image Urls,Input Image Bytes,Output Image Bytes,Reused\r\n"
    )
    assert out_href in text
    assert httpx.get(href, timeout=10).status_code == 200
    page.screenshot(path=str(tmp_path / "completed.png"), full_page=True)

    # One image is not an image at all: its product lists the error and shows no compressed version.
    broken = image_server.add(f"/web/{uuid.uuid4().hex[:8]}/broken.jpg", b"this is not a picture", "image/jpeg")
    mixed = write_csv(tmp_path, "mixed.csv", [(7, "Hat", [webp, broken])])
    page.select_option("#effort", "fast")
    tab.upload(mixed)
    expect(page.locator("#status-value")).to_have_text("completed with errors", timeout=SLOW)
    second_id = current_request_id(page)
    assert second_id != first_id
    efforts = [
        httpx.get(f"{service.base_url}/api/status/{i}/", timeout=10).json()["options"]["effort"]
        for i in (first_id, second_id)
    ]
    assert efforts == ["max", "fast"]  # left alone it is the default; chosen, it is sent
    expect(page.locator("#count-failed")).to_have_text("1")
    # Another effort is another output: nothing of the first request is reused.
    expect(page.locator("#count-reused")).to_have_text("0")
    expect(page.locator("#product-rows .reused")).to_have_count(0)
    row = page.locator("#product-rows tr")
    expect(row).to_have_count(1)
    expect(row.locator(".errors li")).to_contain_text(f"image 2 ({broken})")
    expect(row.locator(".slot.failed")).to_have_count(1)
    # Only the compressed image has sizes to show.
    expect(row.locator(".sizes")).to_have_count(1)
    page.screenshot(path=str(tmp_path / "with_errors.png"), full_page=True)

    page.reload()
    recent = page.locator("#recent-list li")
    expect(recent).to_have_count(2)
    expect(recent.nth(0)).to_contain_text("mixed.csv")
    expect(recent.nth(1)).to_contain_text("good.csv")
    expect(recent.nth(1)).to_contain_text("completed")
    recent.nth(1).get_by_role("link").click()
    expect(page.locator("#request-id")).to_have_text(first_id)
    expect(page.locator("#status-value")).to_have_text("completed")
    expect(page.locator("#count-total")).to_have_text("4")
    expect(page.locator("#count-saved")).to_contain_text("%")
    assert "saved" in page.locator("#product-rows tr").first.inner_text()
    assert tab.unexpected_errors() == []


def test_invalid_csv_lists_each_problem_with_its_line(service: Service, tab: Tab, tmp_path: Path) -> None:
    tab.base_url = service.base_url
    page = tab.page
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "abc,Shoe,https://cdn.example.com/a.jpg\n2,  ,https://cdn.example.com/b.jpg\n")

    tab.open()
    tab.upload(path)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The upload was not accepted")
    expect(alert).to_contain_text("2 problems")
    problems = page.locator("#csv-problems tbody tr")
    expect(problems).to_have_count(2)
    expect(problems.nth(0).locator("td").nth(0)).to_have_text("2")
    expect(problems.nth(0).locator("td").nth(1)).to_have_text("S. No.")
    expect(problems.nth(1).locator("td").nth(0)).to_have_text("3")
    expect(problems.nth(1).locator("td").nth(1)).to_have_text("Product Name")
    expect(page.locator("#request-section")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "invalid.png"), full_page=True)
    assert tab.unexpected_errors(400) == []


def test_a_401_asks_for_a_key_and_the_upload_goes_through_with_it(
    start_service: StartService, image_server: ImageServer, tab: Tab, tmp_path: Path
) -> None:
    service = start_service("--no-worker", BATCHPRESS_API_KEYS="page-test-key")
    tab.base_url = service.base_url
    page = tab.page
    path = write_csv(tmp_path, "p.csv", [(1, "Shoe", photo_urls(image_server, "jpeg"))])

    tab.open()
    # The list says it needs a key, without opening the key form before anything was asked.
    expect(page.locator("#requests-message")).to_have_text("This server needs an API key to list requests.")
    expect(page.get_by_role("button", name="Enter an API key")).to_be_visible()
    expect(page.locator("#api-key-section")).to_be_hidden()
    tab.upload(path)
    expect(page.get_by_role("alert")).to_contain_text("An API key is needed")
    key = page.get_by_role("textbox", name="API key")
    expect(key).to_be_focused()
    key.fill("page-test-key")
    page.get_by_role("button", name="Save key").click()
    # The upload that was refused runs again with the key, then the status is polled with it.
    expect(page.locator("#status-value")).to_have_text("pending")
    expect(page.locator("#recent-list li")).to_have_count(1)
    assert page.evaluate("localStorage.getItem('batchpress.apiKey')") == "page-test-key"
    # With the key, the list shows the key's requests, and a pending one can be cancelled from it.
    row = page.locator("#requests-list > li")
    expect(row).to_have_count(1)
    expect(page.locator("#requests-message")).to_have_text("")
    row.get_by_role("button", name="Cancel").click()
    expect(row.locator(".badge")).to_have_text("cancelled")
    expect(page.locator("#status-value")).to_have_text("cancelled")
    assert tab.unexpected_errors(401) == []


def request_row(page: Any, request_id: str) -> Any:
    return page.locator(f"#requests-list li[data-id='{request_id}']")


def test_requests_list_cancel_retry_and_delete_at_360_px(
    service: Service, image_server: ImageServer, tab: Tab, tmp_path: Path
) -> None:
    """The server's requests, a page at a time and by status; a request cancelled while open, one retried once its
    missing image is there, and one deleted after the page asked (no, then yes), all on a phone-wide page."""
    tab.base_url = service.base_url
    page = tab.page
    page.set_viewport_size({"width": 360, "height": 800})
    tag = uuid.uuid4().hex[:8]
    # More than a page of older requests (their one image answers 404, so they finish at once).
    for n in range(21):
        service.upload(f"{HEADER}{n + 1},Filler,{image_server.url(f'/web/{tag}/gone-{n}.jpg')}\n").raise_for_status()
    # Finished with a failed image: its second image is not there yet.
    good = image_server.add(f"/web/{tag}/good.jpg", make_image("jpeg", 3))
    late = f"/web/{tag}/late.jpg"
    to_retry = service.upload(f'{HEADER}1,Lamp,"{good},{image_server.url(late)}"\n').json()["request_id"]
    assert service.wait_until(to_retry)["status"] == "completed_with_errors"
    # Open while the page looks at it: its images come from a slow origin.
    slow = [image_server.add(f"/web/{tag}/slow-{n}.jpg", make_image("jpeg", n), delay=6) for n in range(2)]
    to_cancel = service.upload(f'{HEADER}1,Vase,"{slow[0]},{slow[1]}"\n').json()["request_id"]
    total = len(httpx.get(f"{service.base_url}/api/requests/", params={"limit": 100}, timeout=10).json()["requests"])
    assert total > 21

    tab.open()
    rows = page.locator("#requests-list > li")
    expect(rows).to_have_count(20)
    assert rows.nth(0).get_attribute("data-id") == to_cancel  # newest first
    assert rows.nth(1).get_attribute("data-id") == to_retry
    page.get_by_role("button", name="More").click()
    expect(rows).to_have_count(min(total, 40))
    if total <= 40:
        expect(page.get_by_role("button", name="More")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    retried = request_row(page, to_retry)
    expect(retried.locator(".badge")).to_have_text("completed with errors")
    expect(retried).to_contain_text("1 of 2 images done, 1 failed")
    expect(retried.get_by_role("button", name="Cancel")).to_have_count(0)

    # Cancel: at once, or once the images in flight are in; either way the row follows it to "cancelled".
    cancelled = request_row(page, to_cancel)
    expect(cancelled.get_by_role("button", name="Retry")).to_have_count(0)
    expect(cancelled.get_by_role("button", name="Delete")).to_have_count(0)
    cancelled.get_by_role("button", name="Cancel").click()
    expect(cancelled).to_contain_text(re.compile(r"Cancelling: images in flight finish first\.|cancelled"))
    expect(cancelled.locator(".badge")).to_have_text("cancelled", timeout=SLOW)
    expect(cancelled.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(cancelled.get_by_role("button", name="Delete")).to_be_visible()
    # Shown, it is a finished request like the others.
    cancelled.get_by_role("link").click()
    expect(page.locator("#request-id")).to_have_text(to_cancel)
    expect(page.locator("#status-value")).to_have_text("cancelled")
    expect(page.locator("#status-value")).to_have_class(re.compile(r"\bstatus-cancelled\b"))

    # The status filter asks the server for that status only.
    for status, first in (("cancelled", to_cancel), ("completed_with_errors", to_retry)):
        page.select_option("#requests-filter", status)
        expect(page.locator(f"#requests-list > li:not([data-status='{status}'])")).to_have_count(0)
        expect(rows.first).to_have_attribute("data-id", first)

    # Retry, now that the missing image is there: the row follows it to "completed".
    image_server.add(late, make_image("jpeg", 4))
    retried.get_by_role("button", name="Retry").click()
    expect(retried.locator(".badge")).to_have_text("completed", timeout=SLOW)
    expect(retried).to_contain_text("2 of 2 images done")
    expect(retried.get_by_role("button", name="Retry")).to_have_count(0)
    assert httpx.get(f"{service.base_url}/api/status/{to_retry}/", timeout=10).json()["status"] == "completed"
    retried.get_by_role("link").click()
    expect(page.locator("#status-value")).to_have_text("completed")
    page.select_option("#requests-filter", "")
    expect(rows).to_have_count(20)
    expect(cancelled.locator(".badge")).to_have_text("cancelled")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.locator("#requests-section").screenshot(path=str(tmp_path / "requests_360.png"))
    page.screenshot(path=str(tmp_path / "requests_360_page.png"), full_page=True)

    # Delete asks first: no keeps it, yes deletes it and clears the view that showed it.
    asked: list[str] = []

    def answer(accept: bool) -> Any:
        def handle(dialog: Any) -> None:
            asked.append(f"{dialog.type}: {dialog.message}")
            if accept:
                dialog.accept()
            else:
                dialog.dismiss()

        return handle

    page.once("dialog", answer(False))
    retried.get_by_role("button", name="Delete").click()
    expect(retried).to_be_visible()
    assert asked[0].startswith(f"confirm: Delete request {to_retry}?")
    page.once("dialog", answer(True))
    retried.get_by_role("button", name="Delete").click()
    expect(retried).to_have_count(0)
    expect(page.locator("#request-section")).to_be_hidden()
    assert len(asked) == 2
    assert page.evaluate("location.hash") == ""
    assert httpx.get(f"{service.base_url}/api/status/{to_retry}/", timeout=10).status_code == 404
    assert tab.unexpected_errors() == []


# Every box and every line of text in the product table, as [what, left, right] where it leaves [0, innerWidth].
OUTSIDE_VIEWPORT = """() => {
  const width = window.innerWidth;
  const outside = [];
  const check = (what, rect) => {
    if (rect.width && (rect.left < -0.5 || rect.right > width + 0.5)) outside.push([what, rect.left, rect.right]);
  };
  const table = document.getElementById("products");
  for (const box of table.querySelectorAll("caption, tbody *")) check(box.tagName, box.getBoundingClientRect());
  const walker = document.createTreeWalker(table.querySelector("tbody"), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const rect of range.getClientRects()) check(node.data.slice(0, 40), rect);
  }
  return outside;
}"""

# The words of a cell's text that are split over two lines, and how many lines the text takes.
SPLIT_WORDS = """cell => {
  const text = cell.firstChild;
  const split = [];
  const lines = new Set();
  for (const word of text.data.matchAll(/\\S+/g)) {
    const range = document.createRange();
    range.setStart(text, word.index);
    range.setEnd(text, word.index + word[0].length);
    const tops = new Set([...range.getClientRects()].map((rect) => Math.round(rect.top)));
    if (tops.size > 1) split.push(word[0]);
    tops.forEach((top) => lines.add(top));
  }
  return { split, lines: lines.size };
}"""


def test_product_table_fits_a_phone_and_a_desktop(
    service: Service, image_server: ImageServer, tab: Tab, tmp_path: Path
) -> None:
    """A finished batch with long product names and failed images whose errors carry long URLs: at 360 px no
    horizontal scroll, every column's content inside the viewport, names broken only between words; at 1280 px
    the table keeps its four columns side by side."""
    tab.base_url = service.base_url
    page = tab.page
    tag = uuid.uuid4().hex[:8]
    jpeg, png, webp = photo_urls(image_server, "jpeg", "png", "webp")
    gone = image_server.url(f"/web/{tag}/{'averylongpathsegmentwithoutanybreaks' * 3}/missing-photo.jpg")
    broken = image_server.add(f"/web/{tag}/{'notapicture' * 8}.jpg", b"this is not a picture", "image/jpeg")
    long_name = "Organic Cotton Crew Neck Shirt With Reinforced Shoulder Seams And Tagless Comfort Label"
    other_name = "Stainless Steel Insulated Water Bottle For Outdoor Adventures"
    path = write_csv(
        tmp_path,
        "phone.csv",
        [(1, long_name, [jpeg, gone]), (2, other_name, [png, broken]), (3, "Sock", [webp])],
    )

    tab.open()
    tab.upload(path)
    expect(page.locator("#status-value")).to_have_text("completed with errors", timeout=SLOW)
    rows = page.locator("#product-rows tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0).locator(".errors li")).to_contain_text(gone)
    expect(rows.nth(1).locator(".errors li")).to_contain_text(broken)
    name = rows.nth(0).locator("th.name")
    style = name.evaluate("c => [getComputedStyle(c).wordBreak, getComputedStyle(c).overflowWrap]")
    assert style[0] != "break-all", style
    assert style[1] != "anywhere", style

    lines = {}
    for width, height in ((360, 740), (1280, 800)):
        page.set_viewport_size({"width": width, "height": height})
        assert page.evaluate("window.innerWidth") == width
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.evaluate(OUTSIDE_VIEWPORT) == []
        for k in range(3):
            for cell in ("th.name", "td:nth-child(3)", "td:nth-child(4)"):
                expect(rows.nth(k).locator(cell)).to_be_visible()
        for k in range(2):
            expect(rows.nth(k).locator(".errors li")).to_be_visible()
            shown = rows.nth(k).locator("th.name").evaluate(SPLIT_WORDS)
            assert shown["split"] == [], shown
            lines[(width, k)] = shown["lines"]
        assert_loaded(page, page.locator("#products img"))
        page.locator("#request-section").screenshot(path=str(tmp_path / f"products_{width}.png"))
        page.screenshot(path=str(tmp_path / f"products_{width}_page.png"), full_page=True)

    # The checks above looked at names that do wrap on a phone.
    assert lines[(360, 0)] > 2, lines

    # At 360 px each product is a card, one part under the other; at 1280 px a row, its columns side by side.
    def boxes() -> list[dict[str, float]]:
        return [rows.nth(0).locator(cell).bounding_box() for cell in ("th", "td:nth-child(3)", "td:nth-child(4)")]

    name_box, images_box, errors_box = boxes()
    assert abs(name_box["y"] - images_box["y"]) < 1
    assert abs(images_box["y"] - errors_box["y"]) < 1
    assert name_box["x"] < images_box["x"] < errors_box["x"]
    page.set_viewport_size({"width": 360, "height": 740})
    name_box, images_box, errors_box = boxes()
    assert name_box["y"] < images_box["y"] < errors_box["y"]
    assert tab.unexpected_errors(404) == []


def natural_size(url: str) -> tuple[int, int]:
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(httpx.get(url, timeout=10).content)) as im:
        return im.size


def test_before_and_after_comparison_at_full_resolution(
    service: Service, image_server: ImageServer, tab: Tab, tmp_path: Path
) -> None:
    """A click on a thumbnail opens the image's source and output at full size, side by side (stacked on a phone),
    zoomed together, each with its dimensions, format and size, and the saving; a failed image shows its source and
    its error; Escape closes it and the focus goes back to the thumbnail."""
    tab.base_url = service.base_url
    page = tab.page
    tag = uuid.uuid4().hex[:8]
    big = image_server.add(f"/web/{tag}/big.jpeg", make_image("jpeg", 5, size=(1200, 800)))
    broken = image_server.add(f"/web/{tag}/broken.jpg", b"this is not a picture", "image/jpeg")
    path = write_csv(tmp_path, "compare.csv", [(1, "Lamp <b>", [big, broken])])

    tab.open()
    page.fill("#max-dimension", "800")  # a smaller output, so the two panes really differ in size
    tab.upload(path)
    expect(page.locator("#status-value")).to_have_text("completed with errors", timeout=SLOW)
    status = httpx.get(f"{service.base_url}/api/status/{current_request_id(page)}/", timeout=10).json()
    product = status["products"][0]
    out_url = product["output_image_urls"][0]
    size_in, size_out = product["input_image_bytes"][0], product["output_image_bytes"][0]
    real_in, real_out = natural_size(big), natural_size(out_url)
    assert real_in == (1200, 800)
    assert max(real_out) == 800

    after = page.locator("img[alt='Lamp <b>, image 1, compressed']")
    assert_loaded(page, after)
    after.click()
    dialog = page.get_by_role("dialog", name=re.compile("Before and after"))
    expect(dialog).to_be_visible()
    expect(dialog.locator("#compare-title")).to_have_text("Lamp <b>")
    expect(page.get_by_role("button", name="Close")).to_be_focused()
    images = dialog.locator(".pane img")
    expect(images).to_have_count(2)
    assert_loaded(page, images)
    before_img, after_img = images.nth(0), images.nth(1)
    assert before_img.get_attribute("src") == big
    assert after_img.get_attribute("src") == out_url
    assert before_img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == list(real_in)
    assert after_img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == list(real_out)

    before_pane, after_pane = dialog.locator(".pane.before"), dialog.locator(".pane.after")
    expect(before_pane.locator(".dims")).to_have_text(f"{real_in[0]} \u00d7 {real_in[1]} px")
    expect(after_pane.locator(".dims")).to_have_text(f"{real_out[0]} \u00d7 {real_out[1]} px")
    expect(before_pane.locator(".format")).to_have_text("JPEG")
    expect(after_pane.locator(".format")).to_have_text(
        {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WebP"}[out_url.rsplit(".", 1)[1]]
    )
    for pane, size in ((before_pane, size_in), (after_pane, size_out)):
        bytes_shown = pane.locator(".bytes")
        assert bytes_shown.get_attribute("title") == f"{size:,} bytes"
        shown = re.fullmatch(r"([\d.]+) (bytes|kB|MB)", bytes_shown.inner_text())
        assert shown, bytes_shown.inner_text()
        assert near(shown[1], shown[2], size)
    assert size_out < size_in
    saving = re.fullmatch(r"([\d.]+) (bytes|kB|MB) \((\d+) %\)", after_pane.locator(".saving").inner_text())
    assert saving, after_pane.locator(".saving").inner_text()
    assert near(saving[1], saving[2], size_in - size_out)
    assert percent_of(saving[3], size_in - size_out, size_in)

    # Side by side at 1280 px.
    box_in, box_out = before_pane.bounding_box(), after_pane.bounding_box()
    assert abs(box_in["y"] - box_out["y"]) < 1
    assert box_in["x"] + box_in["width"] <= box_out["x"]

    def widths() -> list[float]:
        return [images.nth(k).bounding_box()["width"] for k in range(2)]

    fit = widths()
    assert fit[0] < real_in[0]  # fitted into its pane
    page.get_by_role("button", name="100 %").click()
    expect(page.get_by_role("button", name="100 %")).to_have_attribute("aria-pressed", "true")
    assert widths() == [real_in[0], real_out[0]]
    page.get_by_role("button", name="200 %").click()
    assert widths() == [2 * real_in[0], 2 * real_out[0]]
    # Zoomed in, scrolling one pane scrolls the other with it.
    dialog.locator(".pane.before .pane-scroll").evaluate("p => { p.scrollLeft = p.scrollWidth; }")
    page.wait_for_function("() => document.querySelector('.pane.after .pane-scroll').scrollLeft > 0")
    page.get_by_role("button", name="Fit").click()
    assert widths() == fit
    page.screenshot(path=str(tmp_path / "compare_1280.png"))

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("a:has(img[alt='Lamp <b>, image 1, compressed'])")).to_be_focused()

    # On a phone the panes are stacked and nothing scrolls sideways.
    page.set_viewport_size({"width": 360, "height": 740})
    after.click()
    expect(dialog).to_be_visible()
    assert_loaded(page, images)
    box_in, box_out = before_pane.bounding_box(), after_pane.bounding_box()
    assert box_in["y"] + box_in["height"] <= box_out["y"]
    assert box_out["x"] >= 0
    assert box_out["x"] + box_out["width"] <= 360
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert dialog.evaluate("d => d.scrollWidth <= d.clientWidth")
    dialog.evaluate("d => { d.scrollTop = 0; }")  # assert_loaded scrolled the images into view
    page.screenshot(path=str(tmp_path / "compare_360.png"))
    page.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    page.set_viewport_size({"width": 1280, "height": 900})

    # The failed image (not a picture, so its thumbnail says "no preview"): its source only, with its error.
    original = page.locator("#product-rows .pair").nth(1).locator("a.thumb")
    expect(original).to_have_text("no preview")
    original.click()
    expect(dialog).to_be_visible()
    expect(dialog.locator(".pane")).to_have_count(1)
    expect(dialog.locator(".pane.before")).to_contain_text("The image could not be loaded.")
    expect(dialog.locator(".pane.before a")).to_have_attribute("href", broken)
    expect(dialog.locator(".compare-error")).to_contain_text(f"image 2 ({broken})")
    expect(dialog.locator("#compare-which")).to_have_text("image 2 of 2")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert tab.unexpected_errors(404) == []


CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
# Every thumbnail of the product table: its alt text, the src it loaded and the href of its link.
THUMBNAILS = """() => [...document.querySelectorAll("#product-rows img")].map(
  (img) => [img.alt, img.getAttribute("src"), img.closest("a").getAttribute("href")]
)"""


def test_previews_keep_a_40_image_batch_under_1_mb(
    service: Service, image_server: ImageServer, tab: Tab, tmp_path: Path
) -> None:
    """20 products of 2 photos each at 1600 px (tens of MB as uploaded): the table's 80 thumbnails are the server's
    WebP previews, all of them together under 1 MB, each downloaded once; no original is fetched for a thumbnail,
    not even while its image is pending; links still give the full images; a refresh of the finished request
    leaves the loaded thumbnails alone and downloads nothing."""
    tab.base_url = service.base_url
    page = tab.page
    prefix = f"/web/{uuid.uuid4().hex[:8]}"
    kinds = ("jpeg", "png", "webp")
    originals: dict[str, int] = {}
    rows = []
    for serial in range(1, 21):
        urls = []
        for k in range(2):
            n = 2 * (serial - 1) + k
            kind = kinds[n % len(kinds)]
            # A width of its own: no two photos are the same content, so nothing is reused and every preview differs.
            body = make_image(kind, n, size=(1600 + 8 * n, 1200))
            urls.append(image_server.add(f"{prefix}/{n}.{kind}", body, CONTENT_TYPES[kind]))
            originals[urls[-1]] = len(body)
        rows.append((serial, f"Product {serial}", urls))
    path = write_csv(tmp_path, "forty.csv", rows)

    # Every image the page asks for, from the upload on: the thumbnails shown while the batch runs count too.
    requested: list[Any] = []
    failed: list[str] = []
    page.on("requestfinished", lambda r: r.resource_type == "image" and requested.append(r))
    page.on("requestfailed", lambda r: r.resource_type == "image" and failed.append(f"{r.url}: {r.failure}"))

    tab.open()
    page.select_option("#effort", "fast")  # the outputs' effort changes nothing here but the wait
    tab.upload(path)
    expect(page.locator("#status-value")).to_have_text("completed", timeout=3 * SLOW)
    request_id = current_request_id(page)
    status = httpx.get(f"{service.base_url}/api/status/{request_id}/", timeout=10).json()
    for product in status["products"]:
        excerpt = {k: v for k, v in product.items() if "url" in k}
        for which in ("input_preview_urls", "output_preview_urls"):
            previews = product.get(which) or [None]
            assert None not in previews, f"{which} missing or null: {excerpt}"
            assert all(p.startswith(f"{service.base_url}/images/p/") and p.endswith(".webp") for p in previews), excerpt

    thumbs = page.locator("#product-rows img")
    expect(thumbs).to_have_count(80)
    assert_loaded(page, thumbs)
    expected = []
    for product in status["products"]:
        name = product["product_name"]
        for i, (url_in, url_out) in enumerate(
            zip(product["input_image_urls"], product["output_image_urls"], strict=True)
        ):
            expected.append([f"{name}, image {i + 1}, original", product["input_preview_urls"][i], url_in])
            expected.append([f"{name}, image {i + 1}, compressed", product["output_preview_urls"][i], url_out])
    shown = page.evaluate(THUMBNAILS)
    assert sorted(shown) == sorted(expected)
    assert all(href.startswith(f"{service.base_url}/images/c/") for alt, _, href in shown if alt.endswith("compressed"))

    assert failed == []
    downloads = [(r.url, r.sizes()["responseBodySize"]) for r in requested]
    urls = [url for url, size in downloads if size > 0]
    preview_bytes = sum(size for _, size in downloads)
    originals_bytes = sum(originals.values())
    outputs_bytes = status["progress"]["bytes_out"]
    print(
        f"\n40 images: originals {originals_bytes:,} bytes, outputs {outputs_bytes:,} bytes; the page downloaded"
        f" {preview_bytes:,} bytes of images in {len(downloads)} requests ({len(set(urls))} distinct URLs)"
    )
    # Previews only (never an original, not even for a pending image), each once whatever the polls rebuilt.
    assert [url for url, _ in downloads if not url.startswith(f"{service.base_url}/images/p/")] == []
    assert sorted(urls) == sorted({src for _, src, _ in expected})
    assert originals_bytes > 20_000_000
    assert preview_bytes < 1_000_000

    # The page stops polling a finished request; clicking it in the recent list asks for its status again. The
    # same answer leaves the rows, and the images they loaded, as they were.
    page.evaluate("() => { window.loadedThumbs = [...document.querySelectorAll('#product-rows img')]; }")
    count = len(requested)
    recent = page.locator(f"#recent-list a[href='#request={request_id}']")
    for _ in range(2):
        with page.expect_response(lambda r: f"/api/status/{request_id}/" in r.url) as polled:
            recent.click()
        assert polled.value.ok
    page.wait_for_timeout(500)  # the answer is rendered in the moment after it arrives
    expect(page.locator("#status-value")).to_have_text("completed")
    assert page.evaluate(
        "() => [...document.querySelectorAll('#product-rows img')].every((img, i) => img === window.loadedThumbs[i])"
    )
    assert page.evaluate("() => document.querySelectorAll('#product-rows img').length") == 80
    assert len(requested) == count, [r.url for r in requested[count:]]

    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(tmp_path / "previews_1280.png"), full_page=True)
    # On a phone the same previews, no sideways scroll; the thumbnails are laid out again, not downloaded again.
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(tmp_path / "previews_360.png"), full_page=True)
    assert len(requested) == count
    assert tab.unexpected_errors() == []
