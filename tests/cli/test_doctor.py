"""``batchpress doctor`` as an operator runs it: the installed script, the machine's real codecs and folders."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import simplejpeg

from batchpress.cli.doctor import mask_url, simplejpeg_check
from tests.cli.test_client import batchpress


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://app:s3cret@db:5432/bp", "postgresql+psycopg://app:***@db:5432/bp"),
        ("redis://:pw@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("amqp://guest@rabbit//", "amqp://guest@rabbit//"),
        ("sqlite:////data/batchpress.db", "sqlite:////data/batchpress.db"),
    ],
)
def test_passwords_are_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_doctor_passes_on_a_fresh_data_dir(tmp_path: Path) -> None:
    run = batchpress("doctor", cwd=tmp_path, BATCHPRESS_DATA_DIR=str(tmp_path / "data"))
    assert run.returncode == 0, run.stdout
    assert "FAIL" not in run.stdout
    for name in ("jpeg", "png", "webp", "simplejpeg", "settings", "database", "broker", "storage", "outbound"):
        assert f"ok    {name}" in run.stdout
    assert f"ok    simplejpeg simplejpeg {simplejpeg.__version__}" in run.stdout


def test_doctor_fails_without_simplejpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "simplejpeg", None)  # makes `import simplejpeg` raise ImportError
    check = simplejpeg_check()
    assert not check.ok
    assert check.fix == "pip install simplejpeg"


def test_doctor_fails_on_an_unreachable_broker(tmp_path: Path) -> None:
    run = batchpress(
        "doctor",
        cwd=tmp_path,
        BATCHPRESS_DATA_DIR=str(tmp_path / "data"),
        BATCHPRESS_BROKER_URL="redis://127.0.0.1:1/0",
    )
    assert run.returncode == 1
    assert "FAIL  broker     cannot use redis://127.0.0.1:1/0" in run.stdout
    assert "ok    storage" in run.stdout
