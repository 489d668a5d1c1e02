"""API keys: optional, hashed at startup, and the owner of every request made with them.

With ``BATCHPRESS_API_KEYS`` unset everything is open. With it set, the routes that depend on ``current_key_id`` need
one of the keys, as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; only SHA-256 digests are kept here, and a
request stores the key's id (the first 16 hex digits of its digest), never the key. A request is visible only to
the key that created it, and to anyone else answers exactly like an unknown id.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from batchpress.api.errors import ApiError
from batchpress.config import Settings
from batchpress.db.revisions import read_revision
from batchpress.models import ProcessingRequest

KEY_ID_LENGTH = 16

bearer_scheme = HTTPBearer(
    auto_error=False, description="an API key from BATCHPRESS_API_KEYS (needed only when that is set)"
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="the same API key, for clients that cannot set Authorization"
)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeys:
    digests: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        keys = (part.strip() for part in settings.api_keys.get_secret_value().split(","))
        return cls(tuple(digest(key) for key in keys if key))

    def __bool__(self) -> bool:
        return bool(self.digests)

    def key_id(self, presented: str) -> str | None:
        """The id of the matching key, or ``None``; every digest is compared, in constant time."""
        candidate = digest(presented)
        found = None
        for known in self.digests:
            if hmac.compare_digest(candidate, known):
                found = known
        return found[:KEY_ID_LENGTH] if found else None


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def current_key_id(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    header_key: Annotated[str | None, Depends(api_key_scheme)],
) -> str | None:
    """The caller's key id; ``None`` when no keys are configured. Raises 401 when keys are on and none matches.

    ``async`` though it awaits nothing: FastAPI runs a plain ``def`` dependency on its thread pool, an extra hop on
    every request that cost the status route much of its throughput (docs/performance.md)."""
    return _key_id(request.app.state.api_keys, bearer.credentials if bearer else None, header_key)


def request_key_id(request: Request) -> str | None:
    """``current_key_id`` for a route that reads its own headers (the status route, for speed): the same two
    headers, read as ``HTTPBearer`` and ``APIKeyHeader`` read them."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    bearer = credentials if scheme.lower() == "bearer" and credentials else None
    return _key_id(request.app.state.api_keys, bearer, request.headers.get("x-api-key"))


def _key_id(keys: ApiKeys, bearer: str | None, header_key: str | None) -> str | None:
    if not keys:
        return None
    presented = [key for key in (bearer, header_key) if key]
    if not presented:
        raise _unauthorized("an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>")
    for key in presented:
        if (key_id := keys.key_id(key)) is not None:
            return key_id
    raise _unauthorized("the API key is not valid")


KeyId = Annotated[str | None, Depends(current_key_id)]


def owned_request(session: Session, request_id: str, key_id: str | None) -> ProcessingRequest:
    """The request, if it exists and the caller may see it; otherwise the same 404 either way."""
    request = session.get(ProcessingRequest, _parse_id(request_id))
    if request is None or (key_id is not None and request.api_key_id != key_id):
        raise _not_found(request_id)
    return request


def owned_revision(engine: Engine, request_id: str, key_id: str | None, *, wait: bool = True) -> tuple[uuid.UUID, int]:
    """``owned_request``'s check reading only the id and revision (db/revisions.py, where ``wait`` is explained):
    the status cache's key."""
    rid = _parse_id(request_id)
    found = read_revision(engine, rid, wait=wait)
    if found is None or (key_id is not None and found[1] != key_id):
        raise _not_found(request_id)
    return rid, found[0]


def _parse_id(request_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(request_id)
    except ValueError:
        raise ApiError(404, "not_found", f"no request with id {request_id!r}: not a valid request id") from None


def _not_found(request_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no request with id {request_id}")
