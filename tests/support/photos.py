"""Test images made from real photographs, in every shape the compressor has to handle.

Synthetic gradients and noise compress nothing like product photos, so sizes, ratios and quality checks would
mean little on them. scikit-image ships a handful of real photos inside its wheel; they are read straight from
the installed package with Pillow (``skimage.data`` fetchers may try the network for some files).
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import skimage
from PIL import Image, ImageCms, ImageOps

from tests.support.cmyk_icc import cmyk_icc, to_cmyk

_DATA_DIR = Path(skimage.__file__).parent / "data"
_SOURCES = ("coffee.png", "chelsea.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png")

# libjpeg's (IJG) standard luminance table, natural order: the one quality 50 produces unscaled.
_IJG_LUMINANCE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)

KINDS = (
    "jpeg",
    "progressive_jpeg",
    "exif_rotated_jpeg",
    "cmyk_jpeg",
    "cmyk_icc_jpeg",
    "grayscale_jpeg",
    "jpeg_444",
    "jpeg_with_metadata",
    "png",
    "png_alpha",
    "webp",
    "webp_alpha",
    "animated_webp",
    "gif",
    "animated_gif",
    "bmp",
    "tiff",
)


@functools.cache
def _source(index: int) -> Image.Image:
    with Image.open(_DATA_DIR / _SOURCES[index % len(_SOURCES)]) as im:
        return im.convert("RGB")


def photo(index: int, size: tuple[int, int]) -> Image.Image:
    """A real photo, centre-cropped to the aspect ratio of ``size`` and resized (LANCZOS) to it, RGB."""
    return ImageOps.fit(_source(index), size, Image.Resampling.LANCZOS)


def alpha_mask(size: tuple[int, int]) -> Image.Image:
    """An "L" mask like a cut-out product shot: opaque ellipse, soft edge, transparent corners."""
    w, h = size
    y, x = np.ogrid[:h, :w]
    r = np.hypot((x - w / 2) / (w / 2), (y - h / 2) / (h / 2))
    alpha = np.clip((1.0 - r) * 4.0, 0.0, 1.0) * 255
    return Image.fromarray(alpha.astype(np.uint8), "L")


def photo_rgba(index: int, size: tuple[int, int]) -> Image.Image:
    im = photo(index, size)
    im.putalpha(alpha_mask(size))
    return im


@functools.cache
def srgb_icc() -> bytes:
    """A real sRGB ICC profile from littlecms, to check it survives compression."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return profile.tobytes()


def _save(im: Image.Image, format: str, **params: object) -> bytes:
    out = BytesIO()
    im.save(out, format=format, **params)
    return out.getvalue()


# What each EXIF orientation asks a viewer to do, undone: the pixels as a camera would have stored them.
_STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class JpegStyle:
    """How a JPEG found on the web was written."""

    quality: int = 95
    progressive: bool = False
    orientation: int = 1  # EXIF; 3, 6 and 8 store the pixels turned, for viewers to turn back
    colour: str = "rgb"  # "rgb" | "grey" | "cmyk" (no profile) | "cmyk_icc" (tests.support.cmyk_icc's profile)
    subsampling: str = "4:2:0"  # or "4:4:4"; grey has none
    srgb_tagged: bool = False  # RGB only: carries an sRGB ICC profile, as Photoshop's exports do

    @property
    def label(self) -> str:
        """A short name for file paths, e.g. ``q82-prog-o6-cmyk_icc-444``."""
        parts = [f"q{self.quality}", "prog" if self.progressive else "", f"o{self.orientation}"]
        parts += [self.colour, "444" if self.subsampling == "4:4:4" else "", "srgb" if self.srgb_tagged else ""]
        return "-".join(p for p in parts if p and p != "o1")


def web_jpeg(im: Image.Image, style: JpegStyle) -> bytes:
    """``im`` (as displayed, RGB) written as a JPEG of ``style``."""
    params: dict[str, object] = {"quality": style.quality, "progressive": style.progressive}
    if style.colour == "grey":
        im = im.convert("L")
    elif style.colour == "cmyk":
        im = im.convert("CMYK")
    elif style.colour == "cmyk_icc":
        im, params["icc_profile"] = to_cmyk(im), cmyk_icc()
    if style.colour != "grey":
        params["subsampling"] = style.subsampling
    if style.srgb_tagged and style.colour == "rgb":
        params["icc_profile"] = srgb_icc()
    if style.orientation != 1:
        im = im.transpose(_STORED[style.orientation])
        exif = Image.Exif()
        exif[0x0112] = style.orientation
        params["exif"] = exif
    return _save(im, "JPEG", **params)


def make_image(kind: str, index: int = 0, size: tuple[int, int] = (640, 480)) -> bytes:
    """Encoded bytes of one test image; ``size`` is the size a viewer displays, after EXIF rotation."""
    im = photo(index, size)
    if kind == "jpeg":
        return _save(im, "JPEG", quality=95)
    if kind == "progressive_jpeg":
        return _save(im, "JPEG", quality=95, progressive=True)
    if kind == "exif_rotated_jpeg":
        # Stored as (h, w), like a phone held upright; Orientation 6 or 8 tells viewers how to turn it back.
        orientation = 6 if index % 2 == 0 else 8
        stored = im.transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270)
        exif = Image.Exif()
        exif[0x0112] = orientation
        return _save(stored, "JPEG", quality=95, exif=exif)
    if kind == "cmyk_jpeg":
        return _save(im.convert("CMYK"), "JPEG", quality=95)
    if kind == "cmyk_icc_jpeg":
        return web_jpeg(im, JpegStyle(colour="cmyk_icc"))
    if kind == "grayscale_jpeg":
        return _save(im.convert("L"), "JPEG", quality=95)
    if kind == "jpeg_444":
        return web_jpeg(im, JpegStyle(subsampling="4:4:4"))
    if kind == "jpeg_with_metadata":
        exif = Image.Exif()
        exif[0x010F] = "CameraMaker"  # Make
        exif[0x0110] = "Model 7"  # Model
        exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS
        xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
        return _save(im, "JPEG", quality=95, exif=exif, icc_profile=srgb_icc(), xmp=xmp, comment=b"shot by someone")
    if kind == "png":
        return _save(im, "PNG")
    if kind == "png_alpha":
        return _save(photo_rgba(index, size), "PNG")
    if kind == "webp":
        return _save(im, "WEBP", quality=95)
    if kind == "webp_alpha":
        return _save(photo_rgba(index, size), "WEBP", quality=95)
    if kind == "animated_webp":
        frames = [photo(index + i, size) for i in range(3)]
        return _save(frames[0], "WEBP", quality=95, save_all=True, append_images=frames[1:], duration=200)
    if kind == "gif":
        return _save(im.convert("P", palette=Image.Palette.ADAPTIVE), "GIF")
    if kind == "animated_gif":
        frames = [photo(index + i, size).convert("P", palette=Image.Palette.ADAPTIVE) for i in range(3)]
        return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    if kind == "bmp":
        return _save(im, "BMP")
    if kind == "tiff":
        return _save(im, "TIFF", compression="tiff_deflate")
    raise ValueError(f"unknown test image kind {kind!r}")


def jpeg_quality(data: bytes) -> int:
    """Estimate the IJG quality (1-100) a JPEG was saved at, from its luminance quantisation table.

    Compares the file's table with libjpeg's standard table scaled for every quality and returns the closest,
    so it measures what an encoder actually did rather than trusting a parameter.
    """
    with Image.open(BytesIO(data)) as im:
        tables = getattr(im, "quantization", None)
        if not tables:
            raise ValueError("not a JPEG")
        table = np.asarray(tables[0], dtype=np.int64)
    base = np.asarray(_IJG_LUMINANCE, dtype=np.int64).ravel()

    def error(quality: int) -> int:
        scale = 5000 // quality if quality < 50 else 200 - 2 * quality
        expected = np.clip((base * scale + 50) // 100, 1, 255)
        return int(np.abs(expected - table).sum())

    return min(range(1, 101), key=error)


def expected_size(data: bytes) -> tuple[int, int]:
    """The size a viewer shows: stored size, with width and height swapped for EXIF orientations 5-8."""
    with Image.open(BytesIO(data)) as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB between two images of one size, compared as RGB (or L if both are)."""
    mode = "L" if a.mode == b.mode == "L" else "RGB"
    x = np.asarray(a.convert(mode), dtype=np.float64)
    y = np.asarray(b.convert(mode), dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def tagged(data: bytes, tag: str) -> bytes:
    """The same image as other bytes: a JPEG comment or a PNG text chunk naming ``tag``, which no pixel shows."""
    text = tag.encode()
    if data[:2] == b"\xff\xd8":
        return data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        chunk = b"tEXt" + b"Comment\x00" + text
        crc = zlib.crc32(chunk).to_bytes(4, "big")
        at = 8 + 25  # after the signature and IHDR
        return data[:at] + (len(chunk) - 4).to_bytes(4, "big") + chunk + crc + data[at:]
    raise ValueError("only a JPEG or a PNG can be tagged")
