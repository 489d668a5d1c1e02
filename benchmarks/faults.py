"""What a fault costs a batch: the same batch without and with a fault injected a third of the way through.

Run with ``make bench-faults`` (``python -m benchmarks.faults``; ``--images 60`` for a smoke run, ``--only`` and
``--setups`` to pick). Each case gets a fresh deployment with the production lease and sweep interval
(``benchmarks.endtoend.DEFAULTS``), a warm-up batch, then the batch without the fault and the batch with it. Every
batch is checked as the fault tests check it: every image compressed (none lost), one stored output per image (none
duplicated), exactly one terminal transition (the worker logs' ``request <id> finished`` lines); images claimed more
than once (``attempts > 1``) are counted as retried, which is how recovery works, not a fault of its own. It prints
a markdown table and writes every run to ``bench-results/faults.json`` and each case's logs under
``bench-results/faults-logs/``. Not a test: the suite asserts the same
invariants with a generous time bound (tests/test_scale_faults.py, tests/test_crash_recovery.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

from benchmarks.corpus import build, products_csv, serve
from benchmarks.endtoend import DEFAULTS, PG_ADMIN, warm_up
from benchmarks.fault_runs import CASES, FAULTS, SETUPS, STARTED, Batch, deploy, log, run_batch
from benchmarks.origin import Origin
from benchmarks.report import machine
from tests.support.cluster import port_open
from tests.support.photos import make_image


@dataclass
class Case:
    fault: str
    setup: str
    without: list[Batch] = field(default_factory=list)
    with_fault: list[Batch] = field(default_factory=list)
    error: str = ""


def run_case(case: Case, server: Origin, csv_text: str, images: int, root: Path, cores: int, timeout: float) -> None:
    warm_jpeg = make_image("jpeg", 1, (640, 480))
    with deploy(case.setup, root, cores, private_redis=case.fault == "redis-restart") as target:
        warm_up(target.api, server, warm_jpeg, 4 * cores)
        case.without.append(run_batch(target, csv_text, images, None, timeout))
        case.with_fault.append(run_batch(target, csv_text, images, case.fault, timeout))
    for label, batch in (("without", case.without[-1]), ("with", case.with_fault[-1])):
        log(
            f"  {label}: {batch.seconds:.2f} s, {batch.status}, lost {batch.lost}, duplicated {batch.duplicated}, "
            f"retried {batch.retried}, terminal {batch.terminal_transitions}"
            + (f"; at {batch.fault_at}/{images}: {batch.fault_note}" if batch.fault_at is not None else "")
        )


def keep_logs(root: Path, to: Path) -> None:
    """Copy the case's serve, API and worker logs out of its temporary directory: they say how a fault went."""
    shutil.rmtree(to, ignore_errors=True)
    for path in root.rglob("*.log"):
        target = to / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def median(batches: list[Batch]) -> float | None:
    return statistics.median(b.seconds for b in batches) if batches else None


def table(cases: list[Case], images: int) -> str:
    header = (
        "fault",
        "setup",
        "without (s)",
        "with (s)",
        "difference (s)",
        "injected at",
        "lost",
        "duplicated",
        "retried",
        "terminal transitions",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for case in cases:
        without, with_fault = median(case.without), median(case.with_fault)
        if case.error or without is None or with_fault is None:
            cells = [FAULTS[case.fault], SETUPS[case.setup], f"FAILED: {case.error[:120]}", *[""] * 7]
        else:
            every = case.without + case.with_fault
            cells = [
                FAULTS[case.fault],
                SETUPS[case.setup],
                f"{without:.1f}",
                f"{with_fault:.1f}",
                f"{with_fault - without:+.1f}",
                ", ".join(f"{b.fault_at}/{images}" for b in case.with_fault),
                str(max(b.lost for b in every)),
                str(max(b.duplicated for b in every)),
                ", ".join(str(b.retried) for b in case.with_fault),
                ", ".join(str(b.terminal_transitions) for b in case.with_fault),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def unavailable(setup: str, fault: str) -> str | None:
    """Why a case cannot run here, or None."""
    if setup != "embedded":
        try:
            psycopg.connect(PG_ADMIN, connect_timeout=3).close()
        except psycopg.Error:
            return f"no PostgreSQL at {PG_ADMIN}"
    if setup == "rabbitmq" and not port_open(5672):
        return "no RabbitMQ on 127.0.0.1:5672"
    if setup == "redis" and fault != "redis-restart" and not port_open(6379):
        return "no Redis on 127.0.0.1:6379"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300, help="images in the batch (default 300)")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of batches per case, each on a fresh setup")
    parser.add_argument("--only", nargs="+", choices=FAULTS, default=list(FAULTS), help="run only these faults")
    parser.add_argument("--setups", nargs="+", choices=SETUPS, default=list(SETUPS), help="and on these setups")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--timeout", type=float, default=300, help="seconds a batch may take before it fails")
    parser.add_argument("--json", type=Path, default=Path("bench-results/faults.json"))
    parser.add_argument("--logs", type=Path, default=Path("bench-results/faults-logs"), help="each case's logs")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    info = machine()
    cases = [Case(f, s) for f, s in CASES if f in args.only and s in args.setups]

    # The mixed set: about 70 % JPEG of 1-12 MP, 15 % PNG, 15 % WebP, as product photos come.
    others = 2 * round(args.images * 0.15)
    log(f"building the corpus ({args.images} images)")
    _, corpus = build(args.images - others, args.images, args.seed)
    with Origin() as server, tempfile.TemporaryDirectory(prefix="bp-faults-") as tmp:
        csv_text = products_csv(serve(server, corpus), args.seed)
        for n, case in enumerate(cases):
            reason = unavailable(case.setup, case.fault)
            log(f"{FAULTS[case.fault]}, {SETUPS[case.setup]}" + (f": skipped ({reason})" if reason else ""))
            if reason:
                case.error = f"skipped: {reason}"
                continue
            for repeat in range(args.repeats):
                root = Path(tmp) / f"{n}-{repeat}"
                try:
                    run_case(case, server, csv_text, args.images, root, cores, args.timeout)
                except Exception as exc:
                    log(f"  FAILED: {type(exc).__name__}: {exc}"[:4000])
                    case.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                    break
                finally:
                    keep_logs(root, args.logs / f"{case.fault}-{case.setup}-{repeat}")
    wall = time.monotonic() - STARTED
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

    described = corpus.describe()
    print(
        f"\nmachine: {info['cores']} cores, {info['cpu']}; load average {info['load_average_at_start']} at start, "
        f"{info['load_average_at_end']} at end; wall time {wall:.0f} s"
    )
    print(
        f"batch: {described['images']} images, {described['megapixels']} MP, {described['by_format']}; lease "
        f"{DEFAULTS['BATCHPRESS_LEASE_SECONDS']} s, sweep every {DEFAULTS['BATCHPRESS_SWEEP_INTERVAL_SECONDS']} s; "
        f"median of {args.repeats} pair(s)\n"
    )
    print(table(cases, args.images), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": info,
        "images": args.images,
        "repeats": args.repeats,
        "seed": args.seed,
        "corpus": described,
        "settings": {k: v for k, v in DEFAULTS.items()},
        "wall_seconds": round(wall, 1),
        "cases": [
            {
                "fault": FAULTS[c.fault],
                "setup": SETUPS[c.setup],
                "error": c.error,
                "without": [asdict(b) for b in c.without],
                "with": [asdict(b) for b in c.with_fault],
            }
            for c in cases
        ],
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    dirty = [c for c in cases if any(not b.clean for b in c.without + c.with_fault)]
    for case in dirty:
        print(f"NOT CLEAN: {FAULTS[case.fault]}, {SETUPS[case.setup]}: images lost, duplicated or finished twice")
    if dirty or any(c.error and not c.error.startswith("skipped") for c in cases):
        sys.exit(1)


if __name__ == "__main__":
    main()
