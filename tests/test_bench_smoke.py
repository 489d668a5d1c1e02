"""`make bench`, `make bench-codecs`, `bench-faults` and `bench-memory` still run: their quick modes, as subprocesses
(no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.servers import REPO


def run_quick(module: str, out: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m <module> --quick --json <out>`` from the repository; fails the test on a non-zero exit."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def test_quick_benchmark_prints_the_table_and_writes_the_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = run_quick("benchmarks.bench", out, timeout=240)
    assert "| metric" in result.stdout
    assert "| target" in result.stdout
    assert "codec limit, jpeg" in result.stdout
    report = json.loads(out.read_text())
    metrics = {row["metric"] for row in report["rows"]}
    assert {"end to end, embedded, jpeg", "end to end, embedded, mixed"} <= metrics
    assert {"JPEG: bytes, Pillow q50", "WEBP: SSIMULACRA2, Pillow q50"} <= metrics
    assert any(metric.startswith("Pillow q50 limit, jpeg") for metric in metrics)
    scores = [row["value"] for row in report["rows"] if "SSIMULACRA2, service (" in row["metric"]]
    assert len(scores) == 3  # JPEG, PNG and WebP outputs of the end-to-end runs
    assert all(30 < score < 100 for score in scores)
    assert all(row["value"] is None or row["value"] > 0 for row in report["rows"] if row["unit"] != "points")
    assert report["machine"]["cores"] >= 1
    # Each end-to-end run follows a codec pass over the same set, which its ratio is taken against.
    runs = report["detail"]["end_to_end"]["embedded"]["jpeg"]
    assert runs
    assert all(run["codec_seconds"] > 0 and run["pillow_seconds"] > 0 for run in runs)
    assert all(0 < run["seconds"] <= run["seen_seconds"] for run in runs)


def test_quick_codec_comparison_covers_every_format(tmp_path: Path) -> None:
    out = tmp_path / "codecs.json"
    result = run_quick("benchmarks.codecs", out, timeout=120)
    assert "| candidate" in result.stdout
    report = json.loads(out.read_text())
    groups = {row["group"] for row in report["results"]}
    assert groups == {"JPEG", "PNG", "PNG alpha", "WEBP", "mixed"}
    service = [row for row in report["results"] if row["candidate"] == "service compress_image"]
    assert all(row["mp_per_s"] > 0 and 0 < row["size_ratio"] < 1 for row in service)


def test_fault_benchmark_runs_a_small_case(tmp_path: Path) -> None:
    """``make bench-faults`` on a dozen images: the table, and a clean batch (it exits 1 on anything lost,
    duplicated or finished twice)."""
    out = tmp_path / "faults.json"
    case = ["--images", "12", "--only", "pool-kill", "--setups", "embedded"]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.faults", *case, "--json", str(out), "--logs", str(tmp_path / "logs")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "| pool process kill -9 | embedded" in result.stdout
    assert json.loads(out.read_text())["cases"]


def test_memory_benchmark_measures_hostile_files(tmp_path: Path) -> None:
    """``make bench-memory`` on its quick cases: each in a fresh process, peak RSS reported, refusals named."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--only", "bomb-png", "scans", "--results", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rows = {row["case"]: row for row in json.loads((tmp_path / "memory.json").read_text())}
    assert set(rows) == {"bomb-png", "scans-20k"}
    assert all(0 < row["peak_mb"] < 600 for row in rows.values())
    assert "over the 50.0 MP limit" in rows["bomb-png"]["outcomes"][0]
    assert "more than 500 scans" in rows["scans-20k"]["outcomes"][0]


def test_quick_status_benchmark_reads_every_page_of_each_kind(tmp_path: Path) -> None:
    out = tmp_path / "status.json"
    run_quick("benchmarks.status_pages", out, timeout=180)
    report = json.loads(out.read_text())
    assert set(report["render"]) == {"sqlite wide", "sqlite tall", "sqlite many", "sqlite fat"}
    assert all(kind["pages"] > 1 for kind in report["render"].values())
    assert report["load"]["huge_reads"] > 0
    assert report["load"]["small_loaded_median_ms"] > 0
