"""Pillow's fast octree quantisation, computed band by band so a 50 MP image needs no copies of itself.

``Image.quantize(method=FASTOCTREE)`` copies the whole image into an array of pixels and keeps a 4-byte index per
pixel beside it: 9 bytes a pixel on top of the image, 450 MB at 50 MP. Yet its palette depends only on a histogram
(count and colour sums of each bucket of a fixed colour cube), and each pixel's index only on its bucket. So this
module builds the same histogram from bands of rows, replays Pillow's palette construction (libImaging's
``QuantOctree.c``, step for step) on a few thousand buckets, and maps each band through the bucket-to-index table:
the same palette and the same indices, for a few megabytes beside the image.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from PIL import Image

# Rows read at a time: small arrays even for the widest image, few enough bands to cost no time.
BAND_ROWS = 256

# Bits per channel (r, g, b, a) of the fine and coarse colour cubes, as in QuantOctree.c.
_FINE = {False: (4, 4, 4, 0), True: (3, 4, 3, 3)}
_COARSE = {False: (2, 2, 2, 0), True: (2, 2, 2, 2)}

Ints = npt.NDArray[np.int64]


def quantize_octree(im: Image.Image, colors: int = 256) -> Image.Image:
    """What ``im.quantize(colors, method=Image.Quantize.FASTOCTREE)`` returns, for an RGB or RGBA ``im``."""
    if im.mode not in ("RGB", "RGBA") or not 64 <= colors <= 256:
        raise ValueError(f"banded octree quantisation takes RGB or RGBA and 64-256 colours, not {im.mode}/{colors}")
    alpha = im.mode == "RGBA"
    fine, coarse = _FINE[alpha], _COARSE[alpha]
    counts = np.zeros(1 << sum(fine), np.int64)
    sums = np.zeros((4, counts.size), np.int64)
    for _, pixels in _bands(im):
        index = _bucket(pixels, fine)
        counts += np.bincount(index, minlength=counts.size)
        for channel in range(3 + alpha):
            sums[channel] += np.rint(np.bincount(index, pixels[:, channel], counts.size)).astype(np.int64)
    if not alpha:
        sums[3] = counts * 255

    palette, lookup = _palette_and_lookup(counts, sums, fine, coarse, colors)
    indices = lookup.astype(np.uint8)
    out = Image.new("P", im.size)
    for top, pixels in _bands(im):
        band = np.take(indices, _bucket(pixels, fine))
        out.paste(Image.frombytes("P", (im.width, band.size // im.width), band.tobytes()), (0, top))
    mode = "RGBA" if alpha else "RGB"
    out.putpalette(palette[:, : len(mode)].astype(np.uint8).tobytes(), mode)
    return out


def _bands(im: Image.Image) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Each band's top row and its pixels as (n, 3) RGB or (n, 4) RGBA, where, as in QuantOctree, every fully
    transparent pixel takes the colour of the first one in the image."""
    first: npt.NDArray[np.uint8] | None = None
    channels = len(im.mode)
    for top in range(0, im.height, BAND_ROWS):
        band = np.asarray(im.crop((0, top, im.width, min(top + BAND_ROWS, im.height))))
        pixels = band.reshape(-1, channels)
        if channels == 4:
            clear = np.flatnonzero(pixels[:, 3] == 0)
            if clear.size:
                pixels = pixels.copy()
                if first is None:
                    first = pixels[clear[0], :3].copy()
                pixels[clear, :3] = first
        yield top, pixels


def _offsets(bits: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    _, g, b, a = bits
    return g + b + a, b + a, a, 0


def _bucket(pixels: npt.NDArray[np.uint8], bits: tuple[int, int, int, int]) -> npt.NDArray[np.uint16]:
    """Each pixel's (or colour's) bucket in a cube of ``bits`` per channel: ``color_bucket_offset``."""
    index = np.zeros(len(pixels), np.uint16)
    for channel, (width, offset) in enumerate(zip(bits, _offsets(bits), strict=True)):
        if width and channel < pixels.shape[1]:
            index |= (pixels[:, channel] >> (8 - width)).astype(np.uint16) << offset
    return index


def _averages(counts: Ints, sums: Ints) -> npt.NDArray[np.uint8]:
    """``avg_color_from_color_bucket``: sums over a float count, in single precision, truncated; 0 when empty."""
    safe = np.where(counts == 0, 1, counts).astype(np.float32)
    means = (sums.astype(np.float32) / safe).astype(np.int64)
    return np.where(counts == 0, 0, np.clip(means, 0, 255)).T.astype(np.uint8)


def _shrink(
    counts: Ints, sums: Ints, fine: tuple[int, int, int, int], coarse: tuple[int, int, int, int]
) -> tuple[Ints, Ints]:
    """``copy_color_cube`` to fewer bits: each fine bucket added into the coarse bucket holding it."""
    fine_pos = np.arange(counts.size)
    target = np.zeros(counts.size, np.int64)
    for (width, offset), (narrow, narrow_offset) in zip(
        zip(fine, _offsets(fine), strict=True), zip(coarse, _offsets(coarse), strict=True), strict=True
    ):
        component = (fine_pos >> offset) & ((1 << width) - 1)
        target |= (component >> (width - narrow)) << narrow_offset
    size = 1 << sum(coarse)
    coarse_counts = np.bincount(target, counts, size).astype(np.int64)
    coarse_sums = np.stack([np.bincount(target, s, size) for s in sums]).astype(np.int64)
    return coarse_counts, coarse_sums


def _sorted(counts: Ints) -> Ints:
    """``create_sorted_color_palette``: most pixels first; glibc's qsort of this size is a stable merge sort."""
    return np.argsort(-counts, kind="stable")


def _palette_and_lookup(
    counts: Ints, sums: Ints, fine: tuple[int, int, int, int], coarse: tuple[int, int, int, int], colors: int
) -> tuple[npt.NDArray[np.uint8], Ints]:
    """The palette (``colors`` RGBA rows) and each fine bucket's palette index, as ``quantize_octree`` builds them."""
    coarse_counts, coarse_sums = _shrink(counts, sums, fine, coarse)
    n_coarse = min(int(np.count_nonzero(coarse_counts)), colors)
    n_fine = colors - n_coarse
    fine_order = _sorted(counts)
    fine_colours = _averages(counts[fine_order], sums[:, fine_order])
    fine_in_coarse = _bucket(fine_colours, coarse)

    def subtract(start: int, stop: int) -> None:
        for i in range(start, stop):
            bucket = fine_order[i]
            if counts[bucket]:
                coarse_counts[fine_in_coarse[i]] -= counts[bucket]
                coarse_sums[:, fine_in_coarse[i]] -= sums[:, bucket]

    subtract(0, n_fine)
    while n_coarse > (used := int(np.count_nonzero(coarse_counts))):
        already = n_fine
        n_coarse, n_fine = used, colors - used
        subtract(already, n_fine)

    coarse_order = _sorted(coarse_counts)[:n_coarse]
    palette_counts = np.concatenate([coarse_counts[coarse_order], counts[fine_order[:n_fine]]])
    palette_sums = np.concatenate([coarse_sums[:, coarse_order], sums[:, fine_order[:n_fine]]], axis=1)
    palette = _averages(palette_counts, palette_sums)

    coarse_lookup = np.zeros(1 << sum(coarse), np.int64)
    for i in range(n_coarse - 1, -1, -1):
        coarse_lookup[_bucket(palette[i : i + 1], coarse)[0]] = i
    lookup = _expand(coarse_lookup, coarse, fine)
    for i in range(n_coarse + n_fine - 1, n_coarse - 1, -1):
        lookup[_bucket(palette[i : i + 1], fine)[0]] = i
    return palette, lookup


def _expand(values: Ints, coarse: tuple[int, int, int, int], fine: tuple[int, int, int, int]) -> Ints:
    """``copy_color_cube`` to more bits: every fine bucket takes the value of the coarse bucket holding it."""
    fine_pos = np.arange(1 << sum(fine))
    source = np.zeros(fine_pos.size, np.int64)
    for (width, offset), (narrow, narrow_offset) in zip(
        zip(fine, _offsets(fine), strict=True), zip(coarse, _offsets(coarse), strict=True), strict=True
    ):
        component = (fine_pos >> offset) & ((1 << width) - 1)
        source |= (component >> (width - narrow)) << narrow_offset
    return values[source].copy()
