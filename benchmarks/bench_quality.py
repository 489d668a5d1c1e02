"""The quality part of ``make bench``: what the service's outputs cost in bytes and look like, next to Pillow q50.

The outputs are the real ones of the last embedded end-to-end run of each set, fetched from the service. JPEG is
judged on the ``jpeg`` set, PNG and WebP on the ``mixed`` set. Total bytes cover every image of the format;
SSIMULACRA2 scores a fixed ``Subset``, as scoring every image would take longer than the rest of the benchmark
(docs/performance.md), in the codec pool, against the source as a browser shows it (``benchmarks.quality``).
The references are Pillow quality 50 (JPEG, WebP) and, for PNG, Pillow's lossless ``optimize=True`` save (what
naive implementations write: the source's own pixels, 100 by definition) and the octree palette the service
wrote before issue 21.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from benchmarks.codec import CodecPool, Graded
from benchmarks.corpus import Corpus
from benchmarks.endtoend import output_urls
from benchmarks.origin import PLAIN, Origin
from benchmarks.quality import Scores
from benchmarks.report import Row
from tests.support.servers import Service

FORMAT_SET = {"JPEG": "jpeg", "PNG": "mixed", "WEBP": "mixed"}
MB = 1e6
# The targets: JPEG bytes against Pillow q50 and the worst image's score against its Pillow q50 output.
JPEG_BYTES_GOAL = 0.88
JPEG_WORST_POINTS = -1.0


@dataclass(frozen=True)
class Subset:
    """The images scored: every N-th of each format, in corpus order, among those of at most ``max_megapixels``."""

    every: dict[str, int]
    max_megapixels: float

    def of(self, fmt: str) -> str:
        n = self.every[fmt]
        return f"every {n}th of <= {self.max_megapixels:g} MP" if n > 1 else f"all of <= {self.max_megapixels:g} MP"


@dataclass
class Outputs:
    """The service's outputs of one set: every image's bytes, and the files of the images to score."""

    sizes: dict[int, int]  # index in the set -> output bytes
    files: dict[int, bytes]


def to_score(corpus: Corpus, subset: Subset) -> set[int]:
    """Indices of the set's images in ``subset``, for the formats judged on this set."""
    chosen, seen = set(), dict.fromkeys(subset.every, 0)
    for index, photo in enumerate(corpus.photos):
        fmt = photo.format
        if FORMAT_SET.get(fmt) == corpus.name and photo.megapixels <= subset.max_megapixels:
            if seen[fmt] % subset.every[fmt] == 0:
                chosen.add(index)
            seen[fmt] += 1
    return chosen


def fetch(api: Service, server: Origin, corpus: Corpus, request_id: str, keep: set[int]) -> Outputs:
    """Download the request's outputs; only the ones in ``keep`` are kept whole."""
    # The same bytes under /plain/ (no validators, benchmarks/reuse.py) are the same photo.
    index_of = {server.url(p.path): i for i, p in enumerate(corpus.photos)}
    index_of |= {server.url(f"/{PLAIN}{p.path.lstrip('/')}"): i for i, p in enumerate(corpus.photos)}
    outputs = Outputs({}, {})
    with httpx.Client(timeout=60) as client:
        for input_url, output_url in output_urls(api, request_id).items():
            if output_url is None:
                raise RuntimeError(f"no output for {input_url}")
            data = client.get(output_url).raise_for_status().content
            index = index_of[input_url]
            outputs.sizes[index] = len(data)
            if index in keep:
                outputs.files[index] = data
    return outputs


def grade(codec: CodecPool, corpus: Corpus, outputs: Outputs) -> list[Graded]:
    return codec.grade(corpus.name, outputs.files)


def _bytes_row(label: str, total: int, source: int, note: str = "") -> Row:
    return Row(label, total / MB, f"MB ({total / source:.3f} of the input){note}")


def _score_row(label: str, scores: Scores) -> Row:
    return Row(label, scores.median, f"median (p10 {scores.p10:.1f})", runs=scores.values)


def format_rows(
    fmt: str, corpus: Corpus, outputs: Outputs, graded: list[Graded], pillow_bytes: list[int], subset: Subset
) -> list[Row]:
    """Bytes and scores of one output format, service first, then the references."""
    indices = [i for i, p in enumerate(corpus.photos) if p.format == fmt]
    mine = [g for g in graded if g.format == fmt]
    if not indices or not mine:
        return []
    source = sum(len(corpus.photos[i].data) for i in indices)
    service = sum(outputs.sizes[i] for i in indices)
    pillow = sum(pillow_bytes[i] for i in indices)
    scored = f"{len(mine)} scored: {subset.of(fmt)}"
    what = f"{fmt}, {len(indices)} images of the {corpus.name} set"
    reference = "Pillow lossless optimize=True" if fmt == "PNG" else "Pillow q50"
    rows = [
        _bytes_row(f"{what}: bytes, service", service, source),
        _bytes_row(f"{fmt}: bytes, {reference}", pillow, source),
    ]
    rows[0].ratio, rows[0].target = service / pillow, f"vs {reference}"  # a bare ratio where the issue sets no goal
    service_scores = Scores([g.scores["service"] for g in mine])
    rows.append(_score_row(f"{fmt}: SSIMULACRA2, service ({scored})", service_scores))
    if fmt == "PNG":
        rows += _palette_rows(mine)
        return rows
    rows.append(_score_row(f"{fmt}: SSIMULACRA2, Pillow q50", Scores([g.scores["pillow_q50"] for g in mine])))
    worst = min(g.scores["service"] - g.scores["pillow_q50"] for g in mine)
    rows.append(Row(f"{fmt}: SSIMULACRA2, service - Pillow q50, worst image", worst, "points"))
    if fmt == "JPEG":
        _at_most(rows[0], JPEG_BYTES_GOAL, f"<= {JPEG_BYTES_GOAL}x Pillow q50")
        rows[-1].target, rows[-1].goal = f">= {JPEG_WORST_POINTS:.0f} point", JPEG_WORST_POINTS
    return rows


def _at_most(row: Row, goal: float, target: str) -> None:
    """A ratio target met at the goal itself (``Row.met`` is strict for lower-is-better rows)."""
    row.target, row.goal, row.higher_is_better = target, goal + 1e-9, False


def _palette_rows(graded: list[Graded]) -> list[Row]:
    """Today's octree palette on the scored PNGs, and the service's worst image against it (the issue's PNG bar)."""
    service = sum(g.bytes["service"] for g in graded)
    palette = sum(g.bytes["octree_palette"] for g in graded)
    scores = Scores([g.scores["octree_palette"] for g in graded])
    worst = min(g.scores["service"] - g.scores["octree_palette"] for g in graded)
    rows = [
        Row(
            f"PNG: bytes, octree palette before #21 ({len(graded)} scored)", palette / MB, "MB", ratio=service / palette
        ),
        _score_row("PNG: SSIMULACRA2, octree palette before #21", scores),
        Row("PNG: SSIMULACRA2, service - octree palette, worst image", worst, "points", ">= 0 point", goal=0.0),
    ]
    _at_most(rows[0], 1.0, "service <= 1x this")
    return rows


def quality_rows(
    sets: tuple[Corpus, ...],
    outputs: dict[str, Outputs],
    graded: dict[str, list[Graded]],
    pillow_bytes: dict[str, list[int]],
    subset: Subset,
) -> list[Row]:
    by_name = {c.name: c for c in sets}
    rows: list[Row] = []
    for fmt, name in FORMAT_SET.items():
        if name in graded:
            rows += format_rows(fmt, by_name[name], outputs[name], graded[name], pillow_bytes[name], subset)
    return rows


def detail(graded: dict[str, list[Graded]]) -> dict[str, list[dict[str, object]]]:
    """Every scored image, for the JSON."""
    return {name: [g.__dict__ for g in images] for name, images in graded.items()}
