"""A CMYK printer profile made at run time, for CMYK JPEGs that carry one as many on the web do.

No CMYK ICC profile ships on this machine (no ghostscript or colord profiles), and the press profiles photos
carry (SWOP, FOGRA) may not be redistributed, so this writes a small ICC v2 output profile of its own: a simple
ink model with 15 % dot gain and partial grey-component replacement, as 17-point ``lut16`` tables both ways
(CMYK -> Lab and Lab -> CMYK), the grid size of real press profiles. Decoding through it takes littlecms's real
4-D interpolation path, and ``to_cmyk`` separates sRGB pixels with the exact inverse of its model, so a file
decoded through the profile shows the photo it was made from.
"""

from __future__ import annotations

import functools
import struct

import numpy as np
from numpy.typing import NDArray
from PIL import Image

Floats = NDArray[np.float64]

GRID = 17
DOT_GAIN = 0.15  # at 50 % coverage: ink spreads, so a tone prints darker than its number
GCR = 0.7  # of the grey component printed with black instead of CMY
_D50 = np.array([0.9642, 1.0, 0.8249])
# sRGB's primaries adapted to D50 (Bradford), as ICC profiles use them.
_SRGB_TO_XYZ_D50 = np.array(
    [[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169], [0.0139322, 0.0971045, 0.7141733]]
)


def _gain(t: Floats) -> Floats:
    return t + 4 * DOT_GAIN * t * (1 - t)


def _ungain(t: Floats) -> Floats:
    """The inverse of ``_gain`` on [0, 1]: the smaller root of d t^2 - (1 + d) t + x = 0."""
    d = 4 * DOT_GAIN
    return ((1 + d) - np.sqrt((1 + d) ** 2 - 4 * d * t)) / (2 * d)


def _linear(srgb: Floats) -> Floats:
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _encoded(linear: Floats) -> Floats:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def _srgb_to_lab(srgb: Floats) -> Floats:
    xyz = _linear(srgb) @ _SRGB_TO_XYZ_D50.T / _D50
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def _lab_to_srgb(lab: Floats) -> Floats:
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _D50
    return _encoded(xyz @ np.linalg.inv(_SRGB_TO_XYZ_D50).T)


def _inked_to_srgb(inked: Floats) -> Floats:
    """Coverage after dot gain (c, m, y, k in [0, 1]) -> sRGB in [0, 1]: each ink takes away its share of light."""
    return (1 - inked[..., :3]) * (1 - inked[..., 3:4])


def _srgb_to_inked(srgb: Floats) -> Floats:
    """The exact inverse of ``_inked_to_srgb``, with ``GCR`` of the grey component moved to black."""
    srgb = np.clip(srgb, 0.0, 1.0)
    k = GCR * (1 - srgb.max(axis=-1, keepdims=True))
    cmy = 1 - srgb / np.maximum(1 - k, 1e-9)
    return np.concatenate([np.clip(cmy, 0.0, 1.0), k], axis=-1)


def to_cmyk(im: Image.Image) -> Image.Image:
    """An RGB image separated for this profile: what Photoshop's "convert to profile" would store."""
    srgb = np.asarray(im.convert("RGB"), dtype=np.float64) / 255
    cmyk = _ungain(_srgb_to_inked(srgb))
    return Image.fromarray(np.round(cmyk * 255).astype(np.uint8), "CMYK")


def _lab_v2(lab: Floats) -> NDArray[np.uint16]:
    """Lab in the ICC v2 16-bit PCS encoding: L 0-100 -> 0-0xFF00, a and b -128-128 -> 0-0xFFFF."""
    scaled = np.stack([lab[..., 0] * 652.8, (lab[..., 1] + 128) * 256, (lab[..., 2] + 128) * 256], axis=-1)
    return np.clip(np.round(scaled), 0, 65535).astype(np.uint16)


def _grid(channels: int) -> Floats:
    """Every grid node's coordinates in [0, 1], the first channel varying slowest, as lut16Type orders them."""
    axes = np.meshgrid(*[np.linspace(0.0, 1.0, GRID)] * channels, indexing="ij")
    return np.stack(axes, axis=-1).reshape(-1, channels)


def _lut16(in_curves: Floats, clut: NDArray[np.uint16], out_curves: Floats) -> bytes:
    """An ICC ``lut16Type`` (mft2): per-channel input curves, the grid, per-channel output curves."""
    inputs, outputs = in_curves.shape[0], out_curves.shape[0]
    identity = (65536, 0, 0, 0, 65536, 0, 0, 0, 65536)
    head = b"mft2" + bytes(4) + struct.pack(">BBBx9iHH", inputs, outputs, GRID, *identity, 256, 256)
    to16 = lambda a: np.clip(np.round(a * 65535), 0, 65535).astype(">u2").tobytes()  # noqa: E731
    return head + to16(in_curves) + clut.astype(">u2").tobytes() + to16(out_curves)


def _text_description(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(4 + 4 + 2 + 1 + 67)


def _tags() -> dict[bytes, bytes]:
    ramp = np.linspace(0.0, 1.0, 256)
    # CMYK -> Lab: dot gain in the input curves, so the grid only holds the (multilinear) ink mixing.
    a2b = _lab_v2(_srgb_to_lab(_inked_to_srgb(_grid(4))))
    a2b0 = _lut16(np.tile(_gain(ramp), (4, 1)), a2b, np.tile(ramp, (3, 1)))
    # Lab -> CMYK: the grid holds coverage after gain, the output curves take the gain back off.
    nodes = _grid(3) * np.array([100.0, 255.0, 255.0]) - np.array([0.0, 128.0, 128.0])
    b2a = np.round(_srgb_to_inked(_lab_to_srgb(nodes)) * 65535).astype(np.uint16)
    b2a0 = _lut16(np.tile(ramp, (3, 1)), b2a, np.tile(_ungain(ramp), (4, 1)))
    white = b"XYZ " + bytes(4) + struct.pack(">3i", *(round(v * 65536) for v in _D50))
    return {
        b"desc": _text_description("batchpress test CMYK (dot gain 15 %, GCR 70 %)"),
        b"cprt": b"text" + bytes(4) + b"No copyright, generated by tests/support/cmyk_icc.py\0",
        b"wtpt": white,
        b"A2B0": a2b0,
        b"B2A0": b2a0,
    }


@functools.cache
def cmyk_icc() -> bytes:
    """The profile's bytes (~0.55 MB, like press profiles embedded in web JPEGs)."""
    tags = _tags()
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for signature, data in tags.items():
        data += bytes(-len(data) % 4)
        table += struct.pack(">4sII", signature, offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = struct.pack(
        ">I4sI4s4s4s6H4s4sIII8sI3i4s16s28s",
        size,
        b"lcms",
        0x02100000,
        b"prtr",
        b"CMYK",
        b"Lab ",
        *(2026, 1, 1, 0, 0, 0),
        b"acsp",
        b"",
        0,
        0,
        0,
        bytes(8),
        0,
        *(round(v * 65536) for v in _D50),
        b"",
        bytes(16),
        bytes(28),
    )
    return header + table + body
