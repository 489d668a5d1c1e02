"""The benchmark's images: scikit-image's real photos (through ``tests.support.photos``) cropped and rescaled to
product-photo sizes, generated at run time from a seed and never committed.

Two sets share their JPEGs: ``jpeg`` (JPEG only) and ``mixed`` (about 70 % JPEG, 15 % PNG, 15 % WebP). The JPEGs
are a web mix (``WEB_MIX``): sources of quality 75-95, about 15 % progressive, a tenth EXIF-rotated, some grey and
CMYK (with and without a profile), some 4:4:4 and some sRGB-tagged; a fifth are 0.3-1 MP, three fifths 1-4 MP and
a fifth 4-12 MP. PNGs (half with an alpha cut-out) are 0.25-0.6 MP and WebPs 0.5-2 MP, web-sized as those formats
usually are; larger PNGs would blow the time budget, as the naive baseline's PNG ``optimize=True`` (zlib level 9)
took 0.6 s for 0.5 MP and 2.2 s for 1 MP here.
"""

from __future__ import annotations

import math
import multiprocessing
import random
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import TypeVar

from PIL import Image

from benchmarks.origin import Origin
from tests.support.photos import JpegStyle, make_image, photo, tagged, web_jpeg

ASPECTS = (4 / 3, 3 / 4, 1.0, 3 / 2, 2 / 3, 16 / 9)
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
T = TypeVar("T")


@dataclass(frozen=True)
class Spec:
    kind: str  # a tests.support.photos kind
    index: int  # which source photo (and which frame of variety)
    size: tuple[int, int]  # as displayed, after EXIF orientation
    style: JpegStyle | None = None  # a web JPEG of this style instead of ``kind``

    @property
    def label(self) -> str:
        return f"jpeg-{self.style.label}" if self.style else self.kind


@dataclass(frozen=True)
class WebMix:
    """Shares of the web's JPEGs, drawn independently per image (colours: the rest is RGB)."""

    progressive: float = 0.15
    orientations: tuple[tuple[int, float], ...] = ((6, 0.05), (8, 0.03), (3, 0.02))
    colours: tuple[tuple[str, float], ...] = (("grey", 0.06), ("cmyk", 0.03), ("cmyk_icc", 0.03))
    subsampling_444: float = 0.2  # of colour images
    srgb_tagged: float = 0.25  # of RGB images
    quality: tuple[int, int] = (75, 95)
    sizes: tuple[tuple[tuple[float, float], float], ...] = (((0.3, 1.0), 0.2), ((4.0, 12.0), 0.2))  # MP
    usual_size: tuple[float, float] = (1.0, 4.0)


WEB_MIX = WebMix()


@dataclass(frozen=True)
class Photo:
    path: str  # where the origin serves it
    format: str  # "JPEG" | "PNG" | "WEBP"
    data: bytes
    width: int  # as displayed
    height: int
    style: JpegStyle | None = None  # how a web JPEG was written

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


@dataclass(frozen=True)
class Corpus:
    name: str
    photos: tuple[Photo, ...]

    @property
    def megapixels(self) -> float:
        return sum(p.megapixels for p in self.photos)

    def describe(self) -> dict[str, object]:
        formats = sorted({p.format for p in self.photos})
        return {
            "images": len(self.photos),
            "megapixels": round(self.megapixels, 1),
            "input_megabytes": round(sum(len(p.data) for p in self.photos) / 1e6, 1),
            "by_format": {f: sum(p.format == f for p in self.photos) for f in formats},
            "largest_megapixels": round(max(p.megapixels for p in self.photos), 1),
            "jpeg_styles": self.jpeg_styles(),
        }

    def jpeg_styles(self) -> dict[str, int]:
        """How many of the web JPEGs have each trait."""
        styles = [p.style for p in self.photos if p.style is not None]
        traits = {
            "progressive": lambda s: s.progressive,
            "exif-rotated": lambda s: s.orientation != 1,
            "grey": lambda s: s.colour == "grey",
            "cmyk": lambda s: s.colour == "cmyk",
            "cmyk+icc": lambda s: s.colour == "cmyk_icc",
            "4:4:4": lambda s: s.subsampling == "4:4:4",
            "srgb-tagged": lambda s: s.srgb_tagged,
        }
        return {name: sum(map(trait, styles)) for name, trait in traits.items()}


def _size(rng: random.Random, low_mp: float, high_mp: float) -> tuple[int, int]:
    aspect = rng.choice(ASPECTS)
    pixels = rng.uniform(low_mp, high_mp) * 1e6
    width = round(math.sqrt(pixels * aspect))
    return width, round(width / aspect)


def _pick(rng: random.Random, shares: tuple[tuple[T, float], ...], rest: T) -> T:
    draw, total = rng.random(), 0.0
    for value, share in shares:
        total += share
        if draw < total:
            return value
    return rest


def web_jpeg_spec(rng: random.Random, index: int, scale: float, mix: WebMix = WEB_MIX) -> Spec:
    low, high = _pick(rng, mix.sizes, mix.usual_size)
    size = _size(rng, low * scale, high * scale)
    colour = _pick(rng, mix.colours, "rgb")
    style = JpegStyle(
        quality=rng.randint(*mix.quality),
        progressive=rng.random() < mix.progressive,
        orientation=_pick(rng, mix.orientations, 1),
        colour=colour,
        subsampling="4:4:4" if colour != "grey" and rng.random() < mix.subsampling_444 else "4:2:0",
        srgb_tagged=colour == "rgb" and rng.random() < mix.srgb_tagged,
    )
    return Spec("jpeg", index, size, style)


def plan(jpegs: int, mixed: int, seed: int, *, scale: float = 1.0) -> tuple[list[Spec], list[Spec]]:
    """Specs of the JPEG set and of the extra PNGs and WebPs of the mixed set. ``scale`` shrinks every image
    (by area) for smoke runs."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible corpus, not a secret)
    jpeg_specs = [web_jpeg_spec(rng, i, scale) for i in range(jpegs)]
    others = []
    pngs = round(mixed * 0.15)
    webps = round(mixed * 0.15)
    for i in range(pngs):
        others.append(Spec("png_alpha" if i % 2 else "png", i, _size(rng, 0.25 * scale, 0.6 * scale)))
    for i in range(webps):
        others.append(Spec("webp", i + 2, _size(rng, 0.5 * scale, 2.0 * scale)))
    return jpeg_specs, others


def _render(spec: Spec) -> bytes:
    if spec.style is not None:
        return web_jpeg(photo(spec.index, spec.size), spec.style)
    return make_image(spec.kind, spec.index, spec.size)


def _photo(spec: Spec, data: bytes, number: int) -> Photo:
    with Image.open(BytesIO(data)) as im:
        fmt = str(im.format)
    return Photo(f"/corpus/{number:04d}-{spec.label}.{EXTENSIONS[fmt]}", fmt, data, *spec.size, spec.style)


def build(jpegs: int, mixed: int, seed: int, *, scale: float = 1.0) -> tuple[Corpus, Corpus]:
    """Render both sets with one process per core; the mixed set is its PNGs and WebPs plus enough of the JPEG
    set's files to make up ``mixed`` images, shuffled."""
    jpeg_specs, other_specs = plan(jpegs, mixed, seed, scale=scale)
    specs = jpeg_specs + other_specs
    with multiprocessing.get_context("fork").Pool() as pool:
        rendered = pool.map(_render, specs, chunksize=1)
    photos = [_photo(spec, data, n) for n, (spec, data) in enumerate(zip(specs, rendered, strict=True))]
    jpeg_set = photos[:jpegs]
    rng = random.Random(seed + 1)  # noqa: S311 (a reproducible order, not a secret)
    mixed_photos = jpeg_set[: max(0, mixed - len(other_specs))] + photos[jpegs:]
    rng.shuffle(mixed_photos)
    return Corpus("jpeg", tuple(jpeg_set)), Corpus("mixed", tuple(mixed_photos))


def serve(server: Origin, corpus: Corpus, copy: int = 0) -> list[str]:
    """Register the corpus on the origin (``copy`` > 0 adds it again under other paths, as other bytes: the service
    would reuse the first copy's outputs otherwise) and return URLs."""
    prefix = f"/copy{copy}" if copy else ""
    return [
        server.add(prefix + p.path, tagged(p.data, f"copy {copy}") if copy else p.data, CONTENT_TYPES[p.format])
        for p in corpus.photos
    ]


def products_csv(urls: Sequence[str], seed: int = 0) -> str:
    """One to three images a product, in the order given."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible grouping, not a secret)
    lines = ["S. No.,Product Name,Input Image Urls"]
    start = 0
    while start < len(urls):
        take = rng.randint(1, 3)
        serial = len(lines)
        lines.append(f'{serial},Product {serial},"{",".join(urls[start : start + take])}"')
        start += take
    return "\n".join(lines) + "\n"
