"""JPEG takes two routes through compress_image: simplejpeg for upright RGB and grey files, Pillow for the rest.

A user must not be able to tell which one ran: at ``effort="fast"`` the same tables, subsampling and kept profile
(``effort="max"`` is in test_effort.py), and files that libjpeg decodes only with a warning are still compressed
rather than refused.
"""

from __future__ import annotations

from io import BytesIO

import pytest
import simplejpeg
from PIL import Image

from batchpress.processing.compress import compress_image
from batchpress.processing.formats import EFFORTS
from tests.support.photos import jpeg_quality, make_image, photo, psnr, srgb_icc

SIZE = (640, 480)


def encode(im: Image.Image, **params: object) -> bytes:
    out = BytesIO()
    im.save(out, format="JPEG", **params)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    im = Image.open(BytesIO(data))
    im.load()
    return im


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_plain_jpeg_matches_what_pillow_writes(mode: str) -> None:
    source = photo(1, SIZE).convert(mode)
    data = encode(source, quality=95)
    pillow = encode(decode(data), quality=50, subsampling="4:2:0")

    result = compress_image(data, effort="fast")
    out = decode(result.data)

    assert (result.format, out.format, out.mode, out.size) == ("JPEG", "JPEG", mode, SIZE)
    assert not out.info.get("progressive")
    assert jpeg_quality(result.data) == 50
    if mode == "RGB":  # 4:2:0: luma sampled 2x2, chroma 1x1 (a lone grey component's factor means nothing)
        assert [layer[1:3] for layer in out.layer] == [(2, 2), (1, 1), (1, 1)]
    assert abs(len(result.data) - len(pillow)) < 0.02 * len(pillow)
    assert psnr(out, decode(pillow)) > 45
    assert psnr(out, source) > 29


def test_icc_profile_longer_than_one_jpeg_segment_survives() -> None:
    profile = srgb_icc() + bytes(150_000)  # keeps the RGB header; three APP2 segments
    data = encode(photo(0, SIZE), quality=95, icc_profile=profile)

    out = decode(compress_image(data).data)

    assert out.info.get("icc_profile") == profile
    assert psnr(out, photo(0, SIZE)) > 29


def test_jpeg_libjpeg_decodes_only_with_a_warning_is_still_compressed() -> None:
    clean = make_image("jpeg", 2, SIZE)
    data = clean[:-2] + bytes(64) + clean[-2:]  # junk before the end marker: "extraneous bytes" warning
    with pytest.raises(ValueError, match="extraneous bytes"):
        simplejpeg.decode_jpeg(data)

    for effort in EFFORTS:
        result = compress_image(data, effort=effort)

        assert (result.format, result.kept_original) == ("JPEG", False)
        assert psnr(decode(result.data), photo(2, SIZE)) > 29
    assert jpeg_quality(compress_image(data, effort="fast").data) == 50


def test_kept_original_and_requested_jpeg_on_the_fast_route() -> None:
    small = encode(photo(0, SIZE), quality=20)

    assert compress_image(small).kept_original
    forced = compress_image(small, output_format="jpeg", effort="fast")
    assert (forced.kept_original, forced.format, jpeg_quality(forced.data)) == (False, "JPEG", 50)
