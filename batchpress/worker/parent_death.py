from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies, so a ``kill -9`` leaves no orphan."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except OSError:  # not Linux: orphans become possible, nothing else changes
        log.debug("prctl unavailable; this process will not follow its parent's death")
