"""The output formats a request may ask for: a module of its own, so the API process checks the field without
importing the codecs."""

from __future__ import annotations

from PIL import features


def output_formats() -> list[str]:
    """The ``output_format`` values this installation can honour (AVIF needs a Pillow built with libavif)."""
    return ["original", "jpeg", "webp", *(["avif"] if features.check("avif") else [])]
