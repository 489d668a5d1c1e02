"""How close an encoded image looks to its source: SSIMULACRA2 of both as a browser shows them.

A browser applies the EXIF orientation, colour-manages through an embedded ICC profile (a CMYK JPEG without one
is shown by plain conversion) and draws transparency over the page, white on a product page. Both images are
turned into those pixels (``displayed``) before ``benchmarks.ssimulacra2.score`` compares them, so a sideways,
miscoloured or badly composited output costs points however close its raw samples are.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageCms, ImageOps

from benchmarks.ssimulacra2 import score

_SRGB = ImageCms.createProfile("sRGB")
_PROFILE_SPACES = {b"RGB ": "RGB", b"CMYK": "CMYK", b"GRAY": "L"}


def displayed(data: bytes) -> Image.Image:
    """The pixels a browser shows for an encoded image: upright, sRGB (or grey), over white; RGB or L."""
    with Image.open(BytesIO(data)) as opened:
        opened.load()
        icc = opened.info.get("icc_profile") or None
        im = ImageOps.exif_transpose(opened)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    elif im.mode not in ("RGB", "L", "CMYK"):
        im = im.convert("RGB")
    if isinstance(icc, bytes) and _PROFILE_SPACES.get(icc[16:20]) == im.mode:
        try:
            profile = ImageCms.ImageCmsProfile(BytesIO(icc))
            return ImageCms.profileToProfile(im, profile, _SRGB, outputMode="RGB" if im.mode != "L" else "L")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a browser ignores a profile it cannot read
    return im.convert("RGB") if im.mode == "CMYK" else im


def score_bytes(source: bytes, output: bytes) -> float:
    """SSIMULACRA2 of ``output`` against ``source``, both as displayed: 100 for the same picture, lower is worse."""
    return score(displayed(source), displayed(output))


@dataclass(frozen=True)
class Scores:
    """Scores of one encoder's outputs over a set of images."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def p10(self) -> float:
        """The 10th percentile: the score nine images in ten beat."""
        if len(self.values) < 2:
            return self.values[0]
        return statistics.quantiles(self.values, n=10, method="inclusive")[0]
