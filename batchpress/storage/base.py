from __future__ import annotations

from typing import Protocol

from batchpress.config import Settings


class ImageStorage(Protocol):
    """Stores outputs under keys that name their content (processing/reuse.py), and says the absolute URL each is
    served at. Saving a key replaces the object whole, so nobody ever reads a half-written output; ``delete`` of a
    missing key does nothing."""

    def save(self, key: str, data: bytes, content_type: str) -> str: ...

    def url_for(self, key: str) -> str: ...

    def delete(self, key: str) -> None: ...


# Presigned URLs an API process keeps: a full status page's worth (docs/performance.md, "Previews").
API_REMEMBERED_URLS = 32_768


def make_storage(settings: Settings, *, remember_urls: int = 0) -> ImageStorage:
    """The one place that picks the storage; boto3 is imported only when S3 is configured. ``remember_urls``: how
    many presigned URLs to keep for reuse within their signing window (storage/s3.py)."""
    if settings.storage == "s3":
        from batchpress.storage.s3 import S3Storage

        return S3Storage.from_settings(settings, remember_urls=remember_urls)
    from batchpress.storage.local import LocalStorage

    return LocalStorage(settings.images_dir, settings.tmp_dir, f"{settings.public_base_url}/images")


def output_url(storage: ImageStorage, key: str | None, stored_url: str | None) -> str | None:
    """The URL to show for an output: built from its key when our storage holds it (so presigned links are fresh
    and follow the configured public base), else the URL an external processor reported."""
    return storage.url_for(key) if key else stored_url
