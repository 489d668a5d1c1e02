"""Where compressed images go: one small interface, chosen by settings."""

from batchpress.storage.base import ImageStorage, make_storage, output_url

__all__ = ["ImageStorage", "make_storage", "output_url"]
