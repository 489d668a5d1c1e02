"""Where compressed images go: one small interface, chosen by settings."""

from batchpress.storage.base import ImageStorage, get_storage, output_url

__all__ = ["ImageStorage", "get_storage", "output_url"]
