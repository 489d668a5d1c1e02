"""``effort="max"``, the default: fewer bytes than Pillow's quality 50 for a look at least as good, by SSIMULACRA2
against the source as a browser shows it; ``effort="fast"`` keeps the older, faster encoders."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image

from batchpress.processing.compress import compress_image
from benchmarks.ssimulacra2 import score
from tests.support.looks import shown
from tests.support.photos import make_image, photo_rgba, srgb_icc

SIZES = {1: (800, 600), 3: (600, 800)}


def pillow(im: Image.Image, format: str, **params: object) -> bytes:
    out = BytesIO()
    im.save(out, format=format, **params)
    return out.getvalue()


@pytest.mark.parametrize("index", sorted(SIZES))
@pytest.mark.parametrize("kind", ["jpeg", "progressive_jpeg", "exif_rotated_jpeg", "cmyk_jpeg", "jpeg_with_metadata"])
def test_jpeg_is_smaller_than_pillow_q50_and_looks_at_least_as_good(kind: str, index: int) -> None:
    data = make_image(kind, index, SIZES[index])
    source = shown(data)
    reference = pillow(source, "JPEG", quality=50)

    result = compress_image(data)
    out = Image.open(BytesIO(result.data))

    assert (result.format, out.size, out.mode) == ("JPEG", SIZES[index], "RGB")
    assert len(result.data) < 0.9 * len(reference)
    assert score(source, shown(result.data)) >= score(source, shown(reference))
    assert out.info.get("progressive") == 1  # mozjpeg's lossless rewrite
    if kind == "jpeg_with_metadata":
        assert out.info.get("icc_profile") == srgb_icc()
        assert not out.getexif()


def test_grey_stays_grey_and_within_a_point_of_pillow() -> None:
    data = make_image("grayscale_jpeg", 1, SIZES[1])
    source = shown(data)
    reference = pillow(source, "JPEG", quality=50)

    result = compress_image(data)

    assert Image.open(BytesIO(result.data)).mode == "L"
    assert len(result.data) < len(reference)
    assert score(source, shown(result.data)) >= score(source, shown(reference)) - 1


@pytest.mark.parametrize("kind", ["jpeg", "bmp"])
def test_higher_quality_looks_better_and_costs_more(kind: str) -> None:
    data = make_image(kind, 1, SIZES[1])
    source = shown(data)
    outputs = [compress_image(data, quality=q).data for q in (30, 50, 80, 95)]

    scores = [score(source, shown(out)) for out in outputs]
    assert scores == sorted(scores)
    assert [len(out) for out in outputs] == sorted(len(out) for out in outputs)
    # Above jpegli's range, libjpeg-turbo's file rewritten by mozjpeg: still under Pillow's at that quality.
    assert len(outputs[-1]) < len(pillow(source, "JPEG", quality=95))


@pytest.mark.parametrize("kind", ["png", "png_alpha"])
def test_png_keeps_the_palette_pixels_in_fewer_bytes(kind: str) -> None:
    data = make_image(kind, 1, SIZES[1])

    smallest, fast = compress_image(data), compress_image(data, effort="fast")

    out = Image.open(BytesIO(smallest.data))
    assert (smallest.format, out.mode, out.size) == ("PNG", "P", SIZES[1])
    assert len(smallest.data) < 0.97 * len(fast.data)
    assert out.convert("RGBA").tobytes() == Image.open(BytesIO(fast.data)).convert("RGBA").tobytes()
    if kind == "png_alpha":
        alpha = out.convert("RGBA").getchannel("A")
        assert alpha.getextrema() == (0, 255)
        assert alpha.getpixel((0, 0)) == 0  # the cut-out's corners stay transparent


def test_png_cut_out_on_white_keeps_a_white_background() -> None:
    cut_out = photo_rgba(2, SIZES[1])
    on_white = Image.alpha_composite(Image.new("RGBA", cut_out.size, "white"), cut_out).convert("RGB")

    out = Image.open(BytesIO(compress_image(pillow(on_white, "PNG")).data)).convert("RGB")

    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_grey_png_stays_grey() -> None:
    data = pillow(shown(make_image("png", 1, SIZES[1])).convert("L"), "PNG")

    assert Image.open(BytesIO(compress_image(data).data)).mode == "L"


@pytest.mark.parametrize("kind", ["webp", "webp_alpha"])
def test_webp_both_efforts_decode_and_max_is_no_larger(kind: str) -> None:
    data = make_image(kind, 1, SIZES[1])

    smallest, fast = compress_image(data), compress_image(data, effort="fast")

    for result in (smallest, fast):
        out = Image.open(BytesIO(result.data))
        out.load()
        assert (result.format, out.size) == ("WEBP", SIZES[1])
    assert len(smallest.data) <= len(fast.data)


def test_unknown_effort_is_refused() -> None:
    with pytest.raises(ValueError, match="effort must be one of max, fast"):
        compress_image(make_image("jpeg", 1, SIZES[1]), effort="best")  # type: ignore[arg-type]
