"""A nearly full and a full output volume, for real: a small tmpfs mounted over the images folder (root only; skipped
elsewhere). ``/readyz`` and ``doctor`` warn before it fills; a full one leaves images to retry and loses nothing."""

from __future__ import annotations

import errno
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from batchpress.context import Context
from batchpress.db.base import utcnow
from batchpress.models import Image
from batchpress.processing.leases import requeue_expired
from batchpress.storage.local import LocalStorage
from tests.cli.test_client import batchpress
from tests.support.inprocess import api_client, process_inline, service_context
from tests.support.photos import make_image
from tests.support.servers import ImageServer
from tests.test_end_to_end import upload_inline

VOLUME_BYTES = 4 * 2**20


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs."""
    volume = tmp_path / "volume"
    volume.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={VOLUME_BYTES}", "tmpfs", str(volume)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield volume
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=False)


def fill(volume: Path, leave: int) -> Path:
    """Fill the volume until ``leave`` bytes are free."""
    filler = volume / "filler.bin"
    with filler.open("wb") as out:
        try:
            while True:
                free = _free(volume)
                if free <= leave:
                    break
                out.write(b"\0" * min(free - leave, 2**16))
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _free(path: Path) -> int:
    import shutil

    return shutil.disk_usage(path).free


def test_readyz_and_doctor_warn_when_the_output_volume_is_nearly_full(small_volume: Path) -> None:
    # The whole data directory on the small volume: its SQLite database, its images and their temporary files.
    with service_context(small_volume) as context, api_client(context) as api:
        assert api.get("/readyz").json()["warnings"] == []
        fill(small_volume, leave=VOLUME_BYTES // 50)
        ready = api.get("/readyz")
    assert ready.status_code == 200, ready.text  # still taking work
    (warning,) = ready.json()["warnings"]
    assert "% full" in warning
    assert "BATCHPRESS_RETENTION_DAYS" in warning
    run = batchpress("doctor", BATCHPRESS_DATA_DIR=str(small_volume))
    storage_line = next(line for line in run.stdout.splitlines() if " storage " in line and "writable" in line)
    assert "WARNING" in storage_line
    assert "% full" in storage_line


def test_a_full_volume_leaves_the_images_to_retry_and_loses_nothing(
    api: TestClient, context: Context, image_server: ImageServer, small_volume: Path
) -> None:
    urls = [image_server.add(f"/enospc/{n}.jpg", make_image("jpeg", 20 + n, (640, 480))) for n in range(3)]
    request_id = upload_inline(api, "S. No.,Product Name,Input Image Urls\n" + f'1,Shoe,"{",".join(urls)}"\n')
    # Outputs and the temporary files they are renamed from on the small volume; the database elsewhere.
    storage = LocalStorage(small_volume / "images", small_volume / "tmp", "http://127.0.0.1:8000/images")
    on_volume = replace(context, storage=storage)
    filler = fill(small_volume, leave=0)

    with pytest.raises(OSError, match="No space left on device"):
        process_inline(on_volume, uuid.UUID(request_id))
    with context.db.session(read_only=True) as session:
        states = list(session.scalars(select(Image.state).where(Image.request_id == uuid.UUID(request_id))))
    assert "failed" not in states  # waiting for another try, not failed for good
    assert api.get("/healthz").status_code == 200

    filler.unlink()  # the operator frees space
    with context.db.session() as session:  # the lease lapses, as it would after lease_seconds
        session.execute(update(Image).where(Image.request_id == uuid.UUID(request_id)).values(lease_until=utcnow()))
        requeue_expired(session, lease_seconds=60, max_attempts=5, pending=True)
    process_inline(on_volume, uuid.UUID(request_id))
    assert api.get(f"/api/status/{request_id}/").json()["status"] == "completed"
    with context.db.session(read_only=True) as session:
        keys = list(session.scalars(select(Image.output_key).where(Image.request_id == uuid.UUID(request_id))))
    assert len(keys) == 3
    assert all(key and storage.path_for(key).stat().st_size > 0 for key in keys)
