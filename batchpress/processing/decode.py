"""Turn an opened image into upright pixels in a mode every encoder accepts, with its ICC profile.

The encoders then only meet ``1``, ``L``, ``P``, ``RGB`` and the alpha modes: CMYK becomes RGB (browsers misrender
CMYK JPEGs), 16-bit and float grey become 8-bit grey, and rare TIFF modes become RGB.
"""

from __future__ import annotations

from io import BytesIO

from PIL import Image, ImageCms, ImageOps

from batchpress.processing.webp_still import decode_still_webp

ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def decode(opened: Image.Image, data: bytes | None = None) -> tuple[Image.Image, bytes | None]:
    """Decode the first frame, turn it upright and normalise exotic modes; return it with its ICC profile.

    ``data``, the bytes ``opened`` reads, lets a still WebP skip Pillow's animation decoder (``webp_still.py``).
    """
    still = decode_still_webp(opened, data) if data is not None and opened.format == "WEBP" else None
    if still is None:
        opened.load()
    # Pillow's WebP reader keeps libwebp's animation decoder, two full-size canvases, for as long as the image lives.
    vars(opened).pop("_decoder", None)
    im = opened if still is None else still
    icc = icc_of(im)
    ImageOps.exif_transpose(im, in_place=True)
    if im.mode == "CMYK":
        im = _cmyk_to_rgb(im, icc)
        icc = None  # the pixels are sRGB now; no profile means sRGB to every browser
    elif im.mode.startswith("I") or im.mode == "F":
        im = _to_grey(im)
    elif im.mode not in ("1", "L", "P", "RGB", *ALPHA_MODES):
        im = im.convert("RGB")  # YCbCr, LAB, HSV: rare TIFF modes
    return im, icc


def icc_of(im: Image.Image) -> bytes | None:
    """The ICC profile an image carries, if any."""
    icc = im.info.get("icc_profile")
    return icc if isinstance(icc, bytes) and icc else None


def has_alpha(im: Image.Image) -> bool:
    return im.mode in ALPHA_MODES or "transparency" in im.info


def icc_space(icc: bytes) -> bytes:
    return icc[16:20]


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    if icc and icc_space(icc) == b"CMYK":
        try:
            converted = ImageCms.profileToProfile(
                im, ImageCms.ImageCmsProfile(BytesIO(icc)), ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None  # a broken profile should not cost the user the image
        if converted is not None:
            return converted
    return im.convert("RGB")


def _to_grey(im: Image.Image) -> Image.Image:
    """16-bit and float greyscale to 8-bit, scaled: Pillow's convert("L") clips everything above 255."""
    sixteen_bit = im.mode.startswith("I;16")
    if im.mode != "F":
        im = im.convert("I")
    low, high = im.getextrema()
    if not isinstance(high, int | float) or not isinstance(low, int | float):
        return im.convert("L")
    if sixteen_bit or (low >= 0 and 255 < high <= 65535):
        scale, offset = 1 / 257, 0.0
    elif low >= 0 and high <= 1.0 and im.mode == "F":
        scale, offset = 255.0, 0.0
    elif low >= 0 and high <= 255:
        scale, offset = 1.0, 0.0
    else:
        scale = 255.0 / (high - low) if high > low else 1.0
        offset = -low * scale
    return im.point(lambda v: v * scale + offset).convert("L")
