"""Compress one image in memory: the pure function behind the compress task.

Downloaded bytes are hostile input. The type comes from magic bytes, only that one decoder may open them, the
pixel count is checked from the header before any pixel is decoded, and every decoder failure becomes
``ImageRejected`` with a reason short enough to show the user. Nothing here touches the network, the disk
or global settings.

The output keeps the input's format where we can write it (JPEG, PNG, WebP), so a product page that links a
``.png`` still gets a PNG; GIF, BMP and TIFF become JPEG. Only the ICC profile survives from the metadata: it
changes how colours look, while EXIF (camera, GPS), XMP and comments only cost bytes and leak information.
"""

from __future__ import annotations

import re
import struct
import warnings
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import simplejpeg
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError, features

from batchpress.processing.sniff import ImageType, describe, sniff

MAX_REASON_CHARS = 200

# Below this many pixels a lossless PNG re-save costs a few milliseconds, so it is worth trying against the
# palette version; above it, it costs ~1 s per 3 MP and measured no gain on photos.
SMALL_PNG_PIXELS = 100_000

_EXTENSIONS: dict[str, str] = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "AVIF": "avif",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tif",
}

# What Pillow's decoders raise on malformed input; anything else is a bug of ours and must surface as one.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    EOFError,
    ZeroDivisionError,
    OverflowError,
    struct.error,
    ImageCms.PyCMSError,
)

# Largest side each encoder can write (libjpeg's JPEG_MAX_DIMENSION, the WebP bitstream's 14 bits).
_MAX_SIDE: dict[str, int] = {"JPEG": 65_500, "WEBP": 16_383, "AVIF": 65_536}
_REQUESTED_FORMATS: dict[str, str] = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}


def output_formats() -> list[str]:
    """The ``output_format`` values this installation can honour (AVIF needs a Pillow built with libavif)."""
    return ["original", "jpeg", "webp", *(["avif"] if features.check("avif") else [])]


_ORIENTATION = 0x0112  # the EXIF tag
_ICC_MARKER = b"ICC_PROFILE\x00"
_ICC_CHUNK = 65_519  # an APP2 segment's 65,535 bytes less its length field, marker name and chunk numbers

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

# 64 evenly spaced grey levels that keep pure black and pure white exact (white backgrounds stay #fff).
_GREY_LEVELS_LUT = [round(round(v * 63 / 255) * 255 / 63) for v in range(256)]


class ImageRejected(Exception):
    """The bytes are not an image we can compress.

    ``str(exc)`` is a short human reason (at most 200 characters) stored for the user to read.
    """

    def __init__(self, reason: str) -> None:
        reason = " ".join(reason.split())
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        super().__init__(reason)


@dataclass(frozen=True)
class CompressedImage:
    data: bytes
    format: str  # "JPEG" | "PNG" | "WEBP"; the input's type ("GIF", "BMP", "TIFF" too) when kept_original
    extension: str  # "jpg" | "png" | "webp" (or the input's, see format)
    width: int  # as displayed, after EXIF orientation
    height: int
    kept_original: bool  # True when re-encoding was not smaller, so the input bytes are returned as-is


def compress_image(
    data: bytes,
    *,
    quality: int = 50,
    max_pixels: int = 50_000_000,
    output_format: str = "original",
    max_dimension: int | None = None,
) -> CompressedImage:
    """Re-encode ``data`` smaller at ``quality``, or return it unchanged when that is not smaller.

    ``output_format`` other than ``"original"`` (``jpeg``, ``webp``, ``avif``) converts every image, and
    ``max_dimension`` shrinks the longer side to at most that many pixels (never enlarges); either makes the
    re-encoded image the answer even when it is not smaller, since the user asked for that format or size.

    - JPEG (and GIF, BMP, TIFF: first frame, transparency flattened onto white) -> baseline JPEG with
      libjpeg's standard tables scaled to ``quality``, 4:2:0, standard Huffman tables. Optimised Huffman tables
      (``optimize=True``) measured 12 % smaller files but 30 % fewer megapixels per second per core, which put
      the service below a plain Pillow re-save and its throughput targets out of reach (docs/performance.md,
      "Codec comparison"). Upright RGB and grey JPEGs, the common case, go through ``simplejpeg`` (see
      ``_recompress_plain_jpeg``).
    - PNG -> 256-colour palette PNG keeping alpha (see ``_encode_png``); ``quality`` does not apply.
    - WebP -> lossy WebP at ``quality`` keeping alpha; animated WebP keeps only its first frame, as does every
      other multi-frame input, because product pages show stills.
    - CMYK -> RGB through its embedded CMYK ICC profile when it has one, as browsers misrender CMYK JPEGs.

    The effective pixel cap is the smaller of ``max_pixels`` and Pillow's ``Image.MAX_IMAGE_PIXELS``, whose
    decompression-bomb warning is raised as an error here. Peak memory is a few times ``max_pixels`` x 4
    bytes. ``warnings.catch_warnings`` is process-wide, so call this from worker processes, not from threads
    that rely on warning filters of their own.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be 1-100, got {quality}")
    kind = sniff(data)
    if kind is None:
        what = describe(data)
        raise ImageRejected(
            f"unsupported image format ({what})" if what.endswith(" image") else f"not an image ({what})"
        )

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # Pillow warns about malformed EXIF and skips it; the pixels are fine and the metadata is dropped.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        try:
            with Image.open(BytesIO(data), formats=[kind]) as opened:
                _check_pixels(opened.size, max_pixels)
                plain = kind == "JPEG" and output_format in ("original", "jpeg") and max_dimension is None
                if plain and (encoded := _recompress_plain_jpeg(opened, data, quality)) is not None:
                    width, height = opened.size
                    if output_format == "original" and len(encoded) >= len(data):
                        return CompressedImage(data, kind, "jpg", width, height, kept_original=True)
                    return CompressedImage(encoded, "JPEG", "jpg", width, height, kept_original=False)
                im, icc = _decode(opened)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(_bomb_reason(str(exc), max_pixels)) from None
        except _DECODE_ERRORS as exc:
            raise ImageRejected(_corrupt_reason(kind, exc)) from None

    if max_dimension is not None and max(im.size) > max_dimension:
        im.thumbnail((max_dimension, max_dimension), Image.Resampling.LANCZOS, reducing_gap=3.0)
    width, height = im.size
    requested = _REQUESTED_FORMATS.get(output_format)
    out_format = requested or (kind if kind in ("PNG", "WEBP") else "JPEG")
    if max(width, height) > _MAX_SIDE.get(out_format, max(width, height)):
        raise ImageRejected(
            f"image is {width}x{height}, over the {out_format} limit of {_MAX_SIDE[out_format]} pixels a side"
        )
    if out_format == "PNG":
        encoded = _encode_png(im, icc)
    elif out_format == "WEBP":
        encoded = _encode_webp(im, icc, quality)
    elif out_format == "AVIF":
        encoded = _save(im.convert("RGBA" if _has_alpha(im) else "RGB"), "AVIF", quality=quality)
    else:
        encoded = _encode_jpeg(im, icc, quality)

    if requested is None and max_dimension is None and len(encoded) >= len(data):
        return CompressedImage(data, kind, _EXTENSIONS[kind], width, height, kept_original=True)
    return CompressedImage(encoded, out_format, _EXTENSIONS[out_format], width, height, kept_original=False)


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected(f"image has an invalid size {width}x{height}")
    if width * height > max_pixels:
        megapixels = width * height / 1e6
        raise ImageRejected(
            f"image is {width}x{height} = {megapixels:.1f} MP, over the {max_pixels / 1e6:.1f} MP limit"
        )


def _decode(opened: Image.Image) -> tuple[Image.Image, bytes | None]:
    """Decode the first frame, turn it upright and normalise exotic modes; return it with its ICC profile."""
    opened.load()
    icc = opened.info.get("icc_profile") or None
    ImageOps.exif_transpose(opened, in_place=True)
    im = opened
    if im.mode == "CMYK":
        im = _cmyk_to_rgb(im, icc)
        icc = None  # the pixels are sRGB now; no profile means sRGB to every browser
    elif im.mode.startswith("I") or im.mode == "F":
        im = _to_grey(im)
    elif im.mode not in ("1", "L", "P", "RGB", *_ALPHA_MODES):
        im = im.convert("RGB")  # YCbCr, LAB, HSV: rare TIFF modes
    return im, icc if isinstance(icc, bytes) else None


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    if icc and _icc_space(icc) == b"CMYK":
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


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or "transparency" in im.info


def _icc_space(icc: bytes) -> bytes:
    return icc[16:20]


def _icc_for(mode: str, icc: bytes | None) -> bytes | None:
    """The profile only when it matches the output's colour space: a CMYK or grey profile on RGB is wrong."""
    if not icc:
        return None
    wanted = b"GRAY" if mode in ("L", "LA") else b"RGB "
    return icc if _icc_space(icc) == wanted else None


def _save(im: Image.Image, format: str, **params: Any) -> bytes:
    # Pillow's JPEG and PNG writers fall back to im.info for comments, XMP and profiles; start from nothing so
    # that only what is passed here is written.
    im.info = {}
    out = BytesIO()
    im.save(out, format=format, **params)
    return out.getvalue()


def _flatten(im: Image.Image) -> Image.Image:
    """Composite onto white: JPEG has no alpha and product pages are white."""
    grey = im.mode in ("LA", "La")
    rgba = im.convert("LA" if grey else "RGBA")
    background = Image.new("L" if grey else "RGB", im.size, "white")
    background.paste(rgba.convert("L" if grey else "RGB"), mask=rgba.getchannel("A"))
    return background


def _encode_jpeg(im: Image.Image, icc: bytes | None, quality: int) -> bytes:
    if _has_alpha(im):
        im = _flatten(im)
    elif im.mode in ("1", "P"):
        im = im.convert("L" if im.mode == "1" else "RGB")
    return _save(
        im,
        "JPEG",
        quality=quality,
        subsampling="4:2:0",
        icc_profile=_icc_for(im.mode, icc),
    )


def _recompress_plain_jpeg(opened: Image.Image, data: bytes, quality: int) -> bytes | None:
    """Decode and encode an upright RGB or grey JPEG with simplejpeg, or None to leave it to Pillow.

    Same libjpeg-turbo, same standard tables and 4:2:0, but it decodes straight into a packed array where Pillow
    unpacks to 4 bytes a pixel and back: measured 12-20 % more megapixels per second per core. Pillow has already
    read the header and checked the pixel count; TurboJPEG's own header must agree before any pixel is decoded.
    Anything unusual goes to Pillow, whose verdict is final as before: CMYK and other modes, an EXIF orientation
    to apply, a layout TurboJPEG refuses, and files libjpeg only decodes with a warning (``strict``), which
    Pillow accepts.
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
    return _with_icc(bytes(encoded), _icc_for(opened.mode, icc if isinstance(icc, bytes) else None))


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


def _encode_webp(im: Image.Image, icc: bytes | None, quality: int) -> bytes:
    im = im.convert("RGBA" if _has_alpha(im) else "RGB")
    return _save(im, "WEBP", quality=quality, method=4, icc_profile=_icc_for(im.mode, icc))


def _encode_png(im: Image.Image, icc: bytes | None) -> bytes:
    """Lossy palette PNG, the only PNG route that measured a real gain (~0.1-0.25 of the input on photos).

    - RGB and RGBA photos: 256 colours by fast octree without dithering: 3x faster than median cut and no
      larger, for ~1.7 dB lower PSNR; dithering made files larger. Octree lands white at 254, so palette
      entries within 2 levels of 0 or 255 (colour and alpha) are snapped there: white backgrounds stay
      #ffffff. Octree can still give a few opaque pixels near soft edges a partly transparent entry (~0.2 %
      of them on a feathered cut-out); libimagequant avoids that, but this Pillow is built without it.
    - RGB with at most 256 colours (logos, flat graphics): exact palette by median cut, lossless.
    - Greyscale: 64 evenly spaced levels, kept as 8-bit grey; a 256-colour palette of grey measured 1.5x
      larger than plain grey, which itself gains nothing.
    - Palette and 1-bit inputs: lossless re-save, since they are already reduced.
    - Small images and RGBA graphics with few colours also try a lossless re-save and keep the smaller.
    """
    if im.mode == "1":
        return _save(im, "PNG", compress_level=6)
    if im.mode == "P":
        transparency = im.info.get("transparency")
        params: dict[str, Any] = {} if transparency is None else {"transparency": transparency}
        return _save(im, "PNG", compress_level=6, icc_profile=_icc_for("RGB", icc), **params)
    if _has_alpha(im):
        im = im.convert("RGBA")
    elif im.mode == "L":
        return _save(im.point(_GREY_LEVELS_LUT), "PNG", compress_level=6, icc_profile=_icc_for("L", icc))
    else:
        im = im.convert("RGB")
    profile = _icc_for(im.mode, icc)
    few_colours = im.getcolors(256) is not None
    if im.mode == "RGB" and few_colours:
        exact = im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        return _save(exact, "PNG", compress_level=6, icc_profile=profile)
    palette = _snap_extremes(im.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))
    candidates = [_save(palette, "PNG", compress_level=6, icc_profile=profile)]
    if few_colours or im.width * im.height <= SMALL_PNG_PIXELS:
        candidates.append(_save(im, "PNG", compress_level=6, icc_profile=profile))
    return min(candidates, key=len)


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


def _bomb_reason(message: str, max_pixels: int) -> str:
    """Word Pillow's decompression-bomb message in the same terms as our own pixel check."""
    pixels = re.search(r"\((\d+) pixels\)", message)
    limit = re.search(r"limit of (\d+) pixels", message)
    if pixels is None:
        return "image has too many pixels to decode safely"
    cap = min(max_pixels, int(limit.group(1))) if limit else max_pixels
    return f"image is {int(pixels.group(1)) / 1e6:.1f} MP, over the {cap / 1e6:.1f} MP limit"


def _corrupt_reason(kind: ImageType, exc: BaseException) -> str:
    detail = str(exc)
    if isinstance(exc, UnidentifiedImageError) or detail.startswith("cannot identify image file"):
        detail = "header could not be read"
    return f"truncated or corrupt {kind}: {detail or type(exc).__name__}"
