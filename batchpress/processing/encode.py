"""Pillow's JPEG, WebP and AVIF writers, set up so that only the pixels and a matching ICC profile are written."""

from __future__ import annotations

from io import BytesIO
from typing import Any

from PIL import Image

from batchpress.processing.decode import has_alpha, icc_space
from batchpress.processing.formats import Effort
from batchpress.processing.jpeg_small import small_jpeg

# libwebp's slowest method: past this many pixels one image's CPU budget would not cover it. With alpha its cost is
# almost all on the alpha plane, for little, so images with alpha keep method 4 (docs/performance.md).
WEBP_SLOWEST_MAX_PIXELS = 8_000_000

# Rows flattened at a time: small conversions even for the widest image, few enough bands to cost no time.
FLATTEN_BAND_ROWS = 256


def icc_for(mode: str, icc: bytes | None) -> bytes | None:
    """The profile only when it matches the output's colour space: a CMYK or grey profile on RGB is wrong."""
    if not icc:
        return None
    wanted = b"GRAY" if mode in ("L", "LA") else b"RGB "
    return icc if icc_space(icc) == wanted else None


def save(im: Image.Image, format: str, **params: Any) -> bytes:
    # Pillow's JPEG and PNG writers fall back to im.info for comments, XMP and profiles; start from nothing so
    # that only what is passed here is written.
    im.info = {}
    out = BytesIO()
    im.save(out, format=format, **params)
    return out.getvalue()


def encode_jpeg(im: Image.Image, icc: bytes | None, quality: int, effort: Effort = "max") -> bytes:
    if has_alpha(im):
        im = _flatten(im)
    elif im.mode in ("1", "P"):
        im = im.convert("L" if im.mode == "1" else "RGB")
    profile = icc_for(im.mode, icc)
    if effort == "max":
        rgb = im.tobytes if im.mode == "RGB" else None
        return small_jpeg(
            rgb, im.size, quality, profile, lambda: save(im, "JPEG", quality=quality, subsampling="4:2:0")
        )
    return save(im, "JPEG", quality=quality, subsampling="4:2:0", icc_profile=profile)


def encode_webp(im: Image.Image, icc: bytes | None, quality: int, effort: Effort = "max") -> bytes:
    im = as_mode(im, "RGBA" if has_alpha(im) else "RGB")
    slow = effort == "max" and im.mode == "RGB" and im.width * im.height <= WEBP_SLOWEST_MAX_PIXELS
    return save(im, "WEBP", quality=quality, method=6 if slow else 4, icc_profile=icc_for(im.mode, icc))


def encode_avif(im: Image.Image, quality: int) -> bytes:
    return save(as_mode(im, "RGBA" if has_alpha(im) else "RGB"), "AVIF", quality=quality)


def as_mode(im: Image.Image, mode: str) -> Image.Image:
    """``im`` itself when it is in ``mode`` already: ``convert`` would copy it, 200 MB at 50 MP."""
    if im.mode == mode and (mode not in ("RGB", "L") or "transparency" not in im.info):
        return im
    return im.convert(mode)


def _flatten(im: Image.Image) -> Image.Image:
    """Composite onto white: JPEG has no alpha and product pages are white.

    Band by band, so that besides the input and the output only a band's conversions exist at a time.
    """
    grey = im.mode in ("LA", "La")
    with_alpha, without = ("LA", "L") if grey else ("RGBA", "RGB")
    background = Image.new(without, im.size, "white")
    for top in range(0, im.height, FLATTEN_BAND_ROWS):
        band = as_mode(im.crop((0, top, im.width, min(top + FLATTEN_BAND_ROWS, im.height))), with_alpha)
        background.paste(band.convert(without), (0, top), mask=band.getchannel("A"))
    return background
