"""download() against a real origin on 127.0.0.1 that misbehaves on purpose: internal addresses, redirects,
oversized and trickling bodies, dropped connections, errors, and too many downloads at once."""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from batchpress.config import Settings
from batchpress.processing import download as download_module
from batchpress.processing.download import DownloadClient, DownloadFailed, download, make_client

IMAGE = b"\xff\xd8\xff\xe0" + b"jpeg" * 1000
CAP = 1024 * 1024
HUGE = 1024 * 1024 * 1024


class Origin:
    """An image host on 127.0.0.1 whose paths each misbehave in one way; counts connections and bytes sent."""

    def __init__(self) -> None:
        self.connections = 0
        self.hits: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.active = 0
        self.most_active = 0
        self._lock = threading.Lock()
        origin = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                with origin._lock:
                    origin.connections += 1
                return True

            def handle_error(self, request: Any, client_address: Any) -> None:
                if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is no news here
                    super().handle_error(request, client_address)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                with origin._lock:
                    origin.hits[path] = hits = origin.hits.get(path, 0) + 1
                getattr(self, "route_" + path.strip("/").replace("-", "_"), self.route_missing)(hits)

            def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(body)

            def route_missing(self, hits: int) -> None:
                self.reply(404, b"not found")

            def route_image(self, hits: int) -> None:
                self.reply(200, IMAGE, Content_Type="image/jpeg")

            def route_redirect(self, hits: int) -> None:
                self.reply(302, Location=self.path.split("?", 1)[1])

            def route_loop(self, hits: int) -> None:
                self.reply(302, Location="loop")

            def route_big(self, hits: int) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(HUGE))
                self.end_headers()
                self.stream_forever("/big")

            def route_big_unsized(self, hits: int) -> None:
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.stream_forever("/big-unsized")

            def stream_forever(self, path: str) -> None:
                chunk = b"\0" * 65536
                try:
                    while True:
                        self.wfile.write(chunk)
                        with origin._lock:
                            origin.sent[path] = origin.sent.get(path, 0) + len(chunk)
                except OSError:
                    self.close_connection = True

            def route_trickle(self, hits: int) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.trickle(b"x" * 1000)

            def route_trickle_headers(self, hits: int) -> None:
                self.trickle(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"y" * 1000)

            def trickle(self, data: bytes) -> None:
                try:
                    for byte in data:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.1)
                except OSError:
                    pass
                self.close_connection = True

            def route_drop(self, hits: int) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"x" * 100)
                self.wfile.flush()
                self.close_connection = True

            def route_flaky(self, hits: int) -> None:
                if hits == 1:
                    self.reply(500, b"try again")
                else:
                    self.reply(200, IMAGE)

            def route_slow(self, hits: int) -> None:
                with origin._lock:
                    origin.active += 1
                    origin.most_active = max(origin.most_active, origin.active)
                time.sleep(0.3)
                with origin._lock:
                    origin.active -= 1
                self.reply(200, IMAGE)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection the code under test attempts. Should the guard fail, anything but loopback is refused
    here before it leaves the machine, and no name goes to a DNS server."""
    attempts: list[tuple[str, int]] = []
    real_connect, real_getaddrinfo = socket.create_connection, socket.getaddrinfo

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address)
        try:
            loopback = ipaddress.ip_address(address[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise OSError(f"test tripwire: refused to connect to {address[0]}")
        return real_connect(address, *args, **kwargs)

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        if host != "localhost":
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise socket.gaierror(socket.EAI_NONAME, f"test tripwire: no DNS for {host}") from None
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(download_module, "RETRY_BACKOFF_SECONDS", 0.05)
    return attempts


def client(tmp_path: Path, **settings: Any) -> DownloadClient:
    settings.setdefault("allow_private_networks", True)
    return make_client(Settings(data_dir=tmp_path, **settings))


def fails(client: DownloadClient, url: str, max_bytes: int = CAP) -> DownloadFailed:
    with client, pytest.raises(DownloadFailed) as caught:
        download(client, url, max_bytes=max_bytes)
    return caught.value


BLOCKED_HOSTS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "0.0.0.0",
    "2130706433",
    "0177.0.0.1",
    "0x7f000001",
    "127.1",
    "[::ffff:127.0.0.1]",
    "10.0.0.1",
    "169.254.169.254",
]


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
def test_internal_addresses_are_refused_without_connecting(
    host: str, origin: Origin, tmp_path: Path, loopback_only: list[tuple[str, int]]
) -> None:
    failure = fails(client(tmp_path, allow_private_networks=False), origin.url("/image", host))
    assert str(failure).startswith("blocked: ")
    assert not failure.transient
    assert loopback_only == []
    assert origin.connections == 0


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/image", "file:///etc/passwd", "gopher://127.0.0.1:70/"])
def test_only_http_and_https_are_fetched(url: str, tmp_path: Path, loopback_only: list[tuple[str, int]]) -> None:
    failure = fails(client(tmp_path), url)
    assert "only http and https URLs are allowed" in str(failure)
    assert loopback_only == []


def test_downloads_work_when_private_networks_are_allowed(origin: Origin, tmp_path: Path) -> None:
    with client(tmp_path) as http:
        result = download(http, origin.url("/image"), max_bytes=CAP)
    assert result.data == IMAGE
    assert origin.hits == {"/image": 1}


def test_an_allow_listed_host_may_not_redirect_to_an_internal_address(origin: Origin, tmp_path: Path) -> None:
    allowed = client(tmp_path, allow_private_networks=False, outbound_allow_hosts="localhost")
    with allowed:
        assert download(allowed, origin.url("/image", "localhost"), max_bytes=CAP).data == IMAGE
    failure = fails(
        client(tmp_path, allow_private_networks=False, outbound_allow_hosts="localhost"),
        origin.url("/redirect?" + origin.url("/image"), "localhost"),
    )
    assert str(failure).startswith("blocked: 127.0.0.1 is a loopback address")
    assert not failure.transient
    assert origin.hits == {"/image": 1, "/redirect": 1}


def test_redirects_are_followed_relative_and_absolute(origin: Origin, tmp_path: Path) -> None:
    with client(tmp_path) as http:
        relative = download(http, origin.url("/redirect?/image"), max_bytes=CAP)
        absolute = download(http, origin.url("/redirect?" + origin.url("/redirect?image")), max_bytes=CAP)
    assert relative.data == absolute.data == IMAGE
    assert relative.url == origin.url("/image")


def test_a_redirect_loop_stops_after_five(origin: Origin, tmp_path: Path) -> None:
    failure = fails(client(tmp_path), origin.url("/loop"))
    assert str(failure) == "more than 5 redirects"
    assert origin.hits == {"/loop": 6}


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/big", f"image is {HUGE} bytes, over the {CAP}-byte limit"),
        ("/big-unsized", f"image is over the {CAP}-byte limit"),
    ],
)
def test_a_body_over_the_cap_stops_near_the_cap(path: str, reason: str, origin: Origin, tmp_path: Path) -> None:
    started = time.monotonic()
    failure = fails(client(tmp_path), origin.url(path))
    assert time.monotonic() - started < 5
    assert str(failure) == reason
    assert not failure.transient
    assert origin.hits == {path: 1}
    # What the server got out before the client hung up: the cap plus socket buffers, not the gigabyte on offer.
    time.sleep(0.2)
    assert origin.sent.get(path, 0) < CAP + 16 * 1024 * 1024


@pytest.mark.parametrize("path", ["/trickle", "/trickle-headers"])
def test_a_trickle_stops_at_the_total_deadline(path: str, origin: Origin, tmp_path: Path) -> None:
    started = time.monotonic()
    failure = fails(client(tmp_path, download_total_timeout=2, download_read_timeout=1.5), origin.url(path))
    elapsed = time.monotonic() - started
    assert str(failure) == "took longer than the 2-second total deadline"
    assert 1.9 < elapsed < 2.6
    assert origin.hits == {path: 1}


def test_a_dropped_connection_is_retried_then_fails_as_transient(origin: Origin, tmp_path: Path) -> None:
    failure = fails(client(tmp_path), origin.url("/drop"))
    assert failure.transient
    assert str(failure).startswith("connection failed")
    assert origin.hits == {"/drop": 1 + download_module.TRANSIENT_RETRIES}


def test_a_server_error_is_retried(origin: Origin, tmp_path: Path) -> None:
    with client(tmp_path) as http:
        assert download(http, origin.url("/flaky"), max_bytes=CAP).data == IMAGE
    assert origin.hits == {"/flaky": 2}


def test_a_client_error_is_not_retried(origin: Origin, tmp_path: Path) -> None:
    failure = fails(client(tmp_path), origin.url("/missing"))
    assert str(failure) == "HTTP 404 Not Found"
    assert not failure.transient
    assert origin.hits == {"/missing": 1}


def test_downloads_from_one_host_are_limited_per_process(origin: Origin, tmp_path: Path) -> None:
    with client(tmp_path, download_per_host_concurrency=2) as http, ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: download(http, origin.url("/slow"), max_bytes=CAP), range(6)))
    assert [r.data for r in results] == [IMAGE] * 6
    assert origin.most_active == 2
