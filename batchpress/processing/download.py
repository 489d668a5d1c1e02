"""Fetch one input image with bounded time, size and redirects.

Transient failures (timeouts, dropped connections, 429 and 5xx) are retried a few times with backoff inside
the call, because giving up on a batch image for a blip costs the user more than a second's wait.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from batchpress import __version__
from batchpress.config import Settings

USER_AGENT = f"batchpress/{__version__} (+bulk image compression)"
MAX_REDIRECTS = 5
TRANSIENT_RETRIES = 2
RETRY_BACKOFF_SECONDS = 0.5


class DownloadFailed(Exception):
    """The image could not be fetched; ``str(exc)`` is the short reason shown to the user."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class Downloaded:
    url: str
    data: bytes


def make_client(settings: Settings) -> httpx.Client:
    timeout = httpx.Timeout(
        connect=settings.download_connect_timeout,
        read=settings.download_read_timeout,
        write=settings.download_read_timeout,
        pool=settings.download_read_timeout,
    )
    return httpx.Client(
        timeout=timeout,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers={"User-Agent": USER_AGENT, "Accept": "image/*"},
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
    )


def download(client: httpx.Client, url: str, *, max_bytes: int) -> Downloaded:
    for attempt in range(TRANSIENT_RETRIES + 1):
        try:
            return _download_once(client, url, max_bytes=max_bytes)
        except DownloadFailed as exc:
            if not exc.transient or attempt == TRANSIENT_RETRIES:
                raise
        time.sleep(RETRY_BACKOFF_SECONDS * 2**attempt)
    raise AssertionError("unreachable")


def _download_once(client: httpx.Client, url: str, *, max_bytes: int) -> Downloaded:
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                transient = response.status_code in (408, 429) or response.status_code >= 500
                raise DownloadFailed(
                    f"HTTP {response.status_code} {response.reason_phrase}".strip(), transient=transient
                )
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise DownloadFailed(f"image is {int(declared)} bytes, over the {max_bytes}-byte limit")
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise DownloadFailed(f"image is over the {max_bytes}-byte limit")
                chunks.append(chunk)
            return Downloaded(url=str(response.url), data=b"".join(chunks))
    except httpx.TooManyRedirects:
        raise DownloadFailed(f"more than {MAX_REDIRECTS} redirects") from None
    except httpx.TimeoutException as exc:
        raise DownloadFailed(f"timed out ({type(exc).__name__})", transient=True) from None
    except httpx.TransportError as exc:
        raise DownloadFailed(f"connection failed: {_short(exc)}", transient=True) from None
    except httpx.InvalidURL as exc:
        raise DownloadFailed(f"invalid URL: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
