"""Room left on the volume that holds local outputs: ``/readyz`` and ``doctor`` warn before a full disk stops every
image's store (which then waits, to be retried, rather than fail)."""

from __future__ import annotations

import shutil
from pathlib import Path

from batchpress.config import Settings

# Below this share of the volume free, it is nearly full.
NEARLY_FULL_FREE_SHARE = 0.10


def nearly_full(settings: Settings) -> str | None:
    """What to tell an operator when local storage's volume is nearly full; None when it is not, or outputs go to
    S3 (whose space is not ours to measure)."""
    if settings.storage != "local":
        return None
    path = _existing(settings.images_dir)
    usage = shutil.disk_usage(path)
    if usage.total == 0 or usage.free / usage.total >= NEARLY_FULL_FREE_SHARE:
        return None
    used = 100 * (usage.total - usage.free) / usage.total
    return (
        f"the volume of {settings.images_dir} is {used:.0f} % full ({usage.free / 2**20:,.0f} MiB free): free "
        "space, or set BATCHPRESS_RETENTION_DAYS lower"
    )


def _existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path
