"""The output formats and encoder efforts a request may ask for: a module of its own, so the API process checks
the fields without importing the codecs."""

from __future__ import annotations

from PIL import features


def output_formats() -> list[str]:
    """The ``output_format`` values this installation can honour (AVIF needs a Pillow built with libavif)."""
    return ["original", "jpeg", "webp", *(["avif"] if features.check("avif") else [])]


# ``max`` (the default) spends CPU on the slower encoders for the smallest files; ``fast`` keeps the quick ones.
EFFORTS = ("max", "fast")
