"""The output formats and encoder efforts a request may ask for: a module of its own, so the API process checks
the fields without importing the codecs."""

from __future__ import annotations

from typing import Literal

from PIL import features


def output_formats() -> list[str]:
    """The ``output_format`` values this installation can honour (AVIF needs a Pillow built with libavif)."""
    return ["original", "jpeg", "webp", *(["avif"] if features.check("avif") else [])]


# "max": the smallest files at the asked quality; "fast": the older encoders, several times faster, larger files.
Effort = Literal["max", "fast"]
EFFORTS: tuple[Effort, ...] = ("max", "fast")
