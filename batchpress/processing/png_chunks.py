"""What no real image has, found from a PNG's chunk list before any decoder runs.

A file built to hurt can sit under every size and pixel limit: Pillow handles each chunk in Python, so a million
tiny text or private chunks cost it seconds and hundreds of megabytes, and it inflates every zTXt or iCCP chunk
up to 1 MB before looking at it, so 20,000 small ones cost it minutes. Walking the chunk list costs microseconds
per chunk: each chunk's length is read and its data skipped, nothing is inflated and no checksum is computed.
"""

from __future__ import annotations

import struct

from batchpress.processing.metadata_tally import MetadataTally

# Encoders split pixel data into IDAT chunks of 8 KiB (libpng) to 64 KiB (Pillow); a 25 MB photo needs ~3,200.
MAX_CHUNKS = 100_000
# Real images carry a handful of metadata chunks (text, ICC profile, EXIF, physical size, editor data).
MAX_METADATA_CHUNKS = 1000
# Pillow inflates each of these up to 1 MB (~5 ms); 64 is the count its own 64 MB text budget allows.
MAX_COMPRESSED_CHUNKS = 64

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEADER = struct.Struct(">I4s")
_MAX_LENGTH = 2**31 - 1  # the PNG specification's limit for a chunk's data
_NOT_METADATA = frozenset({b"IDAT", b"fdAT", b"fcTL", b"IEND"})  # pixels and APNG frames, counted only in total


def png_problem(data: bytes) -> str | None:
    """Why the PNG in ``data`` is refused unread, or None; a damaged chunk type ends Pillow's reading too."""
    if not data.startswith(_SIGNATURE) or len(data) < 16:
        return None
    if data[12:16] != b"IHDR":
        return "the PNG does not start with its IHDR header chunk"
    pos, size = len(_SIGNATURE), len(data)
    chunks = compressed = 0
    metadata = MetadataTally("PNG", "metadata chunks", MAX_METADATA_CHUNKS)
    while pos + 8 <= size:
        length, kind = _HEADER.unpack_from(data, pos)
        if not kind.replace(b"_", b"A").isalnum():  # Pillow reads any \w{4} chunk type and stops at others
            return None
        if length > _MAX_LENGTH:
            return f"truncated or corrupt PNG: its {kind.decode()} chunk claims {length} bytes, over the format's limit"
        start, pos = pos + 8, pos + 12 + length
        if start + length > size:
            return f"truncated or corrupt PNG: its {kind.decode()} chunk runs past the end of the file"
        if kind == b"IEND":
            return None
        chunks += 1
        if chunks > MAX_CHUNKS:
            return f"the PNG has more than {MAX_CHUNKS} chunks; no image needs that many"
        if kind in _NOT_METADATA:
            continue
        if problem := metadata.add(length):
            return problem
        if kind in (b"zTXt", b"iCCP") or (kind == b"iTXt" and _compressed_itxt(data, start, start + length)):
            compressed += 1
            if compressed > MAX_COMPRESSED_CHUNKS:
                return f"the PNG has more than {MAX_COMPRESSED_CHUNKS} compressed text or profile chunks"
    return None


def _compressed_itxt(data: bytes, start: int, end: int) -> bool:
    """Whether an iTXt chunk's compression flag is set; Pillow takes keywords of any length before it."""
    nul = data.find(b"\x00", start, end)
    return 0 <= nul < end - 1 and data[nul + 1] != 0
