"""A still WebP decoded by libwebp directly gives Pillow's pixels; animations and broken files stay with Pillow."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from batchpress.processing.webp_still import decode_still_webp
from tests.support.photos import make_image, photo_rgba


def lossless_cut_out() -> bytes:
    out = io.BytesIO()
    photo_rgba(3, (300, 200)).save(out, "WEBP", lossless=True)
    return out.getvalue()


@pytest.mark.parametrize(
    "data",
    [make_image("webp", 1, (640, 480)), make_image("webp_alpha", 2, (640, 480)), lossless_cut_out()],
    ids=["lossy", "lossy with alpha", "lossless with alpha"],
)
def test_same_pixels_and_mode_as_pillow(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as expected:
        expected.load()
        with Image.open(io.BytesIO(data)) as opened:
            got = decode_still_webp(opened, data)
        assert got is not None
        assert got.mode == expected.mode
        assert np.array_equal(np.asarray(got), np.asarray(expected))


def test_animations_and_broken_files_are_left_to_pillow() -> None:
    animated = make_image("animated_webp", 1, (320, 240))
    with Image.open(io.BytesIO(animated)) as opened:
        assert decode_still_webp(opened, animated) is None
    data = make_image("webp", 1, (640, 480))
    with Image.open(io.BytesIO(data)) as opened:
        assert decode_still_webp(opened, data[: len(data) // 2]) is None
