"""The HTTP side of the client commands: one small wrapper over the public API, and its errors turned into
messages a person can act on.

Every failure to talk to the API (unreachable, refused key, bad CSV, unknown id, a server error) raises
``ApiProblem`` carrying the lines to print; the commands turn it into exit status 2.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

TERMINAL = frozenset({"completed", "completed_with_errors", "failed", "cancelled"})
MAX_DETAILS_SHOWN = 10
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
CALL_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class ApiProblem(Exception):
    """Talking to the API failed; ``lines`` say why and, where we can tell, what to do."""

    def __init__(self, *lines: str, status_code: int | None = None, code: str | None = None) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.status_code = status_code
        self.code = code

    @property
    def transient(self) -> bool:
        """Worth retrying while waiting: the server is restarting or briefly overloaded."""
        return self.status_code is None or self.status_code >= 500 or self.status_code == 429


def detail_lines(details: Any, message: str = "") -> list[str]:
    """The per-problem list of an error answer (CSV lines, form fields), first few only, minus what ``message``
    already says."""
    if not isinstance(details, list):
        return []
    lines = []
    for item in details[:MAX_DETAILS_SHOWN]:
        if not isinstance(item, Mapping):
            lines.append(f"  {item}")
            continue
        where = []
        if item.get("line") is not None:
            where.append(f"line {item['line']}")
        if item.get("field"):
            where.append(str(item["field"]))
        if item.get("location"):
            where.append(str(item["location"]))
        text = f"{', '.join(where)}: {item.get('message') or ''}" if where else str(item.get("message") or "")
        if text not in message:
            lines.append(f"  {text}")
    if len(details) > MAX_DETAILS_SHOWN:
        lines.append(f"  ...and {len(details) - MAX_DETAILS_SHOWN} more")
    return lines


def problem_from(response: httpx.Response) -> ApiProblem:
    """The API's own error message when it sent one in its error shape; otherwise what came back."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, Mapping):
        excerpt = " ".join(response.text.split())[:200]
        return ApiProblem(
            f"{response.request.method} {response.request.url} answered HTTP {response.status_code}: {excerpt}",
            status_code=response.status_code,
        )
    lines = [f"error: {error.get('message') or error.get('code')} (HTTP {response.status_code})"]
    lines += detail_lines(error.get("details"), str(error.get("message") or ""))
    if response.status_code >= 500 and error.get("request_id"):
        lines.append(f"the server logged it under request id {error['request_id']}")
    return ApiProblem(*lines, status_code=response.status_code, code=str(error.get("code") or ""))


class Client:
    """The batchpress API at ``base_url``, with an optional API key sent as a bearer token."""

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=CALL_TIMEOUT)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiProblem(
                f"error: cannot reach batchpress at {self.base_url}: {exc or type(exc).__name__}",
                "is `batchpress serve` running there? Point --url (or BATCHPRESS_URL) at it.",
            ) from exc
        if response.is_error:
            raise problem_from(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise ApiProblem(
                f"error: {self.base_url}{path} did not answer JSON; is --url a batchpress server?"
            ) from None
        if not isinstance(body, dict):
            raise ApiProblem(f"error: {self.base_url}{path} answered unexpected JSON")
        return body

    def upload_fields(self) -> set[str] | None:
        """The form fields the server's upload accepts, from its OpenAPI document; ``None`` when it does not say."""
        try:
            spec = self._json("GET", "/openapi.json")
            schema = spec["paths"]["/api/upload/"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
            if "$ref" in schema:
                schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            return set(schema["properties"])
        except (ApiProblem, KeyError, TypeError, AttributeError):
            return None

    def upload(self, csv_file: BinaryIO, filename: str, fields: Mapping[str, str]) -> dict[str, Any]:
        if extras := set(fields) - {"webhook_url"}:
            known = self.upload_fields()
            # FastAPI ignores form fields it does not declare, so an older server would silently drop them.
            if known is not None and (missing := sorted(extras - known)):
                flags = ", ".join("--" + name.replace("_", "-") for name in missing)
                raise ApiProblem(
                    f"error: the server at {self.base_url} does not support {flags} "
                    f"(its upload takes: {', '.join(sorted(known))})",
                    "upgrade the server, or submit without those options to use its defaults",
                )
        return self._json(
            "POST",
            "/api/upload/",
            files={"file": (filename, csv_file, "text/csv")},
            data=dict(fields),
            timeout=UPLOAD_TIMEOUT,
        )

    def status(self, request_id: str, *, limit: int | None = None) -> dict[str, Any]:
        params = {"limit": limit} if limit else None
        return self._json("GET", f"/api/status/{request_id}/", params=params)

    def wait_status(self, request_id: str, *, limit: int | None = None, patience: float = 30.0) -> dict[str, Any]:
        """``status``, riding out a server restart or a brief overload for up to ``patience`` seconds."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return self.status(request_id, limit=limit)
            except ApiProblem as problem:
                if not problem.transient or time.monotonic() > deadline:
                    raise
            time.sleep(1.0)

    def list_requests(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page of the caller's requests, newest first, and the ``next_cursor`` of the page after it."""
        params = {name: value for name, value in (("status", status), ("limit", limit), ("cursor", cursor)) if value}
        return self._json("GET", "/api/requests/", params=params)

    def cancel(self, request_id: str) -> dict[str, Any]:
        return self._json("POST", f"/api/requests/{_segment(request_id)}/cancel/")

    def retry(self, request_id: str) -> dict[str, Any]:
        return self._json("POST", f"/api/requests/{_segment(request_id)}/retry/")

    def delete(self, request_id: str) -> None:
        self._send("DELETE", f"/api/requests/{_segment(request_id)}/")

    def download(self, request_id: str, target: Path | None) -> int:
        """Stream the output CSV to ``target`` (stdout when ``None``), replacing it only once it is complete."""
        try:
            with self._http.stream("GET", f"/api/requests/{request_id}/output.csv", timeout=UPLOAD_TIMEOUT) as r:
                if r.is_error:
                    r.read()
                    raise problem_from(r)
                if target is None:
                    return _copy(r, os.fdopen(os.dup(1), "wb"))
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
                try:
                    size = _copy(r, os.fdopen(fd, "wb"))
                    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it an ordinary file's mode
                    os.replace(tmp, target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
                return size
        except httpx.TransportError as exc:
            raise ApiProblem(f"error: the download from {self.base_url} failed: {exc or type(exc).__name__}") from exc


def _segment(request_id: str) -> str:
    """An id as one path segment: a mistyped one (``abc/..``) is an unknown id, never another route."""
    return quote(request_id, safe="")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _copy(response: httpx.Response, out: BinaryIO) -> int:
    size = 0
    with out:
        for chunk in response.iter_bytes():
            out.write(chunk)
            size += len(chunk)
    return size
