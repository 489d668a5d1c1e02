"""The CPU budget's two stops: the soft one fails the image where the codec returns to Python, the hard one
records the failure and kills the process when a C call never returns."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from batchpress.processing.compress import compress_image
from batchpress.processing.cpu_budget import CpuBudget, OverBudget
from tests.support.photos import make_image


def spin() -> None:
    while True:
        pass


def test_python_work_past_the_budget_is_stopped_with_a_reason() -> None:
    budget = CpuBudget(0.2)
    stuck: list[str] = []
    started = time.process_time()
    with pytest.raises(OverBudget, match=r"^took more than 0\.2 s of CPU to decode$"), budget.limit(stuck.append):
        spin()
    assert time.process_time() - started < 2
    assert not stuck


def test_a_stop_swallowed_where_it_landed_comes_again() -> None:
    """The signal may land in a garbage collector's weakref callback, whose exception Python prints and drops: the
    budget rings again until the work stops."""
    budget = CpuBudget(0.2)
    swallowed: list[OverBudget] = []

    def swallow_once() -> None:
        try:
            spin()
        except OverBudget as exc:  # what the collector does with it
            swallowed.append(exc)
        spin()

    started = time.process_time()
    with pytest.raises(OverBudget), budget.limit(lambda _reason: None):
        swallow_once()
    assert len(swallowed) == 1
    assert time.process_time() - started < 2


def test_a_real_decode_past_the_budget_names_its_step() -> None:
    photo = make_image("png", 4, (4000, 3000))
    budget = CpuBudget(0.05)
    with (
        pytest.raises(OverBudget, match=r"took more than 0\.05 s of CPU to (decode|encode)"),
        budget.limit(lambda _reason: None),
    ):
        compress_image(photo, stage=budget.enter)
    # The timer is off once the block ends: the same work outside it runs to the end.
    assert compress_image(photo).width == 4000


def test_work_within_the_budget_is_untouched() -> None:
    budget = CpuBudget(20)
    photo = make_image("jpeg", 5, (800, 600))
    with budget.limit(lambda _reason: None):
        assert compress_image(photo, stage=budget.enter).width == 800


def test_a_c_call_that_never_returns_is_recorded_then_its_process_killed(tmp_path: Path) -> None:
    """PBKDF2 with a huge iteration count runs in C without the GIL, as a stuck decoder would: the signal
    cannot interrupt it, the watchdog must."""
    record = tmp_path / "reason.txt"
    script = textwrap.dedent(
        f"""
        import hashlib, pathlib
        from batchpress.processing.cpu_budget import CpuBudget
        budget = CpuBudget(0.2)
        with budget.limit(lambda reason: pathlib.Path({str(record)!r}).write_text(reason)):
            hashlib.pbkdf2_hmac("sha256", b"x", b"salt", 500_000_000)
        print("returned")
        """
    )
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == -9, run.stderr
    assert "returned" not in run.stdout
    assert record.read_text() == "took more than 0.2 s of CPU to decode; its worker process was stopped"
    print(f"\nhard stop after {time.monotonic() - started:.1f} s")
