"""JPEGs built to hurt are refused from their markers in milliseconds; real photos of every kind pass untouched."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from batchpress.processing.compress import ImageRejected, compress_image
from batchpress.processing.jpeg_markers import MAX_METADATA_SEGMENTS, MAX_SCANS, jpeg_problem
from tests.support.photos import make_image


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def with_segments(jpeg: bytes, extra: bytes) -> bytes:
    """``extra`` inserted right after SOI, where metadata segments go."""
    return jpeg[:2] + extra + jpeg[2:]


@pytest.mark.parametrize("kind", ["jpeg", "progressive_jpeg", "exif_rotated_jpeg", "cmyk_jpeg", "grayscale_jpeg"])
def test_real_photos_pass(kind: str) -> None:
    assert jpeg_problem(make_image(kind, 1, (640, 480))) is None


def test_a_photo_with_restart_markers_and_big_metadata_passes() -> None:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(make_image("jpeg", 2, (800, 600)))).save(
        buffer, "JPEG", quality=90, progressive=True, restart_marker_blocks=4
    )
    icc_chunks = b"".join(segment(0xE2, b"ICC_PROFILE\x00" + bytes([n, 10]) + bytes(60000)) for n in range(1, 11))
    assert jpeg_problem(with_segments(buffer.getvalue(), icc_chunks)) is None


def test_thousands_of_one_byte_exif_segments_are_refused_quickly() -> None:
    hostile = with_segments(make_image("jpeg", 3, (64, 64)), segment(0xE1, b"x") * 4_000_000)  # ~20 MB
    started = time.monotonic()
    problem = jpeg_problem(hostile)
    assert time.monotonic() - started < 1
    assert problem is not None
    assert f"more than {MAX_METADATA_SEGMENTS} metadata segments" in problem


def test_empty_comment_markers_are_refused() -> None:
    hostile = with_segments(make_image("jpeg", 4, (64, 64)), segment(0xFE, b"") * (MAX_METADATA_SEGMENTS + 1))
    assert "metadata segments" in (jpeg_problem(hostile) or "")


def test_too_much_metadata_is_refused() -> None:
    big = segment(0xED, bytes(65000)) * 300  # ~19 MB of Photoshop blocks
    assert "MB of metadata" in (jpeg_problem(with_segments(make_image("jpeg", 5, (64, 64)), big)) or "")


def test_thousands_of_scans_are_refused_before_any_decoding() -> None:
    jpeg = make_image("progressive_jpeg", 6, (320, 240))
    eoi = jpeg.rindex(b"\xff\xd9")
    # An empty scan: a start-of-scan header for one component, then no entropy-coded data.
    empty_scan = segment(0xDA, bytes([1, 1, 0x00, 1, 63, 0x11]))
    hostile = jpeg[:eoi] + empty_scan * 20_000 + jpeg[eoi:]
    started = time.monotonic()
    with pytest.raises(ImageRejected, match=f"more than {MAX_SCANS} scans"):
        compress_image(hostile)
    assert time.monotonic() - started < 1
