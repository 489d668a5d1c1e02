"""benchmarks.ssimulacra2 against the pure-Python ``ssimulacra2`` package it ports, on real photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image
from ssimulacra2 import compute_ssimulacra2

from benchmarks.ssimulacra2 import score

# Float32 maths moves scores by under 0.02 points (most under 0.005); the issue allows 0.5.
TOLERANCE = 0.5
ENCODINGS = [("JPEG", 30), ("JPEG", 50), ("JPEG", 90), ("WEBP", 50)]


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)())


def _encoded(image: Image.Image, fmt: str, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert(image.mode)


def _reference(tmp_path: Path, original: Image.Image, distorted: Image.Image) -> float:
    # The package only reads files; PNG keeps the pixels exact.
    original.save(tmp_path / "original.png")
    distorted.save(tmp_path / "distorted.png")
    return float(compute_ssimulacra2(tmp_path / "original.png", tmp_path / "distorted.png"))


# Small crops keep the reference (~0.1 s each here) to a few seconds in all; an odd size exercises the partial
# 2x2 blocks at the edges and the non-square transposition.
CROPS = {
    "astronaut": (100, 60, 356, 316),
    "coffee": (200, 80, 456, 336),
    "chelsea": (90, 40, 347, 243),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("fmt", "quality"), ENCODINGS)
@pytest.mark.parametrize("name", sorted(CROPS))
def test_matches_reference_package(tmp_path: Path, name: str, fmt: str, quality: int) -> None:
    original = _photo(name).crop(CROPS[name])
    distorted = _encoded(original, fmt, quality)
    expected = _reference(tmp_path, original, distorted)
    assert score(original, distorted) == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.timeout(60)
def test_matches_reference_on_a_whole_photo(tmp_path: Path) -> None:
    original = _photo("astronaut")
    distorted = _encoded(original, "JPEG", 50)
    assert score(original, distorted) == pytest.approx(_reference(tmp_path, original, distorted), abs=TOLERANCE)


@pytest.mark.parametrize(
    "size",
    [
        (40, 23),  # scales stop once a side drops under 8 pixels, with the first weights only
        (7, 30),  # no scale at all: the reference's 100
    ],
)
def test_matches_reference_on_small_images(tmp_path: Path, size: tuple[int, int]) -> None:
    original = _photo("coffee").resize(size)
    distorted = _encoded(original, "JPEG", 30)
    assert score(original, distorted) == pytest.approx(_reference(tmp_path, original, distorted), abs=TOLERANCE)


def test_grey_scores_as_rgb(tmp_path: Path) -> None:
    original = _photo("camera").crop((0, 0, 200, 160))
    assert original.mode == "L"
    distorted = _encoded(original, "JPEG", 40)
    expected = _reference(tmp_path, original, distorted)
    assert score(original, distorted) == pytest.approx(expected, abs=TOLERANCE)
    assert score(original, distorted) == pytest.approx(score(original.convert("RGB"), distorted.convert("RGB")))


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    """The photos at 0.3-0.6 MP, as the benchmark's corpus would hand them over."""
    return [
        _photo("astronaut").resize((768, 768)),
        _photo("coffee"),
        _photo("chelsea").resize((902, 600)),
    ]


def test_identical_images_score_100(photos: list[Image.Image]) -> None:
    for photo in photos:
        assert score(photo, photo.copy()) == pytest.approx(100.0)


def test_lower_quality_scores_lower(photos: list[Image.Image]) -> None:
    for photo in photos:
        scores = [score(photo, _encoded(photo, "JPEG", quality)) for quality in (30, 50, 90)]
        assert scores == sorted(scores)
        assert scores[0] < scores[-1] - 5
        assert scores[-1] < 100


def test_opaque_alpha_changes_nothing() -> None:
    original = _photo("chelsea").crop((0, 0, 200, 150))
    distorted = _encoded(original, "WEBP", 50)
    assert score(original.convert("RGBA"), distorted.convert("RGBA")) == pytest.approx(score(original, distorted))


def test_transparent_pixels_are_composited() -> None:
    """Colour hidden under alpha 0 does not count, but a visible edit does, on either background."""
    rgba = np.array(_photo("coffee").crop((0, 0, 160, 120)).convert("RGBA"))
    rgba[:, :60, 3] = 0
    hidden_changed = rgba.copy()
    hidden_changed[:, :60, :3] = 255 - hidden_changed[:, :60, :3]
    assert score(Image.fromarray(rgba), Image.fromarray(hidden_changed)) == pytest.approx(100.0)
    dropped_alpha = rgba.copy()
    dropped_alpha[..., 3] = 255
    assert score(Image.fromarray(rgba), Image.fromarray(dropped_alpha)) < 90


def test_sizes_must_match() -> None:
    photo = _photo("coffee")
    with pytest.raises(ValueError, match="sizes differ"):
        score(photo, photo.resize((300, 200)))
