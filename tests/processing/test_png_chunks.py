"""PNGs built to hurt are refused from their chunk list in milliseconds; real PNGs of every kind pass untouched."""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from batchpress.processing.compress import ImageRejected, compress_image
from batchpress.processing.png_chunks import (
    MAX_CHUNKS,
    MAX_COMPRESSED_CHUNKS,
    MAX_METADATA_CHUNKS,
    png_problem,
)
from tests.support.photos import make_image, photo, photo_rgba, srgb_icc

_SKIMAGE_PNGS = sorted((Path(skimage.__file__).parent / "data").glob("*.png"))
# Adam7 passes as (first column, first row, column step, row step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def chunk(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def before_idat(png: bytes, extra: bytes) -> bytes:
    at = png.index(b"IDAT") - 4
    return png[:at] + extra + png[at:]


def before_iend(png: bytes, extra: bytes) -> bytes:
    at = png.rindex(b"IEND") - 4
    return png[:at] + extra + png[at:]


def save(im: Image.Image, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, "PNG", **params)
    return out.getvalue()


def small_png(index: int = 1) -> bytes:
    return make_image("png", index, (64, 64))


def with_idat_size(png: bytes, size: int) -> bytes:
    """The same PNG with its image data split into IDAT chunks of ``size`` bytes, as libpng writes them."""
    first, last = png.index(b"IDAT") - 4, png.rindex(b"IEND") - 4
    parts, pos = [], first
    while pos < last:
        length = int.from_bytes(png[pos : pos + 4], "big")
        parts.append(png[pos + 8 : pos + 8 + length])
        pos += 12 + length
    stream = b"".join(parts)
    idats = b"".join(chunk(b"IDAT", stream[at : at + size]) for at in range(0, len(stream), size))
    return png[:first] + idats + png[last:]


def interlaced_png(im: Image.Image) -> bytes:
    """An Adam7-interlaced RGB PNG, built by hand since Pillow cannot write one."""
    pixels = np.asarray(im.convert("RGB"))
    passes = (pixels[y::dy, x::dx] for x, y, dx, dy in _ADAM7)
    raw = b"".join(b"\x00" + row.tobytes() for rows in passes if rows.size for row in rows)
    width, height = im.size
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 1])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def photo_png(**params: object) -> bytes:
    return save(photo(2, (320, 240)), **params)


def animated_png() -> bytes:
    frames = [photo(i, (160, 120)) for i in range(3)]
    return save(frames[0], save_all=True, append_images=frames[1:], duration=100)


def grey_16_bit_png() -> bytes:
    return save(Image.fromarray(np.asarray(photo(2, (320, 240)).convert("L"), dtype=np.uint16) * 257))


REAL_PNGS: dict[str, Callable[[], bytes]] = {
    "fast": lambda: photo_png(compress_level=1),
    "smallest": lambda: photo_png(compress_level=9, optimize=True),
    "alpha": lambda: save(photo_rgba(3, (320, 240))),
    "16-bit grey": grey_16_bit_png,
    "icc profile": lambda: photo_png(icc_profile=srgb_icc()),
    "text and exif": lambda: photo_png(pnginfo=_text_info(), exif=Image.Exif()),
    "palette": lambda: save(photo(2, (320, 240)).convert("P", palette=Image.Palette.ADAPTIVE)),
    "interlaced": lambda: interlaced_png(photo(2, (320, 240))),
    "animated": animated_png,
    "8 KiB IDAT chunks": lambda: with_idat_size(photo_png(), 8192),
}


def _text_info() -> PngInfo:
    info = PngInfo()
    info.add_text("Software", "an editor")
    info.add_text("Description", "a product shot " * 200, zip=True)
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta/>", zip=False)
    return info


@pytest.mark.parametrize("name", list(REAL_PNGS))
def test_real_pngs_pass_and_compress(name: str) -> None:
    png = REAL_PNGS[name]()
    assert png_problem(png) is None
    assert compress_image(png).width > 0


def test_the_interlaced_test_image_is_a_real_interlaced_png() -> None:
    im = photo(2, (75, 50))
    with Image.open(io.BytesIO(interlaced_png(im))) as opened:
        assert opened.info.get("interlace") == 1
        assert np.array_equal(np.asarray(opened.convert("RGB")), np.asarray(im))


@pytest.mark.parametrize("path", _SKIMAGE_PNGS, ids=lambda path: path.name)
def test_png_files_from_other_encoders_pass(path: Path) -> None:
    assert png_problem(path.read_bytes()) is None


def test_a_25_mb_png_in_8_kib_idat_chunks_passes_quickly() -> None:
    stored = save(photo(0, (2900, 2900)), compress_level=0)  # ~25 MB: no compression at all
    png = with_idat_size(stored, 8192)
    assert png.count(b"IDAT") > 3000
    started = time.monotonic()
    assert png_problem(png) is None
    assert time.monotonic() - started < 1


def assert_refused_quickly(hostile: bytes, reason: str) -> None:
    """Refused with ``reason`` before Pillow spends its seconds on the file (a generous bound: figures in docs/)."""
    started = time.monotonic()
    with pytest.raises(ImageRejected, match=reason):
        compress_image(hostile)
    assert time.monotonic() - started < 1


def test_a_million_tiny_text_chunks_are_refused_quickly() -> None:
    hostile = before_idat(small_png(), chunk(b"tEXt", b"a\x00") * 1_000_000)  # ~14 MB, ~2 s inside Pillow
    assert_refused_quickly(hostile, f"more than {MAX_METADATA_CHUNKS} metadata chunks")


def test_unknown_chunks_after_the_image_data_count_too() -> None:
    hostile = before_iend(small_png(), chunk(b"prIv", b"") * (MAX_METADATA_CHUNKS + 1))
    assert f"more than {MAX_METADATA_CHUNKS} metadata chunks" in (png_problem(hostile) or "")


@pytest.mark.parametrize("kind", [b"zTXt", b"iCCP", b"iTXt"])
def test_thousands_of_small_chunks_that_inflate_to_1_mb_each_are_refused_quickly(kind: bytes) -> None:
    bomb = zlib.compress(bytes(2**20 - 64), 9)  # ~1 KB that Pillow inflates to 1 MB: 20,000 cost it 1-2 minutes
    header = {b"zTXt": b"\x00\x00", b"iCCP": b"p\x00\x00", b"iTXt": b"\x00\x01\x00\x00\x00"}[kind]
    hostile = before_idat(small_png(), chunk(kind, header + bomb) * 20_000)
    assert_refused_quickly(hostile, f"more than {MAX_COMPRESSED_CHUNKS} compressed text or profile")


def test_uncompressed_international_text_is_not_counted_as_compressed() -> None:
    plain = chunk(b"iTXt", b"Comment\x00\x00\x00en\x00\x00a note") * (MAX_COMPRESSED_CHUNKS + 10)
    assert png_problem(before_idat(small_png(), plain)) is None


def test_compressed_international_text_counts_whatever_its_keyword_length() -> None:
    packed = chunk(b"iTXt", b"k" * 200 + b"\x00\x01\x00\x00\x00" + zlib.compress(b"x"))
    hostile = before_idat(small_png(), packed * (MAX_COMPRESSED_CHUNKS + 1))
    assert "compressed text or profile chunks" in (png_problem(hostile) or "")


def test_too_much_metadata_is_refused() -> None:
    hostile = before_idat(small_png(), chunk(b"prIv", bytes(2**20)) * 17)
    assert "more than 16 MB of metadata" in (png_problem(hostile) or "")


def test_millions_of_empty_image_data_chunks_are_refused_quickly() -> None:
    hostile = before_iend(small_png(), chunk(b"IDAT", b"") * 2_000_000)  # ~23 MB, ~9 s inside Pillow
    assert_refused_quickly(hostile, f"more than {MAX_CHUNKS} chunks")


def test_a_chunk_longer_than_the_format_allows_is_refused() -> None:
    png = small_png()
    at = png.index(b"IDAT") - 4
    hostile = png[:at] + (2**31).to_bytes(4, "big") + png[at + 4 :]
    with pytest.raises(ImageRejected, match=r"^truncated or corrupt PNG: its IDAT chunk claims 2147483648 bytes"):
        compress_image(hostile)


def test_a_chunk_running_past_the_end_is_refused() -> None:
    hostile = small_png()[:-12] + chunk(b"tEXt", b"a\x00" + bytes(1000))[:100]
    with pytest.raises(ImageRejected, match=r"^truncated or corrupt PNG: its tEXt chunk runs past the end"):
        compress_image(hostile)


def test_a_png_must_start_with_its_header_chunk() -> None:
    png = small_png()
    hostile = png[:8] + chunk(b"tEXt", b"a\x00b") + png[8:]
    with pytest.raises(ImageRejected, match="does not start with its IHDR header chunk"):
        compress_image(hostile)


def test_chunk_types_with_digits_or_underscores_hide_nothing_behind_them() -> None:
    odd = chunk(b"zz1_", b"")  # Pillow reads any four word characters as a chunk type and goes on
    hostile = before_idat(small_png(), odd + chunk(b"zTXt", b"\x00\x00" + zlib.compress(b"x")) * 100)
    assert "compressed text or profile chunks" in (png_problem(hostile) or "")


def test_a_damaged_chunk_type_is_left_for_the_decoder() -> None:
    png = small_png()
    at = png.index(b"IDAT")
    assert png_problem(png[:at] + b"ID\x00T" + png[at + 4 :]) is None
