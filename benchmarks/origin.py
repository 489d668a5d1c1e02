"""The benchmark's image origin: static files sent with ``os.sendfile`` from a process of its own.

In production the images come from a CDN on other machines, but here the origin shares the two cores the service is
measured on, so it should cost as little CPU as it can. ``tests.support.servers.ImageServer`` parses with
``http.server`` and copies every body through Python, in threads inside the benchmark's own process. This origin
answers from files with zero-copy ``sendfile`` from a blocking thread per keep-alive connection: its own code takes
~25 us a request; the rest of its CPU is loopback TCP, whose receiving half Linux runs in the sender's context.

``Origin`` writes what ``add`` is given under a temporary directory and runs ``python -m benchmarks.origin`` on a
listening socket it bound itself, so the port is known and accepting before the child has started.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from batchpress.worker.parent_death import die_with_parent

REPO = Path(__file__).resolve().parents[1]
TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
DEFAULT_TYPE = "application/octet-stream"
# A segment starts with no dot: no "." or "..", and never the dot-named temporary files that ``add`` renames.
SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
MAX_HEAD = 16 * 1024
NOT_FOUND = b"not found\n"
REASONS = {200: "OK", 304: "Not Modified", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
# Paths under this first segment are served without validators, as some origins do; all others carry an ETag.
PLAIN = "plain/"


def relative(path: str) -> str | None:
    """``path`` without its leading slash when it is plain segments only, else None: whatever is served lies
    under the root, with no escapes, encodings or hidden files to reason about."""
    segments = path.split("/")
    if len(segments) < 2 or segments[0] or not all(SEGMENT.fullmatch(s) for s in segments[1:]):
        return None
    return path[1:]


def _temporary(target: Path) -> Path:
    """A dot-named sibling of ``target``, which is never served, to rename over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")


def _write_atomically(target: Path, data: bytes) -> None:
    temp = _temporary(target)
    temp.write_bytes(data)
    os.replace(temp, target)


class Origin:
    """Serves what ``add`` registered, also after it started, until the ``with`` block ends."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bp-origin-")
        self.root = Path(self._dir.name)
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port: int = self._listener.getsockname()[1]
        # The status benchmark adds the JPEG set up to 40 times under other paths: each distinct body is written
        # once and every path is a hard link to it. A bytes key hashes once and then matches by identity.
        self._blobs: dict[bytes, Path] = {}
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, body: bytes, content_type: str = "image/jpeg") -> str:
        """Serve ``body`` at ``path`` from now on; a reader sees the old file or the new one, never half of one.
        The content type comes from the path's extension, so ``content_type`` must be the one it names."""
        rel = relative(path)
        if rel is None:
            raise ValueError(f"not a plain path: {path!r}")
        if content_type != _content_type(rel):
            raise ValueError(f"{path!r} would be served as {_content_type(rel)}, not {content_type}")
        blob = self._blobs.get(body)
        if blob is None:
            blob = self.root / "blobs" / str(len(self._blobs))
            _write_atomically(blob, body)
            self._blobs[body] = blob
        target = self.root / "files" / rel
        temp = _temporary(target)
        temp.unlink(missing_ok=True)
        os.link(blob, temp)
        os.replace(temp, target)
        return self.url(path)

    def __enter__(self) -> Origin:
        """Start the child; enter from a thread that outlives the ``with`` block, as Linux's parent-death signal
        follows the thread that started the child."""
        fd = self._listener.fileno()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.origin", str(fd), str(self.root), str(os.getpid())],
            cwd=REPO,
            pass_fds=(fd,),
        )
        self._listener.close()
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._listener.close()
        self._dir.cleanup()


def _head(
    status: int, length: int, content_type: str = "text/plain", close: bool = False, etag: str | None = None
) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS[status]}", f"Content-Type: {content_type}", f"Content-Length: {length}"]
    if etag:
        lines.append(f"ETag: {etag}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _content_type(rel: str) -> str:
    return TYPES.get(os.path.splitext(rel)[1].lower(), DEFAULT_TYPE)


def _open(root: str, rel: str) -> tuple[int, int, str] | None:
    """A descriptor, size and ETag of the regular file served at ``rel``, or None. Equal bodies share one blob
    (``Origin.add``), so the ETag (its inode and size, as nginx takes mtime and size) follows the bytes."""
    try:
        fd = os.open(os.path.join(root, "files", rel), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode):
        return fd, info.st_size, f'"{info.st_ino:x}-{info.st_size:x}"'
    os.close(fd)
    return None


def _answer(conn: socket.socket, head: bytes, root: str) -> bool:
    """Answer one request; False when the connection must close."""
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    # A request body would have to be read past to find the next request; GET and HEAD have none, so refuse it.
    has_body = "transfer-encoding" in headers or headers.get("content-length", "0") != "0"
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        conn.sendall(_head(400, 0, close=True))
        return False
    method, target, version = parts
    if method not in ("GET", "HEAD") or has_body:
        conn.sendall(_head(405 if method not in ("GET", "HEAD") else 400, 0, close=True))
        return False
    keep = version == "HTTP/1.1" and headers.get("connection") != "close"
    rel = relative(target.partition("?")[0])
    opened = _open(root, rel) if rel else None
    if rel is None or opened is None:
        body = NOT_FOUND if method == "GET" else b""
        conn.sendall(_head(404, len(NOT_FOUND), close=not keep) + body)
        return keep
    fd, size, etag = opened
    try:
        if rel.startswith(PLAIN):
            etag = ""
        elif etag and headers.get("if-none-match") == etag:
            conn.sendall(_head(304, 0, _content_type(rel), not keep, etag))
            return keep
        send_body = method == "GET" and size > 0
        conn.sendall(_head(200, size, _content_type(rel), not keep, etag), socket.MSG_MORE if send_body else 0)
        offset = 0
        while send_body and offset < size:
            sent = os.sendfile(conn.fileno(), fd, offset, size - offset)
            if sent == 0:
                return False
            offset += sent
    finally:
        os.close(fd)
    return keep


def _connection(conn: socket.socket, root: str) -> None:
    """One keep-alive connection, in a blocking thread: a blocking ``sendfile`` mostly sends a body in one call."""
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Where the default is BBR, it paces every send with timers (loopback has no fq qdisc to do it), which
        # measured ~100 us more CPU a 500 kB answer; loopback neither drops nor queues, so Reno loses nothing.
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"reno")
        buffer = b""
        try:
            while True:
                buffer = buffer.lstrip(b"\r\n")
                end = buffer.find(b"\r\n\r\n")
                while end < 0:
                    chunk = conn.recv(65536) if len(buffer) <= MAX_HEAD else b""
                    if not chunk:
                        return
                    buffer = (buffer + chunk).lstrip(b"\r\n")
                    end = buffer.find(b"\r\n\r\n")
                head, buffer = buffer[:end], buffer[end + 4 :]
                if not _answer(conn, head, root):
                    return
        except OSError:  # the client went away mid-answer
            return


def serve(listener: socket.socket, root: str) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_connection, args=(conn, root), daemon=True).start()


def main() -> None:
    fd, root, parent = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])

    def stop(*_: object) -> None:
        # An orphan cleans up for its dead parent: the full benchmark's corpus is hundreds of megabytes.
        if os.getppid() != parent:
            shutil.rmtree(root, ignore_errors=True)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the guard was in place
        stop()
    # Ctrl-C reaches the whole process group; the parent's ``__exit__`` stops this process instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(socket.socket(fileno=fd), root)


if __name__ == "__main__":
    main()
