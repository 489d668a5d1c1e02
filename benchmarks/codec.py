"""The codec limit: the service's own ``compress_image`` over files already in memory, one process per core.

No network, database, queue or disk: what is left is decoding and encoding, the most any deployment of the
service could reach on this machine. The pool is forked once, before any thread starts, and kept for the whole
benchmark: the limit is then measured again right before each end-to-end run, so that a machine whose speed
drifts between minutes (seen on shared VMs) moves both sides of the ratio together.

The same pool times plain Pillow at quality 50 (``pillow_q50``, what most implementations write), so the price
of the service's smaller outputs shows as a ratio, and scores outputs for ``benchmarks.quality``.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

from PIL import Image

from batchpress.processing.compress import compress_image
from batchpress.processing.decode import decode
from batchpress.processing.encode import icc_for
from benchmarks.corpus import Corpus
from benchmarks.quality import displayed
from benchmarks.ssimulacra2 import score

_FILES: dict[str, list[bytes]] = {}


def _save(im: Image.Image, format: str, **params: object) -> bytes:
    out = BytesIO()
    im.save(out, format=format, **params)
    return out.getvalue()


def service(data: bytes) -> bytes:
    """What a pool process does with an image by default, previews included."""
    return compress_image(data, quality=50, previews=True).data


def pillow_q50(data: bytes) -> bytes:
    """Plain Pillow at quality 50 (4:2:0, standard tables) in the input's format, of the same pixels the service
    encodes: upright, CMYK through its profile, grey kept, the colour profile written; PNG lossless with
    ``optimize=True``. Left as CMYK, a CMYK JPEG would be a different file for browsers that draw it wrongly."""
    with Image.open(BytesIO(data)) as opened:
        fmt = str(opened.format)
        pixels, icc = decode(opened, data)
    if fmt == "PNG":
        return _save(pixels, "PNG", optimize=True)
    return _save(pixels, fmt, quality=50, icc_profile=icc_for(pixels.mode, icc))


def octree_palette(data: bytes) -> bytes:
    """The PNG output before issue 21, which ``effort=fast`` still writes: the octree palette without oxipng."""
    return compress_image(data, quality=50, effort="fast").data


ENCODERS: dict[str, Callable[[bytes], bytes]] = {"service": service, "pillow_q50": pillow_q50}


def _load(files: dict[str, list[bytes]]) -> None:
    _FILES.update(files)


def _compress(job: tuple[str, str, int]) -> tuple[int, int]:
    encoder, name, index = job
    return index, len(ENCODERS[encoder](_FILES[name][index]))


@dataclass(frozen=True)
class Graded:
    """One image's outputs against its source: bytes and SSIMULACRA2 per encoder."""

    index: int
    format: str  # the source's
    bytes: dict[str, int]
    scores: dict[str, float]


def _grade(job: tuple[str, int, bytes]) -> Graded:
    """The service's output (from the end-to-end run) and the references on one image, all scored."""
    name, index, output = job
    source = _FILES[name][index]
    with Image.open(BytesIO(source)) as im:
        fmt = str(im.format)
    # Pillow's PNG is lossless: it shows the source's own pixels, 100 by definition; encoding it again costs ~0.5 s.
    references = {"octree_palette": octree_palette} if fmt == "PNG" else {"pillow_q50": pillow_q50}
    outputs = {"service": output, **{key: encode(source) for key, encode in references.items()}}
    shown = displayed(source)
    scores = {key: score(shown, displayed(data)) for key, data in outputs.items()}
    return Graded(index, fmt, {key: len(data) for key, data in outputs.items()}, scores)


class CodecPool:
    """``processes`` processes holding every set's files; ``run(name)`` times one pass over a set."""

    def __init__(self, sets: list[Corpus], processes: int) -> None:
        self.sizes = {c.name: len(c.photos) for c in sets}
        # The last pass's output bytes per image, by (encoder, set).
        self.output_bytes: dict[tuple[str, str], list[int]] = {}
        files = {c.name: [p.data for p in c.photos] for c in sets}
        self._pool = multiprocessing.get_context("fork").Pool(processes, initializer=_load, initargs=(files,))
        # One image per process and encoder first, so imports and the codecs' first-call set-up are not timed.
        first = next(iter(self.sizes))
        warm = [(encoder, first, i % self.sizes[first]) for encoder in ENCODERS for i in range(processes)]
        self._pool.map(_compress, warm, chunksize=1)

    def run(self, name: str, encoder: str = "service") -> float:
        """Seconds to compress the whole set once with ``encoder`` (a key of ``ENCODERS``)."""
        sizes = [0] * self.sizes[name]
        started = time.perf_counter()
        jobs = [(encoder, name, i) for i in range(self.sizes[name])]
        for index, size in self._pool.imap_unordered(_compress, jobs, chunksize=1):
            sizes[index] = size
        seconds = time.perf_counter() - started
        self.output_bytes[encoder, name] = sizes
        return seconds

    def grade(self, name: str, outputs: dict[int, bytes]) -> list[Graded]:
        """Score the service's ``outputs`` (by index into set ``name``) and the references on the same images."""
        jobs = [(name, index, data) for index, data in sorted(outputs.items())]
        return self._pool.map(_grade, jobs, chunksize=1)

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()

    def __enter__(self) -> CodecPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
