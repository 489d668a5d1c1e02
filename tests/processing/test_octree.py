"""The banded octree quantiser gives exactly what Pillow's does, with a fraction of its memory."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from batchpress.processing import octree
from batchpress.processing.octree import quantize_octree
from tests.support.photos import photo, photo_rgba


def cases() -> dict[str, Image.Image]:
    holes = photo_rgba(3, (640, 480))
    holes.putpixel((5, 400), (200, 10, 10, 0))  # a transparent pixel of another colour, after the first
    return {
        "photo": photo(0, (1200, 900)),
        "cut-out": photo_rgba(1, (1000, 800)),
        "transparent pixels of many colours": holes,
        "flat": Image.new("RGBA", (300, 200), (18, 86, 154, 255)),
        "few colours": photo(2, (400, 300)).quantize(20).convert("RGB"),
        "grey photo as RGB": photo(4, (500, 700)).convert("L").convert("RGB"),
    }


@pytest.mark.parametrize("name", list(cases()))
def test_same_palette_and_indices_as_pillow(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(octree, "BAND_ROWS", 37)  # bands that do not divide the height
    im = cases()[name]
    expected = im.quantize(256, method=Image.Quantize.FASTOCTREE)
    got = quantize_octree(im)
    mode = "RGBA" if im.mode == "RGBA" else "RGB"
    assert got.palette is not None
    assert got.palette.mode == mode
    assert got.getpalette(mode) == expected.getpalette(mode)
    assert np.array_equal(np.asarray(got), np.asarray(expected))


def test_other_modes_are_refused() -> None:
    with pytest.raises(ValueError, match="RGB or RGBA"):
        quantize_octree(Image.new("L", (4, 4)))
