"""benchmarks.quality: outputs are scored against their source as a browser shows both."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image, ImageOps

from benchmarks.quality import Scores, displayed, score_bytes
from tests.support.photos import JpegStyle, make_image, photo, web_jpeg

SIZE = (320, 240)


def save(im: Image.Image, format: str, **params: object) -> bytes:
    out = BytesIO()
    im.save(out, format=format, **params)
    return out.getvalue()


def upright(data: bytes) -> Image.Image:
    with Image.open(BytesIO(data)) as im:
        return ImageOps.exif_transpose(im)


def test_an_image_scores_100_against_itself_and_a_q50_copy_lower() -> None:
    source = make_image("jpeg", 1, SIZE)
    assert score_bytes(source, source) == pytest.approx(100.0)
    q50 = score_bytes(source, save(Image.open(BytesIO(source)), "JPEG", quality=50))
    q20 = score_bytes(source, save(Image.open(BytesIO(source)), "JPEG", quality=20))
    assert 40 < q50 < 95
    assert q20 < q50 - 5


def test_an_output_that_lost_the_exif_orientation_scores_low() -> None:
    source = web_jpeg(photo(0, SIZE), JpegStyle(orientation=3))
    stored = Image.open(BytesIO(source))
    upside_down = save(stored, "PNG")  # the raw samples, exact, but without the orientation
    assert score_bytes(source, save(upright(source), "PNG")) == pytest.approx(100.0)
    assert score_bytes(source, upside_down) < 30


def test_cmyk_is_shown_through_its_profile() -> None:
    """An RGB output converted through the profile scores high; one converted plainly shows other colours."""
    source = make_image("cmyk_icc_jpeg", 0, SIZE)
    managed = save(displayed(source), "PNG")
    plain = save(Image.open(BytesIO(source)).convert("RGB"), "PNG")
    assert score_bytes(source, managed) == pytest.approx(100.0)
    assert score_bytes(source, plain) < 50


def test_transparency_is_drawn_over_white() -> None:
    source = make_image("png_alpha", 0, SIZE)
    rgba = Image.open(BytesIO(source)).convert("RGBA")
    pixels = np.array(rgba)
    pixels[pixels[..., 3] == 0] = 0  # black where nothing shows
    hidden_changed = Image.fromarray(pixels, "RGBA")
    assert displayed(source).getpixel((0, 0)) == (255, 255, 255)
    assert score_bytes(source, save(hidden_changed, "PNG")) == pytest.approx(100.0)
    assert score_bytes(source, save(rgba.convert("RGB"), "PNG")) < 60  # hidden colours shown


def test_percentiles() -> None:
    scores = Scores([float(v) for v in range(1, 12)])
    assert scores.median == 6
    assert scores.p10 == 2
    assert Scores([70.0]).p10 == 70.0
