"""A closed-loop HTTP load generator light enough not to be the thing it measures.

Each of ``clients`` keep-alive connections sends a GET, reads the whole answer, and sends the next. It runs in a
process of its own on asyncio streams with a hand-written HTTP/1.1 reader (a few tens of microseconds per request),
because a pool of httpx threads sharing one GIL with the benchmark's image server measured its own queueing as
much as the server's. Like browsers, requests and httpx, it can send ``Accept-Encoding: gzip``; it counts the body's
bytes and does not inflate them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class LoadResult:
    latencies: list[float]  # seconds, one per request
    wall_seconds: float


async def _fetch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> None:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, headers = head.partition(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {status_line.decode(errors='replace')}")
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            await reader.readexactly(int(value))
            return
    raise RuntimeError("answer without Content-Length")


async def _run(url: str, clients: int, requests: int, accept_encoding: str | None) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    encoding = f"Accept-Encoding: {accept_encoding}\r\n" if accept_encoding else ""
    request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n{encoding}\r\n".encode()
    connections = [await asyncio.open_connection(host, port) for _ in range(clients)]
    for reader, writer in connections:  # warm every connection outside the timing
        await _fetch(reader, writer, request)
    shares = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    latencies: list[float] = []

    async def loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, share: int) -> None:
        for _ in range(share):
            started = time.perf_counter()
            await _fetch(reader, writer, request)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(loop(r, w, share) for (r, w), share in zip(connections, shares, strict=True)))
    wall = time.perf_counter() - started
    for _, writer in connections:
        writer.close()
    return LoadResult(latencies, wall)


def _child(url: str, clients: int, requests: int, accept_encoding: str | None) -> LoadResult:
    return asyncio.run(_run(url, clients, requests, accept_encoding))


def closed_loop(url: str, clients: int, requests: int, accept_encoding: str | None = None) -> LoadResult:
    """``requests`` GETs of ``url`` shared by ``clients`` connections, from a separate process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_child, (url, clients, requests, accept_encoding))
