"""GIFs built to hurt are refused from the blocks before their first image; real GIFs pass untouched."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import pytest
from PIL import Image

from batchpress.processing.compress import ImageRejected, compress_image
from batchpress.processing.gif_blocks import MAX_EXTENSIONS, MAX_SUB_BLOCKS, gif_problem
from tests.support.photos import make_image, photo

ONE_BYTE_COMMENT = b"!\xfe\x01x\x00"


def after_header(gif: bytes, extra: bytes) -> bytes:
    """``extra`` inserted after the screen descriptor and global colour table, where extensions go."""
    flags = gif[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    return gif[:at] + extra + gif[at:]


def save(im: Image.Image, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, "GIF", **params)
    return out.getvalue()


def with_xmp(gif: bytes) -> bytes:
    """An XMP packet the way Adobe writes it: raw text read as sub-blocks, then the 258-byte "magic trailer"."""
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>' + b"<rdf:li>a keyword</rdf:li>\n" * 2000 + b"</rdf:RDF>"
    trailer = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    return after_header(gif, b"!\xff\x0bXMP DataXMP" + xmp + b"</x:xmpmeta>" + trailer)


def palette_photo() -> Image.Image:
    return photo(1, (160, 120)).convert("P", palette=Image.Palette.ADAPTIVE)


REAL_GIFS: dict[str, Callable[[], bytes]] = {
    "still": lambda: make_image("gif", 1, (160, 120)),
    "animated": lambda: make_image("animated_gif", 1, (160, 120)),
    "comment, loop and transparency": lambda: save(palette_photo(), comment=b"x" * 2000, loop=0, transparency=0),
    "xmp": lambda: with_xmp(make_image("gif", 2, (160, 120))),
    "many frames after the first": lambda: make_image("gif", 3, (64, 64))[:-1] + one_pixel_frames(100_000) + b";",
}


def one_pixel_frames(count: int) -> bytes:
    return b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00" * count


@pytest.mark.parametrize("name", list(REAL_GIFS))
def test_real_gifs_pass_and_compress(name: str) -> None:
    gif = REAL_GIFS[name]()
    assert gif_problem(gif) is None
    assert compress_image(gif).width > 0


def test_the_xmp_test_image_is_read_by_pillow_as_one_extension() -> None:
    gif = with_xmp(make_image("gif", 2, (160, 120)))
    with Image.open(io.BytesIO(gif)) as opened:
        assert opened.info["extension"][0].startswith(b"XMP DataXMP")
        assert opened.size == (160, 120)


def test_millions_of_one_byte_comments_are_refused_quickly() -> None:
    hostile = after_header(make_image("gif", 4, (64, 64)), ONE_BYTE_COMMENT * 5_000_000)  # ~5 s and 850 MB in Pillow
    started = time.monotonic()
    with pytest.raises(ImageRejected, match=f"more than {MAX_EXTENSIONS} extension blocks before its first image"):
        compress_image(hostile)
    assert time.monotonic() - started < 1


def test_one_comment_in_millions_of_pieces_is_refused_quickly() -> None:
    hostile = after_header(make_image("gif", 5, (64, 64)), b"!\xfe" + b"\x01x" * 8_000_000 + b"\x00")
    started = time.monotonic()
    with pytest.raises(ImageRejected, match=f"more than {MAX_SUB_BLOCKS} metadata sub-blocks"):
        compress_image(hostile)
    assert time.monotonic() - started < 1


def test_too_much_metadata_is_refused() -> None:
    comment = b"!\xfe" + (b"\xff" + bytes(255)) * 70_000 + b"\x00"  # ~18 MB in full-size sub-blocks
    assert "more than 16 MB of metadata" in (gif_problem(after_header(make_image("gif", 6, (64, 64)), comment)) or "")


def test_megabytes_of_stray_bytes_before_the_image_are_refused_quickly() -> None:
    hostile = after_header(make_image("gif", 7, (64, 64)), bytes(20_000_000))  # ~3 s inside Pillow
    started = time.monotonic()
    with pytest.raises(ImageRejected, match="more than 1 MB of stray bytes"):
        compress_image(hostile)
    assert time.monotonic() - started < 1


def test_a_few_stray_bytes_are_left_for_the_decoder() -> None:
    assert gif_problem(after_header(make_image("gif", 8, (64, 64)), b"\x00" * 100)) is None
