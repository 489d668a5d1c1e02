from __future__ import annotations

from typing import Protocol

from batchpress.config import Settings


class ImageStorage(Protocol):
    """Stores one output under a key unique to its image, and says the absolute URL it is served at.

    Saving the same key again replaces the object whole, so a redelivered task never leaves two outputs
    or a half-written one.
    """

    def save(self, key: str, data: bytes, content_type: str) -> str: ...

    def url_for(self, key: str) -> str: ...


def make_storage(settings: Settings) -> ImageStorage:
    """The one place that picks the storage; boto3 is imported only when S3 is configured."""
    if settings.storage == "s3":
        from batchpress.storage.s3 import S3Storage

        return S3Storage.from_settings(settings)
    from batchpress.storage.local import LocalStorage

    return LocalStorage(settings.images_dir, settings.tmp_dir, f"{settings.public_base_url}/images")


def output_url(storage: ImageStorage, key: str | None, stored_url: str | None) -> str | None:
    """The URL to show for an output: built from its key when our storage holds it (so presigned links are fresh
    and follow the configured public base), else the URL an external processor reported."""
    return storage.url_for(key) if key else stored_url
