"""``batchpress doctor`` as an operator runs it: the installed script, the machine's real codecs and folders."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import simplejpeg

from batchpress.cli.doctor import simplejpeg_check, smallest_encoder_checks
from tests.cli.test_client import batchpress
from tests.support.cluster import postgres_admin_url
from tests.support.servers import free_port


def test_doctor_passes_on_a_fresh_data_dir(tmp_path: Path) -> None:
    run = batchpress("doctor", cwd=tmp_path, BATCHPRESS_DATA_DIR=str(tmp_path / "data"))
    assert run.returncode == 0, run.stdout
    assert "FAIL" not in run.stdout
    names = ("jpeg", "png", "webp", "simplejpeg", "jpegli", "mozjpeg", "oxipng", "settings", "database", "broker")
    for name in (*names, "storage", "outbound"):
        assert f"ok    {name}" in run.stdout
    assert f"ok    simplejpeg simplejpeg {simplejpeg.__version__}" in run.stdout


def test_doctor_fails_without_an_encoder_of_effort_max(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyjpegli", None)
    checks = {check.name: check for check in smallest_encoder_checks()}
    assert not checks["jpegli"].ok
    assert checks["jpegli"].fix == "pip install pyjpegli"
    assert checks["mozjpeg"].ok
    assert checks["oxipng"].ok


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


@pytest.mark.parametrize("kind", ["missing", "closed"])
def test_doctor_names_a_database_it_cannot_use(tmp_path: Path, kind: str) -> None:
    server = postgres_admin_url().rpartition("/")[0]
    if kind == "missing":
        url = f"{server}/bp_missing_{uuid.uuid4().hex[:12]}"
        line = f'FAIL  database   BATCHPRESS_DATABASE_URL={url}: database "{url.rpartition("/")[2]}" does not exist'
        fix = "-> create that database or fix BATCHPRESS_DATABASE_URL"
    else:
        url = f"postgresql://root@127.0.0.1:{free_port()}/test"
        line = f"FAIL  database   cannot reach {url}: connection refused"
        fix = "-> start it or fix BATCHPRESS_DATABASE_URL"
    run = batchpress("doctor", cwd=tmp_path, BATCHPRESS_DATA_DIR=str(tmp_path / "data"), BATCHPRESS_DATABASE_URL=url)
    assert run.returncode == 1
    assert f"{line} {fix}" in run.stdout
