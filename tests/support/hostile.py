"""Files built to hurt a worker's memory or time, and 50 MP photos of every input format, made in code.

The hostile files are the ones issue #20 measured (a 25 MB JPEG of empty APP3 markers, one of empty comments,
thousands of scans or EXIF segments, a 49 MP 16-bit RGBA PNG of ~0.4 MB, a decompression bomb per format); the
photos are scikit-image's real photos resized to 50 MP with a little noise, so they encode to the sizes a camera's
files have rather than to the few megabytes a smooth upscale would.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from io import BytesIO

import numpy as np
from PIL import Image

from tests.support.photos import alpha_mask, make_image, photo

MB = 1_000_000
# 50 MP at 3:2, and WebP's largest side (16,383) is not a limit for it.
PHOTO_50_MP = (8660, 5773)


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def after_soi(jpeg: bytes, extra: bytes) -> bytes:
    """``extra`` inserted right after SOI, where metadata segments go."""
    return jpeg[:2] + extra + jpeg[2:]


def empty_markers_jpeg(marker: int, total_bytes: int = 25 * MB) -> bytes:
    """A small photo behind ``total_bytes`` of empty segments (0xE3 APP3, 0xFE COM): 4 bytes each."""
    jpeg = make_image("jpeg", 3, (640, 480))
    return after_soi(jpeg, segment(marker, b"") * ((total_bytes - len(jpeg)) // 4))


def many_exif_jpeg(count: int = 100_000) -> bytes:
    exif = segment(0xE1, b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00")
    return after_soi(make_image("jpeg", 4, (640, 480)), exif * count)


def many_scans_jpeg(scans: int = 20_000) -> bytes:
    """A progressive photo followed by ``scans`` empty scans (a scan header, no entropy-coded data)."""
    jpeg = make_image("progressive_jpeg", 6, (640, 480))
    eoi = jpeg.rindex(b"\xff\xd9")
    return jpeg[:eoi] + segment(0xDA, bytes([1, 1, 0x00, 1, 63, 0x11])) * scans + jpeg[eoi:]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png16_rgba(size: tuple[int, int] = (7000, 7000)) -> bytes:
    """A 16-bit RGBA PNG of one flat colour: 49 MP, 392 MB of samples that deflate to ~0.4 MB."""
    width, height = size
    row = b"\x00" + b"\x12\x34\x56\x78\x9a\xbc\xff\xff" * width
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def _small(fmt: str, mode: str = "RGB", **params: object) -> bytes:
    out = BytesIO()
    photo(1, (64, 48)).convert(mode).save(out, fmt, **params)
    return out.getvalue()


def bomb(fmt: str) -> bytes:
    """A small valid file of ``fmt`` whose header claims far more than 50 MP (Pillow trusts the header's size)."""
    if fmt == "JPEG":
        data = bytearray(_small("JPEG", quality=90))
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = struct.pack(">HH", 20_000, 20_000)
        return bytes(data)
    if fmt == "PNG":
        data = _small("PNG")
        header = png_chunk(b"IHDR", struct.pack(">II", 20_000, 20_000) + data[24:29])
        return data[:8] + header + data[33:]
    if fmt == "WEBP":
        data = bytearray(_small("WEBP", quality=80))
        start = data.index(b"\x9d\x01\x2a") + 3  # the VP8 key frame's start code, then 14-bit width and height
        data[start : start + 4] = struct.pack("<HH", 16_383, 16_383)
        return bytes(data)
    if fmt == "GIF":
        data = bytearray(_small("GIF", "P"))
        data[6:10] = struct.pack("<HH", 65_535, 65_535)  # the logical screen
        return bytes(data)
    if fmt == "BMP":
        data = bytearray(_small("BMP"))
        data[18:26] = struct.pack("<ii", 20_000, 20_000)
        return bytes(data)
    if fmt == "TIFF":
        data = bytearray(_small("TIFF"))
        ifd = struct.unpack_from("<I", data, 4)[0]
        for n in range(struct.unpack_from("<H", data, ifd)[0]):
            entry = ifd + 2 + 12 * n
            tag = struct.unpack_from("<H", data, entry)[0]
            if tag in (256, 257):  # ImageWidth, ImageLength, rewritten as one LONG each
                struct.pack_into("<HHII", data, entry, tag, 4, 1, 20_000)
        return bytes(data)
    raise ValueError(f"no bomb for {fmt}")


BOMB_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def noisy_photo(index: int, size: tuple[int, int] = PHOTO_50_MP, amplitude: int = 4) -> Image.Image:
    """A real photo resized to ``size`` plus luma noise of +-``amplitude``, like a sensor's grain."""
    im = photo(index, size)
    if amplitude == 0:
        return im
    pixels = np.asarray(im)
    rng = np.random.default_rng(index)
    grain = rng.integers(-amplitude, amplitude + 1, size=pixels.shape[:2], dtype=np.int16)[..., None]
    return Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8), "RGB")


def _save(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def _exif_rotated(im: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(im.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=92, exif=exif)


def _rgba(im: Image.Image) -> Image.Image:
    im.putalpha(alpha_mask(im.size))
    return im


# Each 50 MP photo kind: how to build it from a noisy photo. Grain and quality keep every file under 25 MiB, the
# download cap, where a camera's file would be; PNGs, GIF and BMP get no grain, which no
# such file of that size could carry under it (a 16-bit RGBA photo PNG over ~5 MP cannot: see png16_rgba).
PHOTOS_50_MP: dict[str, Callable[[], bytes]] = {
    "jpeg": lambda: _save(noisy_photo(0), "JPEG", quality=92),
    "progressive_jpeg": lambda: _save(noisy_photo(1), "JPEG", quality=92, progressive=True),
    "cmyk_jpeg": lambda: _save(noisy_photo(2).convert("CMYK"), "JPEG", quality=90),
    "grayscale_jpeg": lambda: _save(noisy_photo(3).convert("L"), "JPEG", quality=92),
    "exif_rotated_jpeg": lambda: _exif_rotated(noisy_photo(4)),
    "png": lambda: _save(noisy_photo(0, amplitude=0), "PNG", compress_level=6),
    "png_alpha": lambda: _save(_rgba(noisy_photo(1, amplitude=0)), "PNG", compress_level=6),
    "webp": lambda: _save(noisy_photo(3), "WEBP", quality=90),
    "gif": lambda: _save(noisy_photo(4, amplitude=0).quantize(256), "GIF"),
    # A 24-bit BMP under the cap is at most 8.7 MP; a 1-bit one reaches 50 MP in 6 MB.
    "bmp": lambda: _save(noisy_photo(0, amplitude=0).convert("1"), "BMP"),
    "tiff": lambda: _save(noisy_photo(1), "TIFF", compression="jpeg", quality=90),
}
