"""oxipng's lossless recompression of a finished PNG, for ``effort="max"``."""

from __future__ import annotations

import os

# oxipng's level 1 took most of level 2's bytes off at two thirds of its time (docs/performance.md).
OXIPNG_LEVEL = 1


def optimized_png(png: bytes, *, grey: bool = False) -> bytes:
    """The same pixels in fewer bytes; the ICC profile is kept and the file never grows. A ``grey`` PNG stays grey:
    oxipng would otherwise turn one of few levels into a palette of greys."""
    # A pool process is one core's worth of work: oxipng's own threads would only fight its siblings.
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    import oxipng

    return bytes(oxipng.optimize_from_memory(png, level=OXIPNG_LEVEL, color_type_reduction=not grey))
