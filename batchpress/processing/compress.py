"""Compress one image in memory: the pure function behind the compress task.

Downloaded bytes are hostile input. The type comes from magic bytes, only that one decoder may open them, the
pixel count is checked from the header before any pixel is decoded, and every decoder failure becomes
``ImageRejected`` with a reason short enough to show the user. Nothing here touches the network, the disk
or global settings.

The output keeps the input's format where we can write it (JPEG, PNG, WebP), so a product page that links a
``.png`` still gets a PNG; GIF, BMP and TIFF become JPEG. Only the ICC profile survives from the metadata: it
changes how colours look, while EXIF (camera, GPS), XMP and comments only cost bytes and leak information.

This module holds the guards and the choice of output format; ``sniff`` picks the decoder, ``decode`` makes the
pixels upright in a mode every encoder takes, and ``encode``, ``png_palette`` and ``jpeg_fast`` write the output.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import re
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageCms, UnidentifiedImageError

from batchpress.processing.cpu_budget import OverBudget
from batchpress.processing.decode import decode, has_alpha
from batchpress.processing.encode import encode_avif, encode_jpeg, encode_webp
from batchpress.processing.formats import EFFORTS, Effort
from batchpress.processing.gif_blocks import gif_problem
from batchpress.processing.jpeg_fast import recompress_plain_jpeg
from batchpress.processing.jpeg_markers import jpeg_problem
from batchpress.processing.png_chunks import png_problem
from batchpress.processing.png_palette import encode_png
from batchpress.processing.preview import Previews, preview_of, preview_of_file
from batchpress.processing.sniff import ImageType, describe, sniff

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 200

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
# Encoders whose own buffers pass a pool process's memory budget above this many pixels (docs/security.md).
ENCODER_MAX_PIXELS: dict[str, int] = {"AVIF": 12_000_000, "AVIF with alpha": 12_000_000, "WEBP with alpha": 12_000_000}
_PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}
# Pillow's gap for halving before resampling, documented as indistinguishable from plain LANCZOS in most cases.
_REDUCING_GAP = 3.0


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
    previews: Previews | None = None  # when asked for


def compress_image(
    data: bytes,
    *,
    quality: int = 50,
    max_pixels: int = 50_000_000,
    output_format: str = "original",
    max_dimension: int | None = None,
    effort: Effort = "max",
    stage: Callable[[str], None] | None = None,
    previews: bool = False,
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
      ``jpeg_fast.py``).
    - PNG -> 256-colour palette PNG keeping alpha (see ``png_palette.py``); ``quality`` does not apply.
    - WebP -> lossy WebP at ``quality`` keeping alpha; animated WebP keeps only its first frame, as does every
      other multi-frame input, because product pages show stills.
    - CMYK -> RGB through its embedded CMYK ICC profile when it has one, as browsers misrender CMYK JPEGs.

    The effective pixel cap is the smaller of ``max_pixels`` and Pillow's ``Image.MAX_IMAGE_PIXELS``, whose
    decompression-bomb warning is raised as an error here. Peak memory is a few times ``max_pixels`` x 4
    bytes. ``stage`` hears when decoding ends and encoding starts (the CPU budget names the step that ran
    out). ``warnings.catch_warnings`` is process-wide, so call this from worker processes, not from threads
    that rely on warning filters of their own.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be 1-100, got {quality}")
    if effort not in EFFORTS:
        raise ValueError(f"effort must be one of {', '.join(EFFORTS)}, got {effort!r}")
    kind = sniff(data)
    if kind is None:
        what = describe(data)
        raise ImageRejected(
            f"unsupported image format ({what})" if what.endswith(" image") else f"not an image ({what})"
        )
    if kind == "JPEG" and (problem := jpeg_problem(data)):
        raise ImageRejected(problem)
    if kind == "PNG" and (problem := png_problem(data)):
        raise ImageRejected(problem)
    if kind == "GIF" and (problem := gif_problem(data)):
        raise ImageRejected(problem)

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # Pillow warns about malformed EXIF and skips it; the pixels are fine and the metadata is dropped.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        try:
            with Image.open(BytesIO(data), formats=[kind]) as opened:
                _check_pixels(opened.size, max_pixels)
                plain = kind == "JPEG" and output_format in ("original", "jpeg") and max_dimension is None
                if plain and (encoded := recompress_plain_jpeg(opened, data, quality, effort)) is not None:
                    width, height = opened.size
                    if output_format == "original" and len(encoded) >= len(data):
                        fast = CompressedImage(data, kind, "jpg", width, height, kept_original=True)
                    else:
                        fast = CompressedImage(encoded, "JPEG", "jpg", width, height, kept_original=False)
                    return _with_previews(fast, data, kind) if previews else fast
                if kind == "JPEG" and max_dimension is not None:
                    _decode_scaled(opened, max_dimension)
                im, icc = decode(opened, data)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(_bomb_reason(str(exc), max_pixels)) from None
        except _DECODE_ERRORS as exc:
            raise ImageRejected(_corrupt_reason(kind, exc)) from None

    if stage is not None:
        stage("encode")
    # From the pixels decoded already, before they are shrunk or converted.
    before = _safely(functools.partial(preview_of, im, icc)) if previews else None
    if max_dimension is not None and max(im.size) > max_dimension:
        im = _shrink(im, max_dimension)
    width, height = im.size
    requested = _REQUESTED_FORMATS.get(output_format)
    out_format = requested or (kind if kind in ("PNG", "WEBP") else "JPEG")

    def done(result: CompressedImage) -> CompressedImage:
        return _with_previews(result, data, kind, before) if previews else result

    def kept() -> CompressedImage:
        return done(CompressedImage(data, kind, _EXTENSIONS[kind], width, height, kept_original=True))

    if max(width, height) > _MAX_SIDE.get(out_format, max(width, height)):
        raise ImageRejected(
            f"image is {width}x{height}, over the {out_format} limit of {_MAX_SIDE[out_format]} pixels a side"
        )
    limit = ENCODER_MAX_PIXELS.get(out_format + (" with alpha" if has_alpha(im) else ""), width * height)
    if width * height > limit:
        if requested is None and max_dimension is None:
            return kept()
        way_out = "a smaller max_dimension" if max_dimension else "a max_dimension as well"
        raise ImageRejected(
            f"image is {width}x{height} = {width * height / 1e6:.1f} MP; {out_format} output is limited to "
            f"{limit / 1e6:.0f} MP: ask for {way_out}"
        )
    if out_format == "PNG":
        encoded = encode_png(im, icc, effort)
    elif out_format == "WEBP":
        encoded = encode_webp(im, icc, quality, effort)
    elif out_format == "AVIF":
        encoded = encode_avif(im, quality)
    else:
        encoded = encode_jpeg(im, icc, quality, effort)
    # Freed before the output's preview decodes the output: two 50 MP images at once would pass the memory budget.
    im.close()

    if requested is None and max_dimension is None and len(encoded) >= len(data):
        return kept()
    return done(CompressedImage(encoded, out_format, _EXTENSIONS[out_format], width, height, kept_original=False))


def _with_previews(result: CompressedImage, data: bytes, kind: str, before: bytes | None = None) -> CompressedImage:
    """``result`` with the previews of its input ``data`` (``before``, if made already) and of its output; without
    them if either cannot be made, as an image is worth more than its preview."""
    if before is None:
        before = _safely(functools.partial(preview_of_file, data, kind))
    if before is None:
        return result
    after = before if result.kept_original else _safely(functools.partial(preview_of_file, result.data, result.format))
    return result if after is None else dataclasses.replace(result, previews=Previews(before, after))


def _safely(make: Callable[[], bytes]) -> bytes | None:
    try:
        return make()
    except OverBudget:
        raise  # the image's CPU budget is spent: it fails, previews and all
    except Exception:
        log.warning("could not make a preview; the image goes without", exc_info=True)
        return None


def _shrink(im: Image.Image, max_dimension: int) -> Image.Image:
    """``im.thumbnail`` to ``max_dimension`` a side. Pillow resizes an image with alpha premultiplied, from a
    premultiplied copy; here the original is released once that copy exists, so the two never outlive each other."""
    if im.mode not in _PREMULTIPLIED:
        im.thumbnail((max_dimension, max_dimension), Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)
        return im
    mode = im.mode
    premultiplied = im.convert(_PREMULTIPLIED[mode])
    im.close()
    size = _fit(premultiplied.size, max_dimension)
    return premultiplied.resize(size, Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP).convert(mode)


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """The size ``thumbnail`` picks inside a ``side`` square: the aspect ratio kept as closely as whole pixels allow."""
    width, height = size
    aspect = width / height
    if aspect <= 1:
        return _closest(side * aspect, lambda n: abs(aspect - n / side)), side
    return side, _closest(side / aspect, lambda n: abs(aspect - side / n) if n else 0)


def _closest(number: float, error: Callable[[int], float]) -> int:
    return max(min(math.floor(number), math.ceil(number), key=error), 1)


def _decode_scaled(opened: Image.Image, max_dimension: int) -> None:
    """Let libjpeg decode a JPEG that is to be shrunk at 1/2, 1/4 or 1/8 scale, as ``thumbnail`` would on an image
    not yet loaded (ours is loaded to be turned upright first): a 50 MP photo then never exists at full size."""
    scale = max_dimension / max(opened.size)
    if scale < 1:
        width, height = (max(1, round(side * scale * _REDUCING_GAP)) for side in opened.size)
        opened.draft(None, (width, height))


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected(f"image has an invalid size {width}x{height}")
    if width * height > max_pixels:
        megapixels = width * height / 1e6
        raise ImageRejected(
            f"image is {width}x{height} = {megapixels:.1f} MP, over the {max_pixels / 1e6:.1f} MP limit"
        )


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
