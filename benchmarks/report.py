"""The one table the benchmark prints, the machine it ran on, and the JSON it writes."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import PIL
from PIL import features


@dataclass
class Row:
    metric: str
    value: float | None
    unit: str
    target: str = ""
    ratio: float | None = None  # for targets that are ratios; compared against `goal`
    goal: float | None = None  # the number the target names
    higher_is_better: bool = True
    runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        measured = self.ratio if self.ratio is not None else self.value
        if measured is None:
            return None
        return measured >= self.goal if self.higher_is_better else measured < self.goal

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "met": self.met}


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _spread(runs: list[float]) -> str:
    return f"{_number(min(runs))}-{_number(max(runs))}" if len(runs) > 1 else ""


def table(rows: list[Row]) -> str:
    header = ("metric", "value", "unit", "target", "ratio", "result", "runs (min-max)")
    cells = [
        (
            row.metric,
            _number(row.value),
            row.unit,
            row.target,
            "" if row.ratio is None else f"{row.ratio:.2f}x",
            {True: "met", False: "MISSED", None: row.note}[row.met],
            _spread(row.runs),
        )
        for row in rows
    ]
    widths = [max(len(str(line[i])) for line in (header, *cells)) for i in range(len(header))]
    right = {1, 4}

    def render(line: tuple[str, ...]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([render(header), rule, *(render(c) for c in cells)])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, object]:
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo") or "not built with it",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
