"""Peak memory of a worker's pool process per image: 50 MP photos of every input format and the hostile files.

Run with ``make bench-memory`` (``python -m benchmarks.memory``; ``--only NAME`` for some cases). Each case runs
``compress_image`` in a fresh Python process that has imported what a pool process imports, then reports that whole
process's peak RSS (``VmHWM``, as issue #20 counts it) and the call's time. The input is read from a file first, as a
download's bytes would be held. The last case runs every hostile file one after another in one process, as a worker
meets a hostile batch. Inputs are built once into ``bench-results/memory-inputs/`` (the 50 MP photos take a few
minutes) and the table goes to ``bench-results/memory.json`` (``--results`` names another folder). The table also
shows what the process still holds after its last image.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.support import hostile

RESULTS = Path("bench-results")
BUDGET_MB = 600


@dataclass(frozen=True)
class Case:
    name: str
    inputs: tuple[str, ...]  # names of built inputs, compressed in this order in one process
    options: dict[str, object] = field(default_factory=dict)


def _builders() -> dict[str, Callable[[], bytes]]:
    built: dict[str, Callable[[], bytes]] = {f"50mp-{kind}": make for kind, make in hostile.PHOTOS_50_MP.items()}
    built |= {
        "app3-markers-25mb": lambda: hostile.empty_markers_jpeg(0xE3),
        "com-markers-25mb": lambda: hostile.empty_markers_jpeg(0xFE),
        "exif-segments-100k": hostile.many_exif_jpeg,
        "scans-20k": hostile.many_scans_jpeg,
        "png16-rgba-49mp-flat": hostile.png16_rgba,
    }
    built |= {f"bomb-{fmt.lower()}": (lambda fmt=fmt: hostile.bomb(fmt)) for fmt in hostile.BOMB_FORMATS}
    return built


HOSTILE = (
    "app3-markers-25mb",
    "com-markers-25mb",
    "exif-segments-100k",
    "scans-20k",
    "png16-rgba-49mp-flat",
    *(f"bomb-{fmt.lower()}" for fmt in hostile.BOMB_FORMATS),
)

# Output options only where they take another path: the JPEG fast route versus Pillow, each encoder, a resize.
OPTIONS: dict[str, list[dict[str, object]]] = {
    "50mp-jpeg": [
        {},
        {"output_format": "webp"},
        {"output_format": "avif"},
        {"output_format": "avif", "max_dimension": 4000},
        {"max_dimension": 2000},
    ],
    "50mp-png": [{}, {"output_format": "jpeg"}],
    "50mp-png_alpha": [
        {},
        {"output_format": "webp"},
        {"output_format": "webp", "max_dimension": 4000},
        {"output_format": "avif", "max_dimension": 4000},
        {"output_format": "jpeg"},
    ],
    "50mp-webp": [{}, {"max_dimension": 2000}],
    "50mp-tiff": [{}, {"max_dimension": 2000}],
}


def cases() -> list[Case]:
    found = []
    for name in _builders():
        for options in OPTIONS.get(name, [{}]):
            label = name + "".join(f" {k}={v}" for k, v in options.items())
            found.append(Case(label, (name,), options))
    found.append(Case("mixed hostile batch", (*HOSTILE, "50mp-png_alpha", "png16-rgba-49mp-flat", "50mp-cmyk_jpeg")))
    return found


def build_inputs(inputs: Path, names: set[str]) -> None:
    inputs.mkdir(parents=True, exist_ok=True)
    for name, make in _builders().items():
        path = inputs / name
        if name in names and not path.exists():
            started = time.monotonic()
            data = make()
            path.with_suffix(".tmp").write_bytes(data)
            path.with_suffix(".tmp").rename(path)
            print(f"built {name}: {len(data) / 2**20:.1f} MiB in {time.monotonic() - started:.0f} s", flush=True)


@dataclass
class Measured:
    case: str
    input_mib: float
    peak_mb: float
    held_mb: float
    seconds: float
    outcomes: list[str]


def measure(case: Case, inputs: Path) -> Measured:
    args = [sys.executable, "-m", "benchmarks.memory", "--child", json.dumps(case.options)]
    args += [str(inputs / name) for name in case.inputs]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    size = sum((inputs / name).stat().st_size for name in case.inputs)
    mib = round(size / 2**20, 1)
    return Measured(case.name, mib, report["peak_mb"], report["held_mb"], report["seconds"], report["outcomes"])


def child(options: dict[str, object], paths: list[str]) -> None:
    """One pool process's work: the worker's imports, then each file in turn."""
    import batchpress.worker.lifecycle  # noqa: F401 (what a pool process has imported before its first image)
    from batchpress.processing.compress import ImageRejected, compress_image

    outcomes = []
    started = time.monotonic()
    for path in paths:
        data = Path(path).read_bytes()
        try:
            # Previews on, as the worker makes them by default.
            result = compress_image(data, **{"previews": True, **options})  # type: ignore[arg-type]
            outcomes.append(f"{result.format} {result.width}x{result.height} {len(result.data) / 2**20:.1f} MiB")
        except ImageRejected as exc:
            outcomes.append(f"refused: {exc}")
        del data
    seconds = time.monotonic() - started
    report = {"peak_mb": round(peak_rss_mb(), 1), "held_mb": round(held_rss_mb(), 1), "seconds": round(seconds, 2)}
    print(json.dumps(report | {"outcomes": outcomes}))


def held_rss_mb() -> float:
    """Resident memory after the last image: what the process keeps into the next one."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="cases whose name contains one of these")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the inputs and the JSON")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child[0]), args.child[1:])
        return
    chosen = [c for c in cases() if args.only is None or any(part in c.name for part in args.only)]
    inputs = args.results / "memory-inputs"
    build_inputs(inputs, {name for c in chosen for name in c.inputs})
    results = []
    print(f"{'case':<52} {'input MiB':>9} {'peak MB':>8} {'held MB':>8} {'s':>6}  outcome")
    for case in chosen:
        m = measure(case, inputs)
        results.append(m)
        over = "  OVER" if m.peak_mb >= BUDGET_MB else ""
        outcome = m.outcomes[0] if len(m.outcomes) == 1 else f"{len(m.outcomes)} files"
        figures = f"{m.input_mib:>9} {m.peak_mb:>8.0f} {m.held_mb:>8.0f} {m.seconds:>6.2f}"
        print(f"{m.case:<52} {figures}  {outcome[:60]}{over}", flush=True)
    out = args.results / "memory.json"
    out.write_text(json.dumps([asdict(m) for m in results], indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
