"""What no real GIF has, found from the blocks before its first image before any decoder runs.

Pillow reads a GIF's extension blocks in Python one sub-block at a time, and skips stray bytes between blocks one
at a time: millions of one-byte comment sub-blocks cost it seconds and hundreds of megabytes, 20 MB of stray
bytes cost it three seconds. We keep only the first frame and Pillow reads nothing past it, so only the blocks
before it are walked; sub-block lengths are skipped and stray bytes are searched over in C.
"""

from __future__ import annotations

import re

from batchpress.processing.metadata_tally import MetadataTally

# Real GIFs carry a few extensions (loop count, graphic control, comment, XMP) before their first image.
MAX_EXTENSIONS = 1000
# A comment is split into 255-byte sub-blocks; an XMP packet is read as sub-blocks of ~80 bytes each.
MAX_SUB_BLOCKS = 100_000
# Encoders write no bytes between blocks; Pillow tolerates a few in a damaged file.
MAX_STRAY_BYTES = 1024 * 1024

_EXTENSION, _IMAGE, _TRAILER = 0x21, 0x2C, 0x3B
_NEXT_BLOCK = re.compile(rb"[!,;]")


def gif_problem(data: bytes) -> str | None:
    """Why the GIF in ``data`` is refused unread, or None; a damaged file is left for the decoder to judge."""
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    flags = data[10]
    pos, size = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0), len(data)
    extensions = stray = 0
    metadata = MetadataTally("GIF", "metadata sub-blocks", MAX_SUB_BLOCKS)
    while pos < size:
        introducer = data[pos]
        if introducer in (_IMAGE, _TRAILER):
            return None
        if introducer != _EXTENSION:
            window = min(size, pos + MAX_STRAY_BYTES - stray + 1)
            found = _NEXT_BLOCK.search(data, pos, window)
            end = found.start() if found else window
            stray += end - pos
            if stray > MAX_STRAY_BYTES:
                return f"the GIF has more than {MAX_STRAY_BYTES // 2**20} MB of stray bytes between its blocks"
            pos = end
            continue
        extensions += 1
        if extensions > MAX_EXTENSIONS:
            return f"the GIF has more than {MAX_EXTENSIONS} extension blocks before its first image"
        pos += 2  # introducer and label
        while pos < size and (length := data[pos]):
            if problem := metadata.add(length):
                return problem
            pos += 1 + length
        pos += 1  # the empty sub-block that ends the extension
    return None
