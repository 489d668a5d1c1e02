"""PNG at ``effort="max"``: libimagequant's palette (through libvips), then oxipng's lossless recompression.

libimagequant picks the palette by perceptual error and stops adding colours once ``QUANT_QUALITY`` is reached;
measured against the octree palette it scored far higher (SSIMULACRA2) on photos, cut-outs and gradients, and
oxipng then takes ~10 % off every PNG without touching a pixel (docs/performance.md, "Codec comparison"). The
libimagequant in pyvips-binary's libvips is the BSD-licensed 2.4 line, not the GPL one of later releases.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType

from PIL import Image

# libimagequant's target quality (0-100): the lowest at which no test image scored below the octree palette.
QUANT_QUALITY = 65
# oxipng's level 1 took most of level 2's bytes off at two thirds of its time.
OXIPNG_LEVEL = 1


@functools.cache
def _vips() -> ModuleType:
    """libvips, loaded on first use (it costs a worker that never sees a PNG ~20 MB) and on one thread: a pool
    process is one core's worth of work, and libvips' own threads would only fight its siblings."""
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    import pyvips

    pyvips.cache_set_max(0)  # operations on one image are never repeated; the cache would only hold memory
    pyvips.concurrency_set(1)
    module: ModuleType = pyvips
    return module


def quantized_png(im: Image.Image, icc: bytes | None) -> bytes:
    """A palette PNG of an RGB or RGBA image, without dithering (it measured larger and no better on photos)."""
    pyvips = _vips()
    bands = len(im.getbands())
    image = pyvips.Image.new_from_memory(im.tobytes(), im.width, im.height, bands, "uchar")
    image = image.copy(interpretation="srgb")
    if icc:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
    png = image.pngsave_buffer(
        palette=True, Q=QUANT_QUALITY, effort=1, dither=0.0, compression=6, keep="icc" if icc else "none"
    )
    return bytes(png)


def optimized_png(png: bytes, *, grey: bool = False) -> bytes:
    """oxipng's lossless recompression; it keeps the ICC profile and never returns a larger file. A ``grey`` PNG
    stays grey: oxipng would otherwise turn one of few levels into a palette of greys."""
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    import oxipng

    return bytes(oxipng.optimize_from_memory(png, level=OXIPNG_LEVEL, color_type_reduction=not grey))
