"""Where compressed images go: one small interface, chosen by settings."""

from batchpress.storage.base import API_REMEMBERED_URLS, ImageStorage, make_storage, output_url

__all__ = ["API_REMEMBERED_URLS", "ImageStorage", "make_storage", "output_url"]
