"""Shrinking an image with alpha gives what ``thumbnail`` gives, without its second full-size copy."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from batchpress.processing.compress import _shrink
from tests.support.photos import photo_rgba


@pytest.mark.parametrize(
    ("size", "side"), [((1000, 700), 300), ((700, 1000), 300), ((1201, 1201), 400), ((999, 333), 100), ((640, 9), 64)]
)
@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_same_as_thumbnail(size: tuple[int, int], side: int, mode: str) -> None:
    source = photo_rgba(2, size).convert(mode)
    expected = source.copy()
    expected.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    got = _shrink(source.copy(), side)
    assert (got.mode, got.size) == (expected.mode, expected.size)
    assert np.array_equal(np.asarray(got), np.asarray(expected))
