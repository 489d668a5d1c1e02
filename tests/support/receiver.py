"""A webhook receiver on 127.0.0.1 that verifies every delivery with the standardwebhooks library itself."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    payload: Any
    answered: int | None
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """Answers each path from a script ("200", "500", "400", "410", "hang"), then 200 once the script runs out."""

    def __init__(self, secret: str) -> None:
        self.verifier = Webhook(secret)
        self.scripts: dict[str, list[str]] = {}
        self.deliveries: list[Delivery] = []
        self.hang_seconds = 3.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload, verified = receiver.verifier.verify(body, headers), True
                except WebhookVerificationError:
                    payload, verified = json.loads(body or b"null"), False
                with receiver._lock:
                    script = receiver.scripts.get(self.path, [])
                    action = script.pop(0) if script else "200"
                    receiver.deliveries.append(
                        Delivery(self.path, headers, body, verified, payload, None if action == "hang" else int(action))
                    )
                if action == "hang":
                    time.sleep(receiver.hang_seconds)
                    action = "200"
                reply = json.dumps({"ok": action == "200"}).encode()
                self.send_response(int(action))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 30) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: {len(self.at(path))} deliveries, expected {count}")
            time.sleep(0.05)
        return self.at(path)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
