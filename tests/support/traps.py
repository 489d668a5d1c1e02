"""An origin that serves every trap a hostile catalogue can set, and counts what it sent."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHUNK = 64 * 1024


class TrapServer:
    """Routes are callables that write the whole response themselves; ``sent[path]`` counts body bytes written."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        self.hits: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                with server._lock:
                    server.hits[path] = server.hits.get(path, 0) + 1
                route = server.routes.get(path)
                if route is None:
                    server.reply(self, path, 404, b"not found", "text/plain")
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    route(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def count(self, path: str, n: int) -> None:
        with self._lock:
            self.sent[path] = self.sent.get(path, 0) + n

    def reply(self, handler: BaseHTTPRequestHandler, path: str, status: int, body: bytes, content_type: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        self.count(path, len(body))

    def static(self, path: str, body: bytes, content_type: str = "image/jpeg", status: int = 200) -> str:
        self.routes[path] = lambda h: self.reply(h, path, status, body, content_type)
        return path

    def redirect(self, path: str, location: str) -> str:
        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(302)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()

        self.routes[path] = route
        return path

    def huge(self, path: str, total: int, *, declare_length: bool) -> str:
        """``total`` bytes of a JPEG-looking body, streamed until the client stops reading."""

        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            if declare_length:
                h.send_header("Content-Length", str(total))
            else:
                h.send_header("Connection", "close")
            h.end_headers()
            chunk = b"\xff\xd8\xff\xe0" + bytes(CHUNK - 4)
            left = total
            while left > 0:
                piece = chunk[: min(CHUNK, left)]
                h.wfile.write(piece)
                self.count(path, len(piece))
                left -= len(piece)
                chunk = bytes(CHUNK)

        self.routes[path] = route
        return path

    def trickle(self, path: str, body: bytes, *, bytes_per_second: int) -> str:
        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            for start in range(0, len(body), bytes_per_second // 10 or 1):
                piece = body[start : start + (bytes_per_second // 10 or 1)]
                h.wfile.write(piece)
                h.wfile.flush()
                self.count(path, len(piece))
                time.sleep(0.1)

        self.routes[path] = route
        return path

    def drop(self, path: str, body: bytes) -> str:
        """Promise the whole body, send half, then hang up."""

        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            self.count(path, len(body) // 2)
            h.close_connection = True
            h.connection.shutdown(2)

        self.routes[path] = route
        return path

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
