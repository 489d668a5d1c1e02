"""Tell what a downloaded body is from its first bytes.

URLs and Content-Type headers lie (CDNs serve HTML error pages with 200 and ``image/jpeg``), so the decision
of which decoder may touch the bytes is made here, from magic numbers only.
"""

from __future__ import annotations

from typing import Literal

ImageType = Literal["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"]

# Sizes of the BMP info headers that exist in the wild (OS/2 1.x, Windows 3 through 5); checking it keeps a
# text body that happens to start with "BM" from being handed to the BMP decoder.
_BMP_INFO_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

# Other formats a product feed may point at, named so the user learns why the image was refused.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "PDF document"),
    (b"\x1f\x8b", "gzip archive"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x00\x00\x01\x00", "ICO icon"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "JPEG 2000 image"),
    (b"\xff\x0a", "JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL image"),
    (b"8BPS", "Photoshop document"),
)
_ISO_BMFF_BRANDS: dict[bytes, str] = {
    b"avif": "AVIF image",
    b"avis": "AVIF image",
    b"heic": "HEIC image",
    b"heix": "HEIC image",
    b"mif1": "HEIF image",
    b"msf1": "HEIF image",
}


def sniff(data: bytes) -> ImageType | None:
    """Return the image type the bytes start like, or None when they are not an image we decode."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:2] == b"BM" and len(data) >= 18 and int.from_bytes(data[14:18], "little") in _BMP_INFO_HEADER_SIZES:
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    return None


def describe(data: bytes) -> str:
    """Name what a non-image body most likely is, briefly, for an error message the user will read.

    Falls back to the first bytes in hex so a support request still says something concrete.
    """
    if not data:
        return "empty body"
    kind = sniff(data)
    if kind is not None:
        return f"{kind} image"
    for signature, name in _OTHER_SIGNATURES:
        if data.startswith(signature):
            return name
    if data[4:8] == b"ftyp" and data[8:12] in _ISO_BMFF_BRANDS:
        return _ISO_BMFF_BRANDS[data[8:12]]
    return _describe_text(data[:1024]) or f"unknown bytes {data[:8].hex()}…"


def _describe_text(head: bytes) -> str | None:
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return "HTML document"
    if b"<svg" in text:
        return "SVG image"
    if text.startswith(b"<"):
        return "XML document"
    if text.startswith((b"{", b"[")):
        return "JSON document"
    if text and all(byte in b"\t\n\r" or 32 <= byte < 127 for byte in text[:256]):
        return "plain text"
    return None
