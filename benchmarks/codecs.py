"""Which codec path, per format, by measurement: speed per core, output size and quality of every candidate.

Run with ``make bench-codecs`` (``python -m benchmarks.codecs``; ``--quick`` for a smoke run on a tiny corpus).
It builds the benchmark corpus (``benchmarks.corpus.build``), splits it into JPEG, PNG, PNG with alpha and WebP
groups plus the whole mixed set, and times every candidate of a group over all its images in one process, with
libvips and oxipng held to one thread, so the figures are per core: they are CPU seconds of the process, which other
work on a shared machine disturbs far less than the clock (the JSON keeps both). Candidates run interleaved, in a
rotated order each repeat, so the noise left hits them all alike; each figure is the median of ``--repeats`` runs.
Size is the output's bytes over the input's, and each candidate's total bytes over the group's reference (Pillow
quality 50 for JPEG and WebP, today's octree palette for PNG); quality is SSIMULACRA2 (``benchmarks.ssimulacra2``:
median, 10th percentile, and the worst per-image difference from the reference's score) against the decoded input,
composited over white where there is alpha, since that is what a product page shows. It prints one table and writes
``bench-results/codecs.json`` with every run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from io import BytesIO
from pathlib import Path

import imagequant
import mozjpeg_lossless_optimization
import numpy as np
import oxipng
import pyjpegli
import pyvips
from PIL import Image, ImageOps

from batchpress.processing.compress import compress_image
from batchpress.processing.encode import Effort
from batchpress.processing.jpeg_small import jpegli_quality
from benchmarks.corpus import Photo, build
from benchmarks.quality import displayed, score_bytes
from benchmarks.report import machine

Encode = Callable[[bytes], bytes | None]  # None: the candidate only decodes


@dataclass(frozen=True)
class Candidate:
    name: str
    run: Encode


@dataclass
class Result:
    group: str
    candidate: str
    images: int
    megapixels: float
    runs: list[float]  # CPU seconds of this process for the whole group, one per repeat
    wall_runs: list[float]  # the same runs by the clock, which other work on the machine stretches
    size_ratio: float | None = None  # output bytes / input bytes, summed over the group
    bytes_ratio: float | None = None  # output bytes / the group's reference candidate's, summed over the group
    scores: list[float] = field(default_factory=list)  # SSIMULACRA2 per image, in the group's order
    worst_delta: float | None = None  # the lowest per-image score minus the reference's for that image
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return statistics.median(self.runs)

    def as_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "median_seconds": self.seconds,
            "mp_per_s": self.megapixels / self.seconds,
            "images_per_s": self.images / self.seconds,
        }


def _open(data: bytes) -> Image.Image:
    im = Image.open(BytesIO(data))
    im.load()
    return im


def _save(im: Image.Image, format: str, **params: object) -> bytes:
    out = BytesIO()
    im.save(out, format=format, **params)
    return out.getvalue()


def _vips(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "", access="sequential")


def _service(effort: Effort) -> Encode:
    return lambda data: compress_image(data, quality=50, effort=effort).data


def _pil_decode(data: bytes) -> None:
    _open(data)


def _vips_decode(data: bytes) -> None:
    _vips(data).copy_memory()


def _naive(data: bytes) -> bytes:
    """What the naive baseline's worker does to each image (``benchmarks.naive``), in memory."""
    with Image.open(BytesIO(data)) as im:
        fmt = str(im.format)
        return _save(im, fmt, **({"optimize": True} if fmt == "PNG" else {"quality": 50}))


def _pil_jpeg(**params: object) -> Encode:
    return lambda data: _save(_upright_rgb(data), "JPEG", quality=50, **params)


def _pil_jpeg_mozjpeg_lossless(data: bytes) -> bytes:
    return bytes(mozjpeg_lossless_optimization.optimize(_save(_upright_rgb(data), "JPEG", quality=50)))


def _upright_rgb(data: bytes) -> Image.Image:
    """Upright pixels, grey kept, CMYK through its profile as a browser shows it (as the service converts it):
    every JPEG encoder here starts from the same pixels, so they differ only in how they encode them."""
    im = ImageOps.exif_transpose(_open(data))
    return displayed(data) if im.mode == "CMYK" else im if im.mode in ("RGB", "L") else im.convert("RGB")


def _vips_pixels(data: bytes) -> pyvips.Image:
    im = _upright_rgb(data)
    bands = len(im.getbands())
    image = pyvips.Image.new_from_memory(im.tobytes(), im.width, im.height, bands, "uchar")
    return image.copy(interpretation="srgb" if bands == 3 else "b-w")


def _jpegli(quality: int, lossless: bool) -> Encode:
    """pyjpegli writes RGB only: grey is spread to three channels here, which the service does not do."""

    def run(data: bytes) -> bytes:
        im = _upright_rgb(data).convert("RGB")
        out = pyjpegli.encode(im.tobytes(), im.width, im.height, quality)
        return bytes(mozjpeg_lossless_optimization.optimize(out)) if lossless else out

    return run


def _vips_mozjpeg(quality: int) -> Encode:
    """mozjpeg's own encoder (libvips' build): trellis quantisation, its default tables, progressive."""
    return lambda data: bytes(
        _vips_pixels(data).jpegsave_buffer(
            Q=quality, optimize_coding=True, trellis_quant=True, overshoot_deringing=True, quant_table=3, keep="icc"
        )
    )


def _vips_jpeg(optimize: bool) -> Encode:
    return lambda data: bytes(_vips_pixels(data).jpegsave_buffer(Q=50, optimize_coding=optimize, keep="none"))


def _rgb_or_rgba(data: bytes) -> Image.Image:
    im = _open(data)
    return im.convert("RGBA" if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info else "RGB")


def _octree(then_oxipng: bool) -> Encode:
    def run(data: bytes) -> bytes:
        palette = _rgb_or_rgba(data).quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        out = _save(palette, "PNG", compress_level=6)
        return bytes(oxipng.optimize_from_memory(out, level=2)) if then_oxipng else out

    return run


def _imagequant(quality: int, dither: float) -> Encode:
    def run(data: bytes) -> bytes:
        im = _rgb_or_rgba(data)
        palette = imagequant.quantize_pil_image(im, dithering_level=dither, max_quality=quality)
        return _save(palette, "PNG", compress_level=6)

    return run


def _vips_png(quality: int, effort: int, dither: float, oxipng_level: int = 0) -> Encode:
    def run(data: bytes) -> bytes:
        out = bytes(
            _vips(data).pngsave_buffer(palette=True, Q=quality, effort=effort, dither=dither, compression=6, keep="icc")
        )
        return bytes(oxipng.optimize_from_memory(out, level=oxipng_level)) if oxipng_level else out

    return run


def _pil_webp(method: int) -> Encode:
    return lambda data: _save(_rgb_or_rgba(data), "WEBP", quality=50, method=method)


def _vips_webp(effort: int) -> Encode:
    return lambda data: bytes(_vips(data).webpsave_buffer(Q=50, effort=effort, keep="icc"))


SERVICE = Candidate("service compress_image", _service("max"))
SERVICE_FAST = Candidate("service effort=fast", _service("fast"))
PIL_DECODE = Candidate("Pillow decode only", _pil_decode)
VIPS_DECODE = Candidate("pyvips decode only", _vips_decode)
OCTREE = "Pillow FASTOCTREE 256"
PILLOW_Q50 = "Pillow quality=50 = naive"
SERVICE_JPEGLI = jpegli_quality(50)

CANDIDATES: dict[str, list[Candidate]] = {
    "JPEG": [
        Candidate(PILLOW_Q50, _pil_jpeg()),
        SERVICE,
        SERVICE_FAST,
        PIL_DECODE,
        Candidate("Pillow quality=50 optimize", _pil_jpeg(optimize=True)),
        Candidate("Pillow quality=50 progressive optimize", _pil_jpeg(optimize=True, progressive=True)),
        Candidate("Pillow q50 + mozjpeg lossless (progressive)", _pil_jpeg_mozjpeg_lossless),
        Candidate("jpegli quality=50", _jpegli(50, lossless=False)),
        Candidate(f"jpegli quality={SERVICE_JPEGLI}", _jpegli(SERVICE_JPEGLI, lossless=False)),
        Candidate(f"jpegli quality={SERVICE_JPEGLI} + mozjpeg lossless", _jpegli(SERVICE_JPEGLI, lossless=True)),
        Candidate("mozjpeg trellis Q=60 (libvips)", _vips_mozjpeg(60)),
        VIPS_DECODE,
        Candidate("pyvips jpegsave Q=50 optimize_coding", _vips_jpeg(optimize=True)),
    ],
    "PNG": [
        Candidate(OCTREE, _octree(then_oxipng=False)),
        SERVICE,
        SERVICE_FAST,
        PIL_DECODE,
        Candidate("Pillow lossless optimize=True = naive", _naive),
        Candidate("Pillow FASTOCTREE 256 + oxipng -o2", _octree(then_oxipng=True)),
        Candidate("imagequant 2.15 (GPL) q100 no dither", _imagequant(100, 0.0)),
        Candidate("imagequant 2.15 (GPL) q60 dither", _imagequant(60, 1.0)),
        Candidate("libvips palette (liq 2.4) Q=65 effort=1", _vips_png(65, 1, 0.0)),
        Candidate("libvips palette Q=65 effort=1 + oxipng -o1", _vips_png(65, 1, 0.0, oxipng_level=1)),
        Candidate("libvips palette Q=50 effort=1 + oxipng -o2", _vips_png(50, 1, 0.0, oxipng_level=2)),
        Candidate("libvips palette Q=65 dither=1 + oxipng -o1", _vips_png(65, 1, 1.0, oxipng_level=1)),
    ],
    "WEBP": [
        Candidate("Pillow quality=50 method=4 = naive", _pil_webp(4)),
        SERVICE,
        SERVICE_FAST,
        PIL_DECODE,
        Candidate("Pillow quality=50 method=2", _pil_webp(2)),
        Candidate("Pillow quality=50 method=5", _pil_webp(5)),
        Candidate("Pillow quality=50 method=6", _pil_webp(6)),
        Candidate("pyvips webpsave Q=50 effort=4", _vips_webp(4)),
    ],
    "mixed": [SERVICE, SERVICE_FAST, Candidate("naive baseline's codec work", _naive)],
}
CANDIDATES["PNG alpha"] = CANDIDATES["PNG"]


@dataclass(frozen=True)
class Sizes:
    jpegs: int
    mixed: int  # 15 % PNG (half with alpha), 15 % WebP, the rest JPEG
    scale: float
    repeats: int


FULL = Sizes(48, 66, 1.0, 5)
QUICK = Sizes(3, 14, 0.05, 1)


def groups(photos_jpeg: tuple[Photo, ...], photos_mixed: tuple[Photo, ...]) -> dict[str, list[Photo]]:
    def has_alpha(photo: Photo) -> bool:
        with Image.open(BytesIO(photo.data)) as im:
            return im.mode in ("RGBA", "LA")

    pngs = [p for p in photos_mixed if p.format == "PNG"]
    return {
        "JPEG": list(photos_jpeg),
        "PNG": [p for p in pngs if not has_alpha(p)],
        "PNG alpha": [p for p in pngs if has_alpha(p)],
        "WEBP": [p for p in photos_mixed if p.format == "WEBP"],
        "mixed": list(photos_mixed),
    }


def time_group(name: str, photos: list[Photo], candidates: list[Candidate], repeats: int) -> list[Result]:
    """Seconds per candidate for the whole group, candidates rotated each repeat; keeps the last outputs."""
    files = [p.data for p in photos]
    megapixels = sum(p.megapixels for p in photos)
    for candidate in candidates:  # first calls load libraries and build tables
        candidate.run(files[0])
    runs: dict[str, list[float]] = {c.name: [] for c in candidates}
    wall_runs: dict[str, list[float]] = {c.name: [] for c in candidates}
    outputs: dict[str, list[bytes | None]] = {}
    for repeat in range(repeats):
        shift = repeat % len(candidates)
        for candidate in candidates[shift:] + candidates[:shift]:
            started, started_cpu = time.perf_counter(), time.process_time()
            produced = [candidate.run(data) for data in files]
            runs[candidate.name].append(time.process_time() - started_cpu)
            wall_runs[candidate.name].append(time.perf_counter() - started)
            outputs[candidate.name] = produced
    results = []
    for candidate in candidates:
        result = Result(name, candidate.name, len(files), megapixels, runs[candidate.name], wall_runs[candidate.name])
        produced = outputs[candidate.name]
        if all(out is not None for out in produced):
            judge(result, files, [out for out in produced if out is not None])
        results.append(result)
    relate(results[0], results)
    return results


def judge(result: Result, inputs: list[bytes], outputs: list[bytes]) -> None:
    result.size_ratio = sum(map(len, outputs)) / sum(map(len, inputs))
    result.extra["output_bytes"] = [len(out) for out in outputs]
    try:
        result.scores = [score_bytes(data, out) for data, out in zip(inputs, outputs, strict=True)]
    except ValueError as exc:  # a candidate that drops the EXIF orientation turns images sideways: no score
        result.extra["not_scored"] = str(exc)


def relate(reference: Result, results: list[Result]) -> None:
    """Bytes and worst score difference of every candidate against the group's first, its reference."""
    reference_bytes = reference.extra.get("output_bytes")
    for result in results:
        sizes = result.extra.get("output_bytes")
        if not (sizes and reference_bytes and result.scores):
            continue
        result.bytes_ratio = sum(sizes) / sum(reference_bytes)  # type: ignore[arg-type]
        deltas = [mine - theirs for mine, theirs in zip(result.scores, reference.scores, strict=True)]
        result.worst_delta = min(deltas)
        result.extra["below_reference_by_more_than_1"] = sum(d < -1 for d in deltas)


def versions() -> dict[str, object]:
    def dist(name: str) -> str:
        return importlib.metadata.version(name)

    return {
        **machine(),
        "pyvips": dist("pyvips"),
        "libvips": ".".join(str(pyvips.version(i)) for i in range(3)),
        "pyvips_binary": dist("pyvips-binary"),
        "simplejpeg": dist("simplejpeg"),
        "imagequant": dist("imagequant"),
        "pyoxipng": dist("pyoxipng"),
        "mozjpeg_lossless_optimization": dist("mozjpeg-lossless-optimization"),
        "numpy": np.__version__,
    }


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return ""
    return "inf" if value == float("inf") else f"{value:.{digits}f}"


def table(results: list[Result]) -> str:
    header = (
        "group",
        "candidate",
        "ms/MP",
        "MP/s",
        "size",
        "bytes vs ref",
        "SSIMULACRA2 median",
        "p10",
        "worst vs ref",
        "runs MP/s (min-max)",
    )
    cells = [
        (
            r.group,
            r.candidate,
            f"{r.seconds / r.megapixels * 1000:.1f}",
            f"{r.megapixels / r.seconds:.1f}",
            _fmt(r.size_ratio, 3),
            _fmt(r.bytes_ratio, 3),
            _fmt(statistics.median(r.scores) if r.scores else None, 1),
            _fmt(float(np.percentile(r.scores, 10)) if r.scores else None, 1),
            "" if r.worst_delta is None else f"{r.worst_delta:+.2f}",
            f"{r.megapixels / max(r.runs):.1f}-{r.megapixels / min(r.runs):.1f}" if len(r.runs) > 1 else "",
        )
        for r in results
    ]
    widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header))]

    def render(line: tuple[str, ...]) -> str:
        parts = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([render(header), rule, *(render(c) for c in cells)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny corpus, 1 repeat")
    parser.add_argument("--repeats", type=int, help=f"runs per figure (default {FULL.repeats}, 1 with --quick)")
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--json", type=Path, default=Path("bench-results/codecs.json"))
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or sizes.repeats

    # Per core: the service runs one image per worker process, so libraries must not spread over threads.
    pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)
    os.environ["RAYON_NUM_THREADS"] = "1"  # oxipng's pool, read when it first starts

    jpeg_set, mixed_set = build(sizes.jpegs, sizes.mixed, args.seed, scale=sizes.scale)
    load_before = os.getloadavg()
    results: list[Result] = []
    for name, photos in groups(jpeg_set.photos, mixed_set.photos).items():
        if name in args.only and photos:
            print(f"[codecs] {name}: {len(photos)} images, {repeats} repeats", file=sys.stderr, flush=True)
            group = time_group(name, photos, CANDIDATES[name], repeats)
            print(table(group), flush=True)  # each group as it ends: a long run keeps what it measured
            results.extend(group)
    info = {**versions(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    info["load_average_at_start"] = [round(x, 2) for x in load_before]

    print(table(results))
    print(
        f"\nload average (1, 5, 15 min) at start {info['load_average_at_start']}, at end {info['load_average_at_end']}"
    )
    print(", ".join(f"{k} {v}" for k, v in info.items() if not k.startswith("load")))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": info, "repeats": repeats, "results": [r.as_dict() for r in results]}
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
