"""A still WebP decoded by libwebp straight into the memory the image keeps.

Pillow reads every WebP through libwebp's animation decoder: a canvas, a second canvas for the previous frame, a copy
of the frame handed to Python and the image decoded from that copy, 16 bytes a pixel (800 MB at 50 MP). A still
image needs none of that: ``WebPDecodeRGBAInto`` writes its pixels into one buffer of 4 bytes a pixel that the
image then shares. It is Pillow's own libwebp (the wheel bundles it); where it cannot be found, Pillow decodes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path

import PIL
from PIL import Image


@functools.cache
def _libwebp() -> ctypes.CDLL | None:
    bundled = sorted((Path(PIL.__file__).parent.parent / "pillow.libs").glob("libwebp-*.so*"))
    name = str(bundled[0]) if bundled else ctypes.util.find_library("webp")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    decode = lib.WebPDecodeRGBAInto
    decode.restype = ctypes.c_void_p
    decode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return lib


def decode_still_webp(opened: Image.Image, data: bytes) -> Image.Image | None:
    """The pixels of a one-frame WebP as Pillow's decoder gives them (mode and metadata too), or None to let it."""
    lib = _libwebp()
    if lib is None or getattr(opened, "n_frames", 1) != 1 or opened.mode not in ("RGB", "RGBA"):
        return None
    width, height = opened.size
    pixels = bytearray(width * height * 4)
    target = (ctypes.c_uint8 * len(pixels)).from_buffer(pixels)
    if not lib.WebPDecodeRGBAInto(data, len(data), target, len(pixels), width * 4):
        return None  # Pillow's decoder then says what is wrong
    del target
    rgba = Image.frombuffer("RGBA", (width, height), pixels, "raw", "RGBA", 0, 1)
    im = rgba.convert("RGB") if opened.mode == "RGB" else rgba
    im.info = dict(opened.info)
    return im
