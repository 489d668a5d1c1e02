"""PNG output: a lossy palette PNG, the only PNG route that measured a real gain."""

from __future__ import annotations

from typing import Any

from PIL import Image

from batchpress.processing.decode import has_alpha
from batchpress.processing.encode import as_mode, icc_for, save
from batchpress.processing.formats import Effort
from batchpress.processing.octree import quantize_octree
from batchpress.processing.png_optimize import optimized_png

# Below this many pixels a lossless PNG re-save costs a few milliseconds, so it is worth trying against the
# palette version; above it, it costs ~1 s per 3 MP and measured no gain on photos.
SMALL_PNG_PIXELS = 100_000

# Above this many pixels Pillow's quantize would pass the memory budget, so octree.py's slower banded one runs.
BANDED_OCTREE_PIXELS = 30_000_000

# oxipng holds several filtered copies of the image: past this, effort "max" skips it to keep within a pool
# process's memory budget.
OXIPNG_MAX_PIXELS = 12_000_000

# 64 evenly spaced grey levels that keep pure black and pure white exact (white backgrounds stay #fff).
_GREY_LEVELS_LUT = [round(round(v * 63 / 255) * 255 / 63) for v in range(256)]


def encode_png(im: Image.Image, icc: bytes | None, effort: Effort = "max") -> bytes:
    """Lossy palette PNG, ~0.1-0.25 of the input on photos; at ``effort="max"`` every route's file is then
    recompressed losslessly by oxipng (``png_optimize.py``): the same pixels in fewer bytes.

    - RGB and RGBA photos: 256 colours by fast octree without dithering, 3x faster than median cut and no
      larger. libimagequant (the BSD 2.4 line in libvips) scored higher on most photos but lower on small ones,
      for more bytes, and dithering cost more bytes still (docs/performance.md, "Codec comparison"). Octree
      lands white at 254, so palette entries within 2 levels of 0 or 255 (colour and alpha) are snapped there:
      white backgrounds stay #ffffff.
    - RGB with at most 256 colours (logos, flat graphics): exact palette by median cut, lossless.
    - Greyscale: 64 evenly spaced levels, kept as 8-bit grey; a 256-colour palette of grey measured 1.5x
      larger than plain grey, which itself gains nothing.
    - Palette and 1-bit inputs: lossless re-save, since they are already reduced.
    - Small images and RGBA graphics with few colours also try a lossless re-save and keep the smaller.
    """
    encoded = _encode(im, icc)
    if effort == "max" and im.width * im.height <= OXIPNG_MAX_PIXELS:
        return optimized_png(encoded, grey=im.mode in ("L", "LA", "La"))
    return encoded


def _encode(im: Image.Image, icc: bytes | None) -> bytes:
    if im.mode == "1":
        return save(im, "PNG", compress_level=6)
    if im.mode == "P":
        transparency = im.info.get("transparency")
        params: dict[str, Any] = {} if transparency is None else {"transparency": transparency}
        return save(im, "PNG", compress_level=6, icc_profile=icc_for("RGB", icc), **params)
    if has_alpha(im):
        im = as_mode(im, "RGBA")
    elif im.mode == "L":
        return save(im.point(_GREY_LEVELS_LUT), "PNG", compress_level=6, icc_profile=icc_for("L", icc))
    else:
        im = as_mode(im, "RGB")
    profile = icc_for(im.mode, icc)
    few_colours = im.getcolors(256) is not None
    if im.mode == "RGB" and few_colours:
        exact = im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        return save(exact, "PNG", compress_level=6, icc_profile=profile)
    candidates = [save(_snap_extremes(_octree(im)), "PNG", compress_level=6, icc_profile=profile)]
    if few_colours or im.width * im.height <= SMALL_PNG_PIXELS:
        candidates.append(save(im, "PNG", compress_level=6, icc_profile=profile))
    return min(candidates, key=len)


def _octree(im: Image.Image) -> Image.Image:
    if im.width * im.height > BANDED_OCTREE_PIXELS:
        return quantize_octree(im)
    return im.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)


def _snap_extremes(palette_image: Image.Image) -> Image.Image:
    """Octree palettes land one or two levels short of 0 and 255; snap those entries back (error <= 2)."""
    mode = palette_image.palette.mode if palette_image.palette else "RGB"
    channels = len(mode)
    values = palette_image.getpalette(mode)
    if values is None:
        return palette_image
    for start in range(0, len(values) - channels + 1, channels):
        rgb = values[start : start + 3]
        if min(rgb) >= 253:
            values[start : start + 3] = [255, 255, 255]
        elif max(rgb) <= 2:
            values[start : start + 3] = [0, 0, 0]
        if channels == 4:
            alpha = values[start + 3]
            values[start + 3] = 255 if alpha >= 253 else 0 if alpha <= 2 else alpha
    palette_image.putpalette(values, mode)
    return palette_image
