"""The window presigned S3 URLs are signed in (storage/s3.py), without boto3: the status cache keys on it too."""

from __future__ import annotations

import time

# URLs are signed as of the start of a window this long (or half their lifetime, if shorter): the same output has the
# same URL in every status read, from every API process, until the window turns, so browsers and CDNs can cache it.
PRESIGN_WINDOW_SECONDS = 6 * 3600


def window_seconds(presign_seconds: int) -> int:
    return min(PRESIGN_WINDOW_SECONDS, max(presign_seconds // 2, 1))


def window_start(presign_seconds: int, now: float | None = None) -> int:
    """The Unix time the current window began; a URL signed then is valid at least ``presign_seconds`` minus one
    window from now."""
    window = window_seconds(presign_seconds)
    return int(time.time() if now is None else now) // window * window
