"""Previews made while compressing: small WebPs of the input and the output of every kind of image, upright, in sRGB,
keeping transparency, that look like what they stand for."""

from __future__ import annotations

import functools
from io import BytesIO

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from batchpress.processing.compress import compress_image
from batchpress.processing.preview import PREVIEW_SIDE, preview_of_file
from tests.support.photos import KINDS, expected_size, make_image, photo, psnr
from tests.support.rgb_icc import wide_gamut_icc

# A product photo as shops upload it, and a portrait one: previews of both fit in PREVIEW_SIDE.
SIZES = {"landscape": (1600, 1200), "portrait": (900, 1350)}
ALPHA_KINDS = {"png_alpha", "webp_alpha"}


@functools.cache
def sample(kind: str, shape: str = "landscape") -> bytes:
    return make_image(kind, 0, SIZES[shape])


def opened(data: bytes) -> Image.Image:
    im = Image.open(BytesIO(data))
    im.load()
    return im


def fitted(size: tuple[int, int]) -> tuple[int, int]:
    scale = min(PREVIEW_SIDE / max(size), 1.0)
    return round(size[0] * scale), round(size[1] * scale)


def displayed(data: bytes, size: tuple[int, int]) -> Image.Image:
    """What a browser shows of ``data`` (upright, over white), shrunk to ``size`` for comparing with a preview."""
    im = ImageOps.exif_transpose(opened(data))
    icc = im.info.get("icc_profile")
    if im.mode == "CMYK" and icc:
        cmyk = ImageCms.ImageCmsProfile(BytesIO(icc))
        im = ImageCms.profileToProfile(im, cmyk, ImageCms.createProfile("sRGB"), outputMode="RGB") or im
    elif im.mode == "CMYK":
        im = im.convert("RGB")
    return on_white(im).resize(size, Image.Resampling.BOX)


def on_white(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")


@pytest.mark.parametrize("shape", sorted(SIZES))
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_small_upright_previews_that_look_like_it(kind: str, shape: str) -> None:
    data = sample(kind, shape)
    result = compress_image(data, quality=50, previews=True)
    assert result.previews is not None
    size = fitted(expected_size(data) if kind != "exif_rotated_jpeg" else SIZES[shape])
    for side, preview, source in (
        ("before", result.previews.before, data),
        ("after", result.previews.after, result.data),
    ):
        im = opened(preview)
        assert im.format == "WEBP", side
        assert abs(im.width - size[0]) <= 1, (side, im.size, size)
        assert abs(im.height - size[1]) <= 1, (side, im.size, size)
        assert len(preview) < 20_000, (side, len(preview))
        assert ("A" in im.mode) == (kind in ALPHA_KINDS and (side == "before" or result.format != "JPEG")), im.mode
        # Upright and the same picture: far closer to what it stands for than to the same photo turned over.
        shown = displayed(source, im.size)
        assert psnr(on_white(im), shown) > 26, side
        assert psnr(on_white(im), shown) > psnr(on_white(im), shown.transpose(Image.Transpose.ROTATE_180)) + 6
    if result.kept_original:
        assert result.previews.before == result.previews.after


def test_alpha_cut_outs_keep_their_transparency() -> None:
    result = compress_image(sample("png_alpha"), previews=True)
    assert result.previews is not None
    for preview in (result.previews.before, result.previews.after):
        alpha = np.asarray(opened(preview).getchannel("A"))
        assert (alpha == 0).mean() > 0.1
        assert (alpha == 255).mean() > 0.1


def test_a_wide_gamut_photo_has_previews_in_srgb() -> None:
    """A preview carries no profile, so browsers read it as sRGB: its pixels are the photo's, converted."""
    source = photo(1, (800, 600))
    data = encode(source, "JPEG", quality=95, icc_profile=wide_gamut_icc())
    result = compress_image(data, previews=True)
    assert result.previews is not None
    profile = ImageCms.ImageCmsProfile(BytesIO(wide_gamut_icc()))
    in_srgb = ImageCms.profileToProfile(source, profile, ImageCms.createProfile("sRGB"))
    assert in_srgb is not None
    for preview in (result.previews.before, result.previews.after):
        im = opened(preview)
        assert "icc_profile" not in im.info
        converted, unconverted = (i.resize(im.size, Image.Resampling.BOX) for i in (in_srgb, source))
        assert psnr(im.convert("RGB"), converted) > psnr(im.convert("RGB"), unconverted) + 3


def test_an_srgb_tagged_photo_is_left_as_it_is() -> None:
    result = compress_image(sample("jpeg_with_metadata"), previews=True)
    assert result.previews is not None
    assert "icc_profile" not in opened(result.previews.before).info


def test_small_images_are_not_enlarged() -> None:
    data = make_image("png", 2, (200, 150))
    result = compress_image(data, previews=True)
    assert result.previews is not None
    assert opened(result.previews.before).size == (200, 150)


@pytest.mark.parametrize(
    ("output_format", "max_dimension", "size"), [("webp", None, (320, 240)), ("avif", 800, (320, 240))]
)
def test_converted_and_shrunk_outputs_have_previews_of_what_they_became(
    output_format: str, max_dimension: int | None, size: tuple[int, int]
) -> None:
    result = compress_image(
        sample("png_alpha"), output_format=output_format, max_dimension=max_dimension, previews=True
    )
    assert result.previews is not None
    after = opened(result.previews.after)
    assert after.size == size
    assert psnr(on_white(after), displayed(result.data, size)) > 26


def test_without_previews_asked_for_none_are_made() -> None:
    assert compress_image(sample("jpeg")).previews is None


def test_a_preview_of_a_file_reads_a_large_jpeg_at_a_fraction_of_its_size() -> None:
    data = make_image("jpeg", 3, (4000, 3000))
    im = opened(preview_of_file(data, "JPEG"))
    assert im.size == (320, 240)


def encode(im: Image.Image, format: str, **params: object) -> bytes:
    out = BytesIO()
    im.save(out, format=format, **params)
    return out.getvalue()
