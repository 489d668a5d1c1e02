"""JPEG at ``effort="max"``: the fewest bytes that look as good as libjpeg at the quality asked for.

Colour goes through jpegli, whose adaptive quantisation spends bits where the eye sees them, at the jpegli quality
whose worst image scored as well (SSIMULACRA2) as libjpeg's at the asked one; grey, which jpegli's binding cannot
write, and qualities above 90, where jpegli measured larger, go through libjpeg-turbo. Either output is then
rewritten losslessly by mozjpeg as a progressive file with scans chosen for it. Figures in docs/performance.md,
"Codec comparison".
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable

import mozjpeg_lossless_optimization
import numpy as np
import pyjpegli
from numpy.typing import NDArray

from batchpress.processing.jpeg_icc import with_icc

# (asked quality, jpegli quality) where the worst image's SSIMULACRA2 matched libjpeg's; interpolated between.
_JPEGLI_QUALITY = ((1, 1), (30, 26), (40, 38), (50, 53), (60, 62), (70, 74), (80, 86), (90, 93))
JPEGLI_MAX_QUALITY = 90
# mozjpeg's lossless rewrite holds every DCT coefficient and jpegli wants a packed copy of the
# pixels: past this either would pass a pool process's memory budget, so larger images get libjpeg-turbo's file.
SMALLEST_MAX_PIXELS = 24_000_000


def jpegli_quality(quality: int) -> int:
    """The jpegli quality that looks as good as libjpeg's ``quality`` (1-90)."""
    asked = [a for a, _ in _JPEGLI_QUALITY]
    i = min(max(bisect_right(asked, quality) - 1, 0), len(asked) - 2)
    (a0, j0), (a1, j1) = _JPEGLI_QUALITY[i], _JPEGLI_QUALITY[i + 1]
    return round(j0 + (j1 - j0) * (quality - a0) / (a1 - a0))


def small_jpeg(
    rgb: Callable[[], bytes | NDArray[np.uint8]] | None,
    size: tuple[int, int],
    quality: int,
    icc: bytes | None,
    plain: Callable[[], bytes],
) -> bytes:
    """``rgb()`` (packed 8-bit RGB rows; None for grey) through jpegli, else ``plain()`` (libjpeg-turbo at
    ``quality``, 4:2:0); then mozjpeg's lossless progressive rewrite, and ``icc`` written in. ``rgb`` is called
    only when jpegli runs, so a packed copy is made only then."""
    width, height = size
    if width * height > SMALLEST_MAX_PIXELS:
        return with_icc(plain(), icc)
    if rgb is not None and quality <= JPEGLI_MAX_QUALITY:
        encoded = pyjpegli.encode(rgb(), width, height, jpegli_quality(quality))
    else:
        encoded = plain()
    return with_icc(bytes(mozjpeg_lossless_optimization.optimize(encoded)), icc)
