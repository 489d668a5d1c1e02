"""The fast route for the common JPEG: an upright RGB or grey file re-encoded by simplejpeg instead of Pillow."""

from __future__ import annotations

import simplejpeg
from PIL import Image

from batchpress.processing.decode import icc_of
from batchpress.processing.encode import icc_for
from batchpress.processing.formats import Effort
from batchpress.processing.jpeg_icc import with_icc
from batchpress.processing.jpeg_small import small_jpeg

_ORIENTATION = 0x0112  # the EXIF tag


def recompress_plain_jpeg(opened: Image.Image, data: bytes, quality: int, effort: Effort = "max") -> bytes | None:
    """Decode and encode an upright RGB or grey JPEG with simplejpeg, or None to leave it to Pillow.

    Same libjpeg-turbo, same standard tables and 4:2:0, but it decodes straight into a packed array where Pillow
    unpacks to 4 bytes a pixel and back, so it compresses more megapixels per core (docs/performance.md). Pillow has
    already read the header and checked the pixel count; TurboJPEG's own header must agree before any pixel is
    decoded. Anything unusual goes to Pillow, whose verdict is final as before: CMYK and other modes, an EXIF
    orientation to apply, a layout TurboJPEG refuses, and files libjpeg only decodes with a warning (``strict``),
    which Pillow accepts.
    """
    colorspace = plain_colorspace(opened)
    if colorspace is None:
        return None
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        if (width, height) != opened.size:
            return None
        pixels = simplejpeg.decode_jpeg(data, colorspace=colorspace)
    except ValueError:
        return None
    subsampling = "Gray" if colorspace == "GRAY" else "420"
    profile = icc_for(opened.mode, icc_of(opened))

    def plain() -> bytes:
        return bytes(
            simplejpeg.encode_jpeg(
                pixels, quality=quality, colorspace=colorspace, colorsubsampling=subsampling, fastdct=False
            )
        )

    if effort == "max":
        return small_jpeg((lambda: pixels) if colorspace == "RGB" else None, opened.size, quality, profile, plain)
    return with_icc(plain(), profile)


def plain_colorspace(opened: Image.Image) -> str | None:
    """simplejpeg's colour space for an upright RGB or grey JPEG, or None for any other, which Pillow decodes."""
    if opened.mode not in ("RGB", "L") or opened.getexif().get(_ORIENTATION, 1) != 1:
        return None
    return "GRAY" if opened.mode == "L" else "RGB"
