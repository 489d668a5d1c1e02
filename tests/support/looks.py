"""How good an output looks, as a user would judge it: SSIMULACRA2 against the source as a browser shows it,
next to what Pillow writes at the same quality."""

from __future__ import annotations

from io import BytesIO

from PIL import Image, ImageOps

from benchmarks.ssimulacra2 import score


def shown(data: bytes) -> Image.Image:
    """Upright, CMYK turned RGB, alpha over white: what a product page shows; grey stays grey."""
    im = ImageOps.exif_transpose(Image.open(BytesIO(data)))
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return im if im.mode == "L" else im.convert("RGB")


def pillow_jpeg(im: Image.Image, quality: int) -> bytes:
    out = BytesIO()
    im.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def gap_to_pillow(source: bytes, output: bytes, quality: int = 50) -> float:
    """The output's score minus that of Pillow's JPEG of the same source at ``quality`` (positive: looks better)."""
    reference = shown(source)
    mode = reference.mode
    return score(reference, shown(output).convert(mode)) - score(
        reference, shown(pillow_jpeg(reference, quality)).convert(mode)
    )
