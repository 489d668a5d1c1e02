"""compress_image on real photos in every input shape, and on the hostile bytes a product feed delivers."""

from __future__ import annotations

import functools
import random
import struct
import zlib
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from batchpress.processing.compress import CompressedImage, ImageRejected, compress_image
from batchpress.processing.sniff import describe, sniff
from tests.support.photos import (
    KINDS,
    alpha_mask,
    expected_size,
    jpeg_quality,
    make_image,
    photo,
    photo_rgba,
    psnr,
    srgb_icc,
)

SIZE = (640, 480)
OUTPUT_FORMAT = {
    "png": "PNG",
    "png_alpha": "PNG",
    "webp": "WEBP",
    "webp_alpha": "WEBP",
    "animated_webp": "WEBP",
}
ALPHA_KINDS = {"png_alpha", "webp_alpha"}


@functools.cache
def sample(kind: str, index: int = 0) -> bytes:
    return make_image(kind, index, SIZE)


def decode(data: bytes) -> Image.Image:
    im = Image.open(BytesIO(data))
    im.load()
    return im


def on_white(im: Image.Image) -> Image.Image:
    """What a product page shows: the image composited over white."""
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def encode(im: Image.Image, format: str, **params: object) -> bytes:
    out = BytesIO()
    im.save(out, format=format, **params)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` over garbage pixel data that no decoder accepts."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"not zlib") + chunk(b"IEND", b"")


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_comes_out_smaller_upright_and_similar(kind: str) -> None:
    data = sample(kind)
    result = compress_image(data)

    out = decode(result.data)
    assert not result.kept_original
    assert len(result.data) < len(data)
    assert result.format == OUTPUT_FORMAT.get(kind, "JPEG") == out.format
    assert result.extension == {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[result.format]
    assert (result.width, result.height) == out.size == expected_size(data) == SIZE
    reference = photo(0, SIZE)
    if kind in ALPHA_KINDS:
        assert psnr(on_white(out), on_white(photo_rgba(0, SIZE))) > 30
    else:
        mode = "L" if out.mode == "L" else "RGB"
        assert psnr(out.convert(mode), reference.convert(mode)) > 29
    if result.format == "JPEG":
        # effort "max" picks its own tables (tests/processing/test_effort.py); "fast" writes libjpeg's at the quality.
        assert abs(jpeg_quality(compress_image(data, effort="fast").data) - 50) <= 1


@pytest.mark.parametrize("index", [0, 1], ids=["orientation-6", "orientation-8"])
def test_exif_rotation_is_applied_to_the_pixels(index: int) -> None:
    data = make_image("exif_rotated_jpeg", index, SIZE)
    assert Image.open(BytesIO(data)).size == (SIZE[1], SIZE[0])

    out = decode(compress_image(data).data)

    assert out.size == SIZE
    assert 0x0112 not in out.getexif()
    assert psnr(out, photo(index, SIZE)) > 29  # a sideways image would score ~10 dB


def test_quality_is_what_was_asked() -> None:
    assert jpeg_quality(compress_image(sample("jpeg"), quality=80, effort="fast").data) == 80
    assert jpeg_quality(compress_image(sample("bmp"), quality=30, effort="fast").data) == 30


def test_png_alpha_is_kept() -> None:
    out = decode(compress_image(sample("png_alpha")).data).convert("RGBA")
    alpha = np.asarray(out.getchannel("A"), dtype=np.int16)
    expected = np.asarray(alpha_mask(SIZE), dtype=np.int16)

    # A third of this mask is a smooth gradient, the hard case for 256 RGBA palette entries.
    assert psnr(out.getchannel("A"), alpha_mask(SIZE)) > 28
    assert np.abs(alpha - expected).mean() < 5
    assert alpha[0, 0] == 0
    assert alpha[SIZE[1] // 2, SIZE[0] // 2] == 255


def test_webp_alpha_is_kept() -> None:
    out = decode(compress_image(sample("webp_alpha")).data)
    alpha = np.asarray(out.getchannel("A"), dtype=np.int16)
    expected = np.asarray(alpha_mask(SIZE), dtype=np.int16)

    assert out.mode == "RGBA"
    assert np.abs(alpha - expected).mean() < 3


def test_cmyk_comes_out_rgb_with_the_right_colours() -> None:
    result = compress_image(sample("cmyk_jpeg"))
    out = decode(result.data)
    reference = photo(0, SIZE)

    assert out.mode == "RGB"
    assert psnr(out, reference) > 29
    mean_out = np.asarray(out, dtype=np.float64).mean(axis=(0, 1))
    mean_ref = np.asarray(reference, dtype=np.float64).mean(axis=(0, 1))
    assert np.abs(mean_out - mean_ref).max() < 3


def test_cmyk_with_a_profile_that_is_not_cmyk_ignores_it() -> None:
    data = encode(photo(0, SIZE).convert("CMYK"), "JPEG", quality=95, icc_profile=srgb_icc())
    out = decode(compress_image(data).data)

    assert out.mode == "RGB"
    assert "icc_profile" not in out.info
    assert psnr(out, photo(0, SIZE)) > 29


def test_metadata_is_stripped_but_the_icc_profile_kept() -> None:
    out = decode(compress_image(sample("jpeg_with_metadata")).data)

    assert out.info.get("icc_profile") == srgb_icc()
    assert not out.getexif()
    assert "exif" not in out.info
    assert "xmp" not in out.info
    assert "comment" not in out.info


@pytest.mark.parametrize(("format", "mode"), [("PNG", "RGB"), ("PNG", "RGBA"), ("WEBP", "RGB")])
def test_icc_profile_survives_png_and_webp(format: str, mode: str) -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    im = photo(1, SIZE) if mode == "RGB" else photo_rgba(1, SIZE)
    data = encode(im, format, icc_profile=srgb_icc(), exif=exif, **({"quality": 95} if format == "WEBP" else {}))

    out = decode(compress_image(data).data)

    assert out.info.get("icc_profile") == srgb_icc()
    assert not out.getexif()


def test_grayscale_stays_grayscale() -> None:
    assert decode(compress_image(sample("grayscale_jpeg")).data).mode == "L"
    grey = photo(2, SIZE).convert("L")
    data = encode(grey, "PNG")

    result = compress_image(data)
    out = decode(result.data)

    assert out.mode == "L"
    assert len(result.data) < 0.8 * len(data)
    assert psnr(out, grey) > 38


def test_sixteen_bit_grey_png_is_scaled_not_clipped() -> None:
    grey = np.asarray(photo(3, (320, 240)).convert("L"), dtype=np.uint16) * 257
    data = encode(Image.fromarray(grey), "PNG")

    out = decode(compress_image(data).data)

    assert out.mode == "L"
    assert abs(np.asarray(out, dtype=np.float64).mean() - grey.mean() / 257) < 2


def test_white_backgrounds_stay_pure_white() -> None:
    canvas = Image.new("RGB", (800, 600), "white")
    canvas.paste(photo(0, (400, 300)), (200, 150))
    for im in (canvas, canvas.convert("RGBA")):
        out = decode(compress_image(encode(im, "PNG")).data).convert("RGBA")
        assert out.getpixel((5, 5)) == (255, 255, 255, 255)


def test_flat_graphics_with_few_colours_are_kept_exactly() -> None:
    graphic = Image.new("RGB", (400, 300), "white")
    graphic.paste((200, 30, 30), (50, 50, 200, 250))
    graphic.paste((20, 90, 200), (220, 80, 380, 280))
    data = encode(graphic, "PNG", compress_level=1)

    result = compress_image(data)

    assert not result.kept_original
    assert np.array_equal(np.asarray(decode(result.data).convert("RGB")), np.asarray(graphic))


def test_gif_transparency_is_flattened_onto_white() -> None:
    im = photo(0, (200, 200)).convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    im.paste(255, (0, 0, 50, 50))
    data = encode(im, "GIF", transparency=255)

    out = decode(compress_image(data).data)

    assert out.format == "JPEG"
    corner = out.getpixel((20, 20))
    assert isinstance(corner, tuple)
    assert min(corner) > 245


def test_already_small_input_is_returned_unchanged() -> None:
    data = encode(photo(0, SIZE), "JPEG", quality=20)

    result = compress_image(data)

    assert result == CompressedImage(data, "JPEG", "jpg", SIZE[0], SIZE[1], kept_original=True)


def test_kept_original_keeps_the_input_type_and_oriented_size() -> None:
    tiny_gif = encode(Image.new("P", (64, 32), 3), "GIF")
    result = compress_image(tiny_gif)
    assert (result.data, result.format, result.extension, result.kept_original) == (
        tiny_gif,
        "GIF",
        "gif",
        True,
    )

    rotated = make_image("exif_rotated_jpeg", 0, (160, 120))
    result = compress_image(rotated, quality=100)
    assert result.kept_original
    assert (result.width, result.height) == (160, 120)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not an image (empty body)"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "not an image (HTML document)"),
        (b'{"error": "forbidden"}', "not an image (JSON document)"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "unsupported image format (AVIF image)"),
        (bytes(range(3, 40)), "not an image (unknown bytes 030405060708090a…)"),
    ],
    ids=["empty", "html", "json", "avif", "unknown"],
)
def test_non_images_are_rejected_with_a_clear_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRejected) as caught:
        compress_image(data)
    assert str(caught.value) == reason


@pytest.mark.parametrize("kind", ["jpeg", "png", "webp", "gif", "tiff"])
def test_truncated_images_are_rejected(kind: str) -> None:
    data = sample(kind)
    with pytest.raises(ImageRejected, match=r"^truncated or corrupt [A-Z]+: ") as caught:
        compress_image(data[: len(data) // 2])
    assert len(str(caught.value)) <= 200


def test_pixel_bomb_is_rejected_from_its_header_before_decoding() -> None:
    # The pixel data is garbage, so a decode attempt would say "corrupt" instead.
    with pytest.raises(ImageRejected, match=r"^image is 400\.0 MP, over the 50\.0 MP limit$"):
        compress_image(png_header_only(20000, 20000))
    with pytest.raises(ImageRejected, match=r"^image is 3000x3000 = 9\.0 MP, over the 1\.0 MP limit$"):
        compress_image(png_header_only(3000, 3000), max_pixels=1_000_000)


def test_pillow_bomb_warning_is_a_rejection_and_global_state_is_untouched() -> None:
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageRejected, match=r"^image is 100\.0 MP, over the 89\.5 MP limit$"):
        compress_image(png_header_only(10000, 10000), max_pixels=150_000_000)
    assert limit == Image.MAX_IMAGE_PIXELS


def test_sides_too_long_for_jpeg_are_rejected() -> None:
    data = encode(Image.new("1", (70000, 8)), "BMP")
    with pytest.raises(ImageRejected, match=r"over the JPEG limit of 65500 pixels a side"):
        compress_image(data)


def test_mangled_bytes_never_raise_anything_but_image_rejected() -> None:
    rng = random.Random(7)
    samples = {kind: make_image(kind, 0, (48, 32)) for kind in KINDS}
    reasons: list[str] = []
    for _ in range(400):
        data = bytearray(samples[rng.choice(KINDS)])
        if rng.random() < 0.3:
            data = data[: rng.randrange(1, len(data))]
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(min(len(data), 300))] = rng.randrange(256)
        try:
            result = compress_image(bytes(data))
        except ImageRejected as exc:
            reasons.append(str(exc))
        else:
            assert result.width * result.height > 0
    assert reasons
    assert all(0 < len(reason) <= 200 for reason in reasons)


def test_sniff_reads_magic_bytes_only() -> None:
    assert [sniff(sample(kind)) for kind in ("jpeg", "png", "webp", "gif", "bmp", "tiff")] == [
        "JPEG",
        "PNG",
        "WEBP",
        "GIF",
        "BMP",
        "TIFF",
    ]
    assert sniff(b"BMW is not a bitmap") is None
    assert describe(b"%PDF-1.7\n") == "PDF document"
    assert describe(b"  <svg xmlns='http://www.w3.org/2000/svg'/>") == "SVG image"
