from __future__ import annotations

import datetime as dt
import functools
import threading
from typing import TYPE_CHECKING
from urllib.parse import quote

import boto3
import botocore.auth
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from batchpress.config import Settings
from batchpress.storage.presign import window_start

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# A key names its output's bytes (processing/reuse.py), so caches may keep an object for ever.
CACHE_CONTROL = "public, max-age=31536000, immutable"


_signing = threading.local()
_current_datetime = botocore.auth.get_current_datetime  # type: ignore[attr-defined]


def _signing_datetime(remove_tzinfo: bool = True) -> dt.datetime:
    """botocore's clock for signatures, or the start of the window this thread is signing in."""
    fixed: dt.datetime | None = getattr(_signing, "at", None)
    return fixed if fixed is not None else _current_datetime(remove_tzinfo)


# botocore reads the time to sign with from this one function; the window is per thread, so nothing else changes.
setattr(botocore.auth, "get_current_datetime", _signing_datetime)  # noqa: B010


class StorageUnavailable(RuntimeError):
    """The configured storage cannot be used; the message says what to fix."""


def make_client(settings: Settings) -> S3Client:
    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 4, "mode": "standard"},
        signature_version="s3v4",
        # Virtual-host addressing needs wildcard DNS, which MinIO, moto and most self-hosted servers lack.
        s3={"addressing_style": "path"} if settings.s3_endpoint_url else None,
    )
    secret = settings.s3_secret_access_key.get_secret_value()
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id or None,
        aws_secret_access_key=secret or None,
        config=config,
    )


class S3Storage:
    """Objects in one bucket under an optional prefix, served from a public base URL or by presigned GET URLs.

    ``put_object`` replaces an object whole, so saving a key twice leaves exactly the second version.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        prefix: str = "",
        public_base_url: str = "",
        presign_seconds: int = 604_800,
        remember_urls: int = 0,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.public_base_url = public_base_url.rstrip("/")
        self.presign_seconds = presign_seconds
        # A URL signed in a window is the same for the whole window: the API keeps the latest ``remember_urls``, so
        # status pages re-rendered while a batch runs sign only their new outputs. Workers keep none.
        self._presigned = functools.lru_cache(maxsize=remember_urls)(self._presign) if remember_urls else self._presign

    @classmethod
    def from_settings(cls, settings: Settings, *, remember_urls: int = 0) -> S3Storage:
        return cls(
            make_client(settings),
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            public_base_url=settings.s3_public_base_url,
            presign_seconds=settings.s3_presign_seconds,
            remember_urls=remember_urls,
        )

    def object_key(self, key: str) -> str:
        key = key.lstrip("/")
        if not key:
            raise ValueError("empty storage key")
        return f"{self.prefix}/{key}" if self.prefix else key

    def save(self, key: str, data: bytes, content_type: str) -> str:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.object_key(key),
            Body=data,
            ContentType=content_type or "application/octet-stream",
            CacheControl=CACHE_CONTROL,
        )
        return self.url_for(key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def url_for(self, key: str) -> str:
        object_key = self.object_key(key)
        if self.public_base_url:
            return f"{self.public_base_url}/{quote(object_key)}"
        return self._presigned(object_key, window_start(self.presign_seconds))

    def _presign(self, object_key: str, start: int) -> str:
        """Signed as of the window's start (storage/presign.py): the same URL until the window turns."""
        _signing.at = dt.datetime.fromtimestamp(start, dt.UTC).replace(tzinfo=None)
        try:
            return self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": object_key},
                ExpiresIn=self.presign_seconds,
            )
        finally:
            _signing.at = None

    def check(self) -> None:
        """Raise ``StorageUnavailable`` unless the bucket exists and these credentials may use it."""
        where = f"S3 bucket {self.bucket!r} at {self.client.meta.endpoint_url}"
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket"):
                raise StorageUnavailable(f"{where} does not exist") from exc
            if code in ("403", "AccessDenied"):
                raise StorageUnavailable(f"{where}: access denied for these credentials") from exc
            raise StorageUnavailable(f"{where}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"{where} is unreachable: {exc}") from exc
