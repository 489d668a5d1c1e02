"""What no real photo has, found from a JPEG's markers before any decoder runs.

A file built to hurt can sit under every size and pixel limit: thousands of empty progressive scans cost libjpeg
minutes of decoding, and megabytes of tiny APP or COM segments cost Pillow minutes inside ``Image.open`` (it joins
the segments one by one). Walking the markers costs milliseconds: segment lengths are skipped, and each scan's
entropy-coded data is searched for its end in C.
"""

from __future__ import annotations

import re

from batchpress.processing.metadata_tally import MetadataTally

# Progressive encoders write about ten scans; libjpeg-turbo advises a scan limit in the hundreds for untrusted files.
MAX_SCANS = 500
# Real photos carry a handful of metadata segments (EXIF, XMP, ICC in a few chunks, Photoshop, Adobe).
MAX_METADATA_SEGMENTS = 1000

# The end of a scan's entropy-coded data: 0xFF followed by anything but a stuffed zero or a restart marker.
_END_OF_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_SOS, _EOI, _COM = 0xDA, 0xD9, 0xFE


def jpeg_problem(data: bytes) -> str | None:
    """Why the JPEG in ``data`` is refused unread, or None; a damaged file is left for the decoder to judge."""
    pos, size = 2, len(data)
    scans = 0
    metadata = MetadataTally("JPEG", "metadata segments", MAX_METADATA_SEGMENTS)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == _EOI:
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if (0xE0 <= marker <= 0xEF or marker == _COM) and (problem := metadata.add(length)):
            return problem
        pos += 2 + length
        if marker == _SOS:
            scans += 1
            if scans > MAX_SCANS:
                return f"the JPEG has more than {MAX_SCANS} scans; no photo needs that many"
            end = _END_OF_SCAN.search(data, pos)
            if end is None:
                return None
            pos = end.start()
    return None
