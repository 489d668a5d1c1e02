"""Write examples/demo/: the photos ``batchpress demo`` serves from a local origin, made once from scikit-image's
public-domain (CC0 / no known copyright) sample photos.

Run it with the dev dependencies (``.venv/bin/python scripts/demo_photos.py``) only to change the photos; nothing
imports it, and the demo itself needs only the committed files. The photos are read straight from the installed
skimage package with Pillow (``skimage.data`` fetchers may try the network), and written the way shops' photos
often come: JPEGs at quality 90-92, one progressive, one stored turned with an EXIF orientation; an unoptimised
PNG, and a cut-out product shot with an alpha channel. Each is well under 200 KB, all together under 1 MiB.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import skimage
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "examples" / "demo"
SOURCES = Path(skimage.__file__).parent / "data"
MAX_FILE, MAX_TOTAL = 200 * 1024, 1024 * 1024
ORIENTATION = 0x0112


def source(name: str) -> Image.Image:
    with Image.open(SOURCES / name) as im:
        return im.convert("RGB")


def jpeg(im: Image.Image, *, quality: int = 90, progressive: bool = False, orientation: int = 1) -> bytes:
    params: dict[str, object] = {"quality": quality, "progressive": progressive}
    if orientation != 1:
        # The pixels as a camera held upright stores them; Orientation tells viewers how to turn them back.
        im = im.transpose({6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation])
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        params["exif"] = exif
    out = BytesIO()
    im.save(out, "JPEG", **params)
    return out.getvalue()


def png(im: Image.Image) -> bytes:
    out = BytesIO()
    im.save(out, "PNG", compress_level=6)
    return out.getvalue()


def cut_out(im: Image.Image) -> Image.Image:
    """A product shot on a transparent background: an opaque ellipse with a soft edge, clear corners."""
    w, h = im.size
    y, x = np.ogrid[:h, :w]
    r = np.hypot((x - w / 2) / (w / 2), (y - h / 2) / (h / 2))
    alpha = (np.clip((1.0 - r) * 6.0, 0.0, 1.0) * 255).astype(np.uint8)
    rgba = im.convert("RGBA")
    rgba.putalpha(Image.fromarray(alpha, "L"))
    return rgba


def photos() -> dict[str, bytes]:
    astronaut = source("astronaut.png")
    coffee = source("coffee.png")
    return {
        # One product with three images: the photo, a portrait crop stored sideways (EXIF 6), a PNG detail.
        "astronaut.jpg": jpeg(astronaut, quality=90),
        "astronaut-portrait.jpg": jpeg(astronaut.crop((96, 0, 416, 400)), quality=92, orientation=6),
        "astronaut-detail.png": png(astronaut.crop((150, 30, 350, 230))),
        "chelsea.jpg": jpeg(source("chelsea.png"), quality=92, progressive=True),
        "coffee.png": png(cut_out(ImageOps.fit(coffee.crop((60, 0, 540, 400)), (240, 200), Image.Resampling.LANCZOS))),
        "coins.png": png(Image.open(SOURCES / "coins.png").convert("L")),
        "rocket.jpg": jpeg(source("rocket.jpg"), quality=90, orientation=8),
    }


def main() -> None:
    made = photos()
    for name, body in made.items():
        assert len(body) < MAX_FILE, f"{name} is {len(body)} bytes"
    assert sum(map(len, made.values())) < MAX_TOTAL
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for old in OUTPUT.glob("*"):
        if old.suffix in (".jpg", ".png") and old.name not in made:
            old.unlink()
    for name, body in made.items():
        (OUTPUT / name).write_bytes(body)
        with Image.open(BytesIO(body)) as im:
            print(f"{name:24} {len(body):>7} bytes  {im.format} {im.mode} {im.size[0]}x{im.size[1]}")
    print(f"{'total':24} {sum(map(len, made.values())):>7} bytes")


if __name__ == "__main__":
    main()
