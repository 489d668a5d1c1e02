"""Small previews of an image's input and output, made while it is compressed, for pages that list many of them.

A preview is a WebP at most ``PREVIEW_SIDE`` pixels a side, upright and in sRGB, keeping transparency: a few kB where
the files it stands for weigh megabytes. An encoded JPEG (an input on the fast JPEG route, or a JPEG output) is decoded
at 1/2, 1/4 or 1/8 scale by libjpeg-turbo itself, which saves its inverse DCTs and colour conversion; other inputs are
shrunk from the pixels already decoded to compress them, and other outputs decoded in full (docs/performance.md,
"Previews").
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

import simplejpeg
from PIL import Image, ImageCms

from batchpress.processing.decode import decode, has_alpha, icc_of, icc_space
from batchpress.processing.encode import save
from batchpress.processing.jpeg_fast import plain_colorspace

PREVIEW_SIDE = 320
# Sizes, qualities and speeds below were measured for previews (docs/performance.md, "Previews").
# Enough to recognise a photo in a list, for a few kB.
PREVIEW_QUALITY = 60
# Lossless transparency (libwebp's default) was most of a cut-out's preview; lossy edges look the same at this size.
PREVIEW_ALPHA_QUALITY = 50
# libwebp's method 2: nearly method 4's bytes in half its time at this size.
PREVIEW_METHOD = 2
_SRGB = ImageCms.createProfile("sRGB")
# Rows converted at a time where a whole-image conversion would be needed (encode.py's FLATTEN_BAND_ROWS).
_BAND_ROWS = 256


@dataclass(frozen=True, slots=True)
class Previews:
    before: bytes  # of the input, as a browser shows it
    after: bytes  # of the output


def preview_of(im: Image.Image, icc: bytes | None = None) -> bytes:
    """A preview of upright pixels (``decode``'s), leaving ``im`` as it was."""
    small = _shrunk(im)
    alpha = has_alpha(small)
    small = small.convert("RGBA" if alpha else "RGB") if small.mode not in ("RGB", "RGBA") or alpha else small
    return save(
        _in_srgb(small, icc),
        "WEBP",
        quality=PREVIEW_QUALITY,
        alpha_quality=PREVIEW_ALPHA_QUALITY,
        method=PREVIEW_METHOD,
    )


def preview_of_file(data: bytes, kind: str) -> bytes:
    """A preview of an encoded image of type ``kind`` (``sniff``'s), decoded at the smallest scale its decoder has."""
    with Image.open(BytesIO(data), formats=[kind]) as opened:
        if kind == "JPEG":
            least = _draft_size(opened.size)
            if (small := _scaled_plain_jpeg(opened, data, least)) is not None:
                return preview_of(small, icc_of(opened))
            opened.draft(opened.mode if opened.mode in ("RGB", "L") else None, least)
        im, icc = decode(opened, data)
        return preview_of(im, icc)


def _scaled_plain_jpeg(opened: Image.Image, data: bytes, least: tuple[int, int]) -> Image.Image | None:
    """An upright RGB or grey JPEG decoded at scale by simplejpeg, faster than Pillow's ``draft``; None
    for anything else, as on the fast JPEG route."""
    colorspace = plain_colorspace(opened)
    if colorspace is None:
        return None
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace=colorspace, min_width=least[0], min_height=least[1])
    except ValueError:
        return None
    return Image.fromarray(pixels[:, :, 0] if colorspace == "GRAY" else pixels)


def _draft_size(size: tuple[int, int]) -> tuple[int, int]:
    """The size ``draft`` must not go below: the preview's own, so that libjpeg picks its largest scale-down."""
    scale = min(PREVIEW_SIDE / max(size), 1.0)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _shrunk(im: Image.Image) -> Image.Image:
    """At most ``PREVIEW_SIDE`` a side, in RGB, grey or (with transparency) RGBA."""
    alpha = has_alpha(im)
    work = "RGBa" if alpha else im.mode if im.mode in ("RGB", "L") else "RGB"
    # A whole-number box reduction first (cheap), to within twice the size; then one bilinear pass, as good as
    # Lanczos at this size for half its time.
    factor = max(im.size) // (2 * PREVIEW_SIDE)
    if factor > 1:
        small = im.reduce(factor) if work == im.mode else _reduced_in_bands(im, factor, work)
    else:
        small = _converted(im, work) if work != im.mode else im.copy()
    if max(small.size) > PREVIEW_SIDE:
        width, height = small.size
        scale = PREVIEW_SIDE / max(width, height)
        small = small.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR)
    return small.convert("RGBA") if alpha else small


def _reduced_in_bands(im: Image.Image, factor: int, mode: str) -> Image.Image:
    """``im`` in ``mode`` (premultiplied ``RGBa`` with transparency, so clear pixels lend no colour to the edges)
    reduced by ``factor``, a band of rows at a time: never a converted copy of the whole image."""
    rows = factor * max(1, _BAND_ROWS // factor)
    out = Image.new(mode, (-(-im.width // factor), -(-im.height // factor)))
    for top in range(0, im.height, rows):
        band = _converted(im.crop((0, top, im.width, min(top + rows, im.height))), mode)
        out.paste(band.reduce(factor), (0, top // factor))
    return out


def _converted(im: Image.Image, mode: str) -> Image.Image:
    """Pillow premultiplies only from RGBA: a palette, grey or keyed-colour image with transparency goes through it."""
    return im.convert("RGBA").convert(mode) if mode == "RGBa" and im.mode != "RGBA" else im.convert(mode)


def _in_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """Pixels of a colour profile other than sRGB, converted: a preview carries no profile, so it is read as sRGB."""
    if not icc or icc_space(icc) != b"RGB ":
        return im
    try:
        profile = ImageCms.ImageCmsProfile(BytesIO(icc))
        if "srgb" in (ImageCms.getProfileDescription(profile) or "").lower():
            return im
        return ImageCms.profileToProfile(im, profile, _SRGB, outputMode=im.mode) or im
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im  # a broken profile: the pixels as they are
