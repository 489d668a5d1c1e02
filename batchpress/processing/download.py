"""Fetch one input image with bounded time, size, redirects and concurrency, from public addresses only.

Transient failures (timeouts, dropped connections, 429 and 5xx) are retried a few times with backoff inside
the call, because giving up on a batch image for a blip costs the user more than a second's wait. The whole call,
retries and redirects included, ends by the total deadline. Redirects are followed here rather than by httpx so
that each hop's address goes through the outbound guard like the first.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from batchpress import __version__
from batchpress.config import Settings
from batchpress.outbound import GuardedTransport, OutboundBlocked, OutboundPolicy, deadline

USER_AGENT = f"batchpress/{__version__} (+bulk image compression)"
MAX_REDIRECTS = 5
TRANSIENT_RETRIES = 2
RETRY_BACKOFF_SECONDS = 0.5
REDIRECT_STATUS = {301, 302, 303, 307, 308}


class DownloadFailed(Exception):
    """The image could not be fetched; ``str(exc)`` is the short reason shown to the user."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class Downloaded:
    url: str
    data: bytes
    # The origin's validators, for the next download's conditional GET.
    etag: str | None = None
    last_modified: str | None = None
    # The origin answered 304 to the validators sent: ``data`` is empty, the last download's bytes still hold.
    not_modified: bool = False


class HostSlots:
    """At most ``limit`` downloads at once per host among the threads sharing one client (one per process), so one
    slow origin cannot take every download thread. Hosts nobody is using are forgotten."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._hosts: dict[str, tuple[threading.BoundedSemaphore, list[int]]] = {}

    @contextlib.contextmanager
    def hold(self, host: str, *, timeout: float) -> Iterator[None]:
        with self._lock:
            semaphore, users = self._hosts.setdefault(host, (threading.BoundedSemaphore(self.limit), [0]))
            users[0] += 1
        try:
            if not semaphore.acquire(timeout=max(timeout, 0)):
                raise DownloadFailed(f"timed out waiting for a free connection to {host}", transient=True)
            try:
                yield
            finally:
                semaphore.release()
        finally:
            with self._lock:
                users[0] -= 1
                if users[0] == 0:
                    del self._hosts[host]


class DownloadClient(httpx.Client):
    """An httpx client through the outbound guard that also carries the per-image limits ``download`` enforces."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            timeout=httpx.Timeout(
                connect=settings.download_connect_timeout,
                read=settings.download_read_timeout,
                write=settings.download_read_timeout,
                pool=settings.download_read_timeout,
            ),
            follow_redirects=False,
            # Images gain nothing from transfer compression, and asking for none keeps a gzip bomb from being
            # inflated before the byte cap sees it (a server may still send one; the cap then counts decoded bytes).
            headers={"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"},
            transport=GuardedTransport(
                OutboundPolicy.from_settings(settings),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            ),
            # Environment proxies would get their own, unguarded transport.
            trust_env=False,
        )
        self.policy = OutboundPolicy.from_settings(settings)
        self.total_timeout = settings.download_total_timeout
        self.host_slots = HostSlots(settings.download_per_host_concurrency)


def make_client(settings: Settings) -> DownloadClient:
    return DownloadClient(settings)


def download(
    client: httpx.Client, url: str, *, max_bytes: int, conditional: dict[str, str] | None = None
) -> Downloaded:
    """``conditional``: ``If-None-Match`` / ``If-Modified-Since`` from the last download, sent on every hop; a 304
    then comes back as ``not_modified``."""
    if not isinstance(client, DownloadClient):
        raise TypeError("download() needs a client from make_client()")
    total = client.total_timeout
    give_up_at = time.monotonic() + total
    with deadline(give_up_at):
        for attempt in range(TRANSIENT_RETRIES + 1):
            try:
                return _download_once(
                    client, url, max_bytes=max_bytes, give_up_at=give_up_at, conditional=conditional or {}
                )
            except DownloadFailed as exc:
                if exc.transient and time.monotonic() >= give_up_at:
                    raise DownloadFailed(
                        f"took longer than the {total:g}-second total deadline", transient=True
                    ) from None
                pause = RETRY_BACKOFF_SECONDS * 2**attempt
                if not exc.transient or attempt == TRANSIENT_RETRIES or time.monotonic() + pause >= give_up_at:
                    raise
            time.sleep(pause)
    raise AssertionError("unreachable")


def _download_once(
    client: DownloadClient, url: str, *, max_bytes: int, give_up_at: float, conditional: dict[str, str]
) -> Downloaded:
    target = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            client.policy.check_url(target)
            current = httpx.URL(target)
            with (
                client.host_slots.hold(current.host, timeout=give_up_at - time.monotonic()),
                client.stream("GET", current, headers=conditional) as response,
            ):
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUS and location:
                    target = urllib.parse.urljoin(str(current), location)
                    continue
                if response.status_code == 304 and conditional:
                    return Downloaded(url=str(response.url), data=b"", not_modified=True)
                return _read_body(response, max_bytes=max_bytes)
        raise DownloadFailed(f"more than {MAX_REDIRECTS} redirects")
    except OutboundBlocked as exc:
        raise DownloadFailed(str(exc)) from None
    except httpx.TimeoutException as exc:
        raise DownloadFailed(f"timed out ({type(exc).__name__})", transient=True) from None
    except httpx.TransportError as exc:
        raise DownloadFailed(f"connection failed: {_short(exc)}", transient=True) from None
    except httpx.InvalidURL as exc:
        raise DownloadFailed(f"invalid URL: {_short(exc)}") from None


def _read_body(response: httpx.Response, *, max_bytes: int) -> Downloaded:
    if response.status_code != 200:
        transient = response.status_code in (408, 429) or response.status_code >= 500
        raise DownloadFailed(f"HTTP {response.status_code} {response.reason_phrase}".strip(), transient=transient)
    declared = response.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > max_bytes):
        raise DownloadFailed(f"image is {declared[:20]} bytes, over the {max_bytes}-byte limit")
    chunks: list[bytes] = []
    received = 0
    # Raw bytes: a server that gzips anyway cannot inflate a small transfer past the cap; the compressed bytes
    # then simply fail to decode as an image.
    for chunk in response.iter_raw():
        received += len(chunk)
        if received > max_bytes:
            raise DownloadFailed(f"image is over the {max_bytes}-byte limit")
        chunks.append(chunk)
    return Downloaded(
        url=str(response.url),
        data=b"".join(chunks),
        etag=_header(response, "etag"),
        last_modified=_header(response, "last-modified"),
    )


def _header(response: httpx.Response, name: str) -> str | None:
    """A validator to send back as it came: only a short, printable ASCII one can go into a header again."""
    value = response.headers.get(name)
    return value if value and len(value) <= 200 and value.isascii() and value.isprintable() else None


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
