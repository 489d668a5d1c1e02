"""What previews cost: CPU time per image of ``compress_image`` with and without them on the benchmark's corpus (one
process, CPU time, so other load barely moves it), by input format and effort, and the previews' bytes.

    python -m benchmarks.previews [--jpegs 40] [--mixed 40]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from batchpress.processing.compress import compress_image
from batchpress.processing.formats import EFFORTS
from benchmarks.corpus import build


def cpu_ms(data: bytes, effort: str, previews: bool, repeats: int) -> tuple[float, int, int]:
    """The fastest of ``repeats`` runs, and the previews' bytes (before, after)."""
    best = float("inf")
    before = after = 0
    for _ in range(repeats):
        started = time.process_time()
        result = compress_image(data, quality=50, effort=effort, previews=previews)  # type: ignore[arg-type]
        best = min(best, (time.process_time() - started) * 1000)
        if result.previews is not None:
            before, after = len(result.previews.before), len(result.previews.after)
    return best, before, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jpegs", type=int, default=40)
    parser.add_argument("--mixed", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    jpegs, mixed = build(args.jpegs, args.mixed, args.seed)
    photos = {id(p): p for p in (*jpegs.photos, *mixed.photos)}.values()
    print(f"{len(photos)} images, {sum(p.megapixels for p in photos):.0f} MP; CPU ms per image, best of {args.repeats}")
    heads = ("images", "without", "with", "cost", "before kB", "after kB")
    print(f"{'effort':6} {'format':6} " + " ".join(f"{h:>9}" for h in heads))
    for effort in EFFORTS:
        rows: dict[str, list[tuple[float, float, int, int]]] = defaultdict(list)
        for photo in photos:
            without, _, _ = cpu_ms(photo.data, effort, False, args.repeats)
            with_previews, before, after = cpu_ms(photo.data, effort, True, args.repeats)
            rows[photo.format].append((without, with_previews, before, after))
            rows["all"].append((without, with_previews, before, after))
        for name, found in rows.items():
            without = sum(r[0] for r in found)
            added = sum(r[1] for r in found)
            print(
                f"{effort:6} {name:6} {len(found):9d} {without / len(found):9.1f} {added / len(found):9.1f} "
                f"{added / without - 1:9.1%} {statistics.median(r[2] for r in found) / 1e3:9.1f} "
                f"{statistics.median(r[3] for r in found) / 1e3:9.1f}"
            )


if __name__ == "__main__":
    main()
