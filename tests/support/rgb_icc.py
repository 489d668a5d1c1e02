"""A wide-gamut RGB profile made at run time, for photos tagged with one (Adobe RGB and Display P3 are common on
the web): an ICC v2 matrix/TRC display profile with Adobe RGB (1998)'s primaries and gamma 2.2, not the licensed
profile itself. littlecms reads it as it reads the real ones."""

from __future__ import annotations

import functools
import struct

# Adobe RGB (1998)'s primaries adapted to D50 (Bradford), as ICC profiles store them, and D50 itself.
_PRIMARIES = {
    b"rXYZ": (0.6097, 0.3111, 0.0195),
    b"gXYZ": (0.2053, 0.6257, 0.0609),
    b"bXYZ": (0.1492, 0.0632, 0.7446),
}
_D50 = (0.9642, 1.0, 0.8249)
_GAMMA = 563 / 256  # Adobe RGB's 2.2 as the u8Fixed8 it is stored as
DESCRIPTION = "batchpress test wide-gamut RGB"


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(values: tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in values)


def _desc(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * 4 + b"\0" * 4 + b"\0" * 70


@functools.cache
def wide_gamut_icc() -> bytes:
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(_GAMMA * 256)) + b"\0\0"
    tags = [(b"desc", _desc(DESCRIPTION)), (b"wtpt", _xyz(_D50)), (b"cprt", b"text\0\0\0\0public domain\0")]
    tags += [(sig, _xyz(xyz)) for sig, xyz in _PRIMARIES.items()]
    tags += [(sig, curve) for sig in (b"rTRC", b"gTRC", b"bTRC")]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)  # perceptual intent
        + b"".join(_s15(v) for v in _D50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body
