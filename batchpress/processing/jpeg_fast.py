"""The fast route for the common JPEG: an upright RGB or grey file re-encoded by simplejpeg instead of Pillow."""

from __future__ import annotations

import struct

import simplejpeg
from PIL import Image

from batchpress.processing.encode import icc_for

_ORIENTATION = 0x0112  # the EXIF tag
_ICC_MARKER = b"ICC_PROFILE\x00"
_ICC_CHUNK = 65_519  # an APP2 segment's 65,535 bytes less its length field, marker name and chunk numbers


def recompress_plain_jpeg(opened: Image.Image, data: bytes, quality: int) -> bytes | None:
    """Decode and encode an upright RGB or grey JPEG with simplejpeg, or None to leave it to Pillow.

    Same libjpeg-turbo, same standard tables and 4:2:0, but it decodes straight into a packed array where Pillow
    unpacks to 4 bytes a pixel and back, so it compresses more megapixels per core (docs/performance.md). Pillow has
    already read the header and checked the pixel count; TurboJPEG's own header must agree before any pixel is
    decoded. Anything unusual goes to Pillow, whose verdict is final as before: CMYK and other modes, an EXIF
    orientation to apply, a layout TurboJPEG refuses, and files libjpeg only decodes with a warning (``strict``),
    which Pillow accepts.
    """
    if opened.mode not in ("RGB", "L") or opened.getexif().get(_ORIENTATION, 1) != 1:
        return None
    colorspace = "GRAY" if opened.mode == "L" else "RGB"
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        if (width, height) != opened.size:
            return None
        pixels = simplejpeg.decode_jpeg(data, colorspace=colorspace)
    except ValueError:
        return None
    subsampling = "Gray" if colorspace == "GRAY" else "420"
    encoded = simplejpeg.encode_jpeg(
        pixels, quality=quality, colorspace=colorspace, colorsubsampling=subsampling, fastdct=False
    )
    icc = opened.info.get("icc_profile")
    return _with_icc(bytes(encoded), icc_for(opened.mode, icc if isinstance(icc, bytes) else None))


def _with_icc(jpeg: bytes, icc: bytes | None) -> bytes:
    """Insert ``icc`` as APP2 ICC_PROFILE segments after the SOI and JFIF markers, as Pillow writes it."""
    if not icc:
        return jpeg
    chunks = [icc[i : i + _ICC_CHUNK] for i in range(0, len(icc), _ICC_CHUNK)]
    segments = b"".join(
        b"\xff\xe2"
        + struct.pack(">H", 2 + len(_ICC_MARKER) + 2 + len(chunk))
        + _ICC_MARKER
        + bytes((number, len(chunks)))
        + chunk
        for number, chunk in enumerate(chunks, start=1)
    )
    at = 2 + (2 + int.from_bytes(jpeg[4:6], "big") if jpeg[2:4] == b"\xff\xe0" else 0)
    return jpeg[:at] + segments + jpeg[at:]
