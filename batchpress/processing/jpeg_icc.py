"""Write an ICC profile into a finished JPEG, for encoders that cannot take one."""

from __future__ import annotations

import struct

_ICC_MARKER = b"ICC_PROFILE\x00"
_ICC_CHUNK = 65_519  # an APP2 segment's 65,535 bytes less its length field, marker name and chunk numbers


def with_icc(jpeg: bytes, icc: bytes | None) -> bytes:
    """Insert ``icc`` as APP2 ICC_PROFILE segments after the SOI and JFIF markers, as Pillow writes it."""
    if not icc:
        return jpeg
    chunks = [icc[i : i + _ICC_CHUNK] for i in range(0, len(icc), _ICC_CHUNK)]
    segments = b"".join(
        b"\xff\xe2"
        + struct.pack(">H", 2 + len(_ICC_MARKER) + 2 + len(chunk))
        + _ICC_MARKER
        + bytes((number, len(chunks)))
        + chunk
        for number, chunk in enumerate(chunks, start=1)
    )
    at = 2 + (2 + int.from_bytes(jpeg[4:6], "big") if jpeg[2:4] == b"\xff\xe0" else 0)
    return jpeg[:at] + segments + jpeg[at:]
