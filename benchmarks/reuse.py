"""A catalogue sent again (#22): the JPEG set uploaded twice, from an origin that sends ETags and from one that sends
no validators, and a feed with 30 % repeated URLs against the same feed without repeats.

The first upload of each pair is an end-to-end run of ``make bench`` (cold: the service forgot its outputs first);
the second follows it at once, warm. The origin (``benchmarks.origin``) sends an ETag for every path but those under
``/plain/``.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field

from benchmarks.corpus import CONTENT_TYPES, Corpus, products_csv
from benchmarks.endtoend import Run, timed_run
from benchmarks.origin import PLAIN, Origin
from benchmarks.report import Row
from tests.support.servers import Service

REPEATED_SHARE = 0.3
AGAIN_GOALS = {"ETag": 20.0, "no validators": 3.0}


@dataclass
class Reuse:
    # Per origin kind: (the cold run, the warm run of the same CSV right after it).
    again: dict[str, tuple[Run, Run]] = field(default_factory=dict)
    repeated: Run | None = None
    repeated_distinct: int = 0


def plain_csv(server: Origin, corpus: Corpus, seed: int) -> str:
    """The corpus's CSV with its URLs under ``/plain/``: the same bytes, served with no validators."""
    return products_csv(
        [server.add(f"/{PLAIN}{p.path.lstrip('/')}", p.data, CONTENT_TYPES[p.format]) for p in corpus.photos], seed
    )


def warm_again(api: Service, csv_text: str, images: int) -> Run:
    return timed_run(api, csv_text, images, warm=True)


def repeated_feed(urls: list[str], seed: int) -> tuple[str, int]:
    """The feed with ``REPEATED_SHARE`` of its positions naming an earlier position's URL; returns the CSV and how
    many distinct URLs it holds."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible pick, not a secret)
    feed = list(urls)
    for position in rng.sample(range(1, len(feed)), round(REPEATED_SHARE * len(feed))):
        feed[position] = feed[rng.randrange(position)]
    return products_csv(feed, seed), len(set(feed))


def reuse_rows(reuse: Reuse | None, mixed: list[Run], failed: Row) -> list[Row]:
    if reuse is None:
        return [replace_metric(failed, "catalogue sent again")]
    rows = []
    for kind, (cold, warm) in reuse.again.items():
        goal = AGAIN_GOALS[kind]
        row = Row(
            f"same {cold.processed}-image CSV again, origin with {kind}",
            warm.seconds,
            f"s (first upload {cold.seconds:.1f} s)",
            f">= {goal:.0f}x faster",
            ratio=cold.seconds / warm.seconds,
            goal=goal,
        )
        rows.append(row)
    if reuse.repeated is not None and mixed:
        alone = statistics.median(r.seconds for r in mixed)
        share = reuse.repeated_distinct / reuse.repeated.processed
        rows.append(
            Row(
                f"feed with {REPEATED_SHARE:.0%} repeated URLs ({reuse.repeated.processed} rows)",
                reuse.repeated.seconds,
                f"s ({alone:.1f} s without repeats; {share:.2f} of its URLs distinct)",
                "time / without repeats",
                ratio=reuse.repeated.seconds / alone,
            )
        )
    return rows


def replace_metric(row: Row, metric: str) -> Row:
    return Row(metric, row.value, row.unit, note=row.note)
