"""The installation users get: what ``make run`` installs (no development dependencies), started and driven over HTTP.

The test environment has every development dependency, and some of them bring modules the service imports at run
time (pytest brings ``packaging``, which kombu's Redis transport needs): a suite run only here stays green while
the service dies at import on a user's machine. These tests build a virtual environment exactly as ``make run``
does, in a temporary folder, and run the real service from it on each deployment shape the README offers.
"""

from __future__ import annotations

import io
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.cluster import port_open, postgres_admin_url, postgres_database
from tests.support.moto import Moto, moto_server
from tests.support.photos import expected_size, make_image
from tests.support.servers import REPO, ImageServer, Service

pytestmark = pytest.mark.cluster
# Variables that would let the production install see the test environment's packages.
LEAKY = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")
KINDS = ("jpeg", "progressive_jpeg", "exif_rotated_jpeg", "cmyk_jpeg", "png_alpha", "webp")


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LEAKY}
    return env | overrides


@pytest.fixture(scope="module")
def production_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment made by the same script and flags as ``make run``, only in a folder of its own."""
    venv = tmp_path_factory.mktemp("production") / "venv"
    subprocess.run(
        [str(REPO / "scripts" / "bootstrap.sh"), "--no-dev"],
        cwd=REPO,
        env=clean_env(UV_PROJECT_ENVIRONMENT=str(venv)),
        check=True,
        timeout=600,
    )
    assert not (venv / "bin" / "pytest").exists(), "the production install brought the test tools"
    return venv


def test_every_module_and_offered_transport_imports(production_venv: Path, tmp_path: Path) -> None:
    """Every module of the package, and the kombu transport and database driver behind every URL the README
    offers, imports from the production install alone."""
    script = """
import importlib, pkgutil, batchpress
from kombu.transport import resolve_transport
from sqlalchemy import create_engine
failed = []
for module in pkgutil.walk_packages(batchpress.__path__, "batchpress."):
    if module.name == "batchpress.__main__":  # runs the CLI
        continue
    try:
        importlib.import_module(module.name)
    except Exception as exc:
        failed.append(f"{module.name}: {exc!r}")
for scheme in ("filesystem", "redis", "rediss", "amqp", "amqps", "pyamqp"):
    try:
        resolve_transport(scheme)
    except Exception as exc:
        failed.append(f"broker {scheme}://: {exc!r}")
for url in ("sqlite://", "postgresql+psycopg://u@h/d"):
    try:
        create_engine(url)
    except Exception as exc:
        failed.append(f"database {url}: {exc!r}")
import boto3; boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:1")
print("\\n".join(failed) or "ok")
"""
    result = subprocess.run(
        [str(production_venv / "bin" / "python"), "-c", script],
        cwd=tmp_path,
        env=clean_env(BATCHPRESS_DATA_DIR=str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok", result.stdout


@pytest.fixture(scope="module")
def photos(image_server: ImageServer) -> dict[str, bytes]:
    """The web's mix, served by a real origin; keyed by URL."""
    served = {}
    for index, kind in enumerate(KINDS):
        data = make_image(kind, index, (800, 600))
        content_type = {"png_alpha": "image/png", "webp": "image/webp"}.get(kind, "image/jpeg")
        served[image_server.add(f"/production/{kind}", data, content_type)] = data
    return served


@pytest.fixture
def moto() -> Iterator[Moto]:
    with moto_server() as server:
        yield server


def run_batch(venv: Path, data_dir: Path, photos: dict[str, bytes], **env: str) -> None:
    """``batchpress serve`` from the production install on ``env``: one batch, every output fetched and checked."""
    service = Service(data_dir, env, command=(str(venv / "bin" / "batchpress"),))
    for name in LEAKY:
        service.env.pop(name, None)
    service.start(timeout=90)
    try:
        ready = httpx.get(f"{service.base_url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        urls = list(photos)
        rows = [f'{n + 1},Item {n + 1},"{urls[2 * n]},{urls[2 * n + 1]}"' for n in range(len(urls) // 2)]
        answer = service.upload("S. No.,Product Name,Input Image Urls\n" + "\n".join(rows) + "\n")
        assert answer.status_code == 202, answer.text
        status = service.wait_until(answer.json()["request_id"], timeout=120)
        assert status["status"] == "completed", status
        outputs = [url for product in status["products"] for url in product["output_image_urls"]]
        for source, output in zip(urls, outputs, strict=True):
            fetched = httpx.get(output, timeout=30)
            assert fetched.status_code == 200, output
            with Image.open(io.BytesIO(fetched.content)) as im:
                im.load()
                assert im.size == expected_size(photos[source]), source
            assert len(fetched.content) < len(photos[source]), source
    finally:
        assert service.stop() == 0, service.log()


def test_embedded_default(production_venv: Path, tmp_path: Path, photos: dict[str, bytes]) -> None:
    run_batch(production_venv, tmp_path / "data", photos)


@pytest.mark.parametrize(
    ("broker", "port"), [("redis://127.0.0.1:6379/3", 6379), ("amqp://guest:guest@127.0.0.1:5672//", 5672)]
)
def test_postgresql_and_an_external_broker(
    production_venv: Path, tmp_path: Path, photos: dict[str, bytes], broker: str, port: int
) -> None:
    if not port_open(port):
        pytest.skip(f"needs the broker on 127.0.0.1:{port}")
    with postgres_database(postgres_admin_url(), f"bp_prod_{uuid.uuid4().hex[:10]}") as database:
        run_batch(
            production_venv,
            tmp_path / "data",
            photos,
            BATCHPRESS_DATABASE_URL=database,
            BATCHPRESS_BROKER_URL=broker,
            BATCHPRESS_QUEUE_NAME=f"prod-{uuid.uuid4().hex[:8]}",
        )


def test_s3_storage(production_venv: Path, tmp_path: Path, photos: dict[str, bytes], moto: Moto) -> None:
    bucket = moto.new_bucket()
    run_batch(
        production_venv,
        tmp_path / "data",
        photos,
        BATCHPRESS_STORAGE="s3",
        BATCHPRESS_S3_BUCKET=bucket,
        BATCHPRESS_S3_ENDPOINT_URL=moto.endpoint,
        BATCHPRESS_S3_ACCESS_KEY_ID="test",
        BATCHPRESS_S3_SECRET_ACCESS_KEY="test",
    )
    # Each output, and the two previews beside it.
    assert len(moto.keys(bucket, prefix="c/")) == len(photos)
    assert len(moto.keys(bucket, prefix="p/")) == 2 * len(photos)
