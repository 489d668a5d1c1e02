"""What hostile PNG, GIF and WebP files cost Pillow, and what the structural checks cost to refuse them.

Each file is built in memory, written to a temporary file and opened (``Image.open`` + ``load()``) in a fresh
child process, so its time and peak memory (``VmHWM``, reset after the file is read) are its own; a case that runs
past ``--timeout`` is reported as such. The check is timed in this process, median of 9.
``python -m benchmarks.hostile_images [--only png gif webp] [--timeout 300]``; results go to docs/security.md.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image

from batchpress.processing.gif_blocks import gif_problem
from batchpress.processing.png_chunks import png_problem
from tests.support.photos import make_image, photo

_CHILD = r"""
import io, sys, time, warnings
from PIL import Image

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")

data = open(sys.argv[1], "rb").read()
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # resets the peak, so the file's own bytes in memory are the baseline
before = peak_mb()
started = time.perf_counter()
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data), formats=[sys.argv[2]]) as im:
            im.load()
    outcome = "decoded"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {str(exc)[:60]}"
print(f"{time.perf_counter() - started:.3f}\t{peak_mb() - before:.0f}\t{outcome}")
"""


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def _png_cases() -> Iterator[tuple[str, bytes]]:
    png = make_image("png", 1, (64, 64))
    idat, iend = png.index(b"IDAT") - 4, png.rindex(b"IEND") - 4

    def before_idat(extra: bytes) -> bytes:
        return png[:idat] + extra + png[idat:]

    bomb = zlib.compress(bytes(2**20 - 64), 9)
    out = io.BytesIO()
    photo(0, (2900, 2900)).save(out, "PNG", compress_level=0)
    yield "real: 24 MB PNG (level 0), 64 KiB IDATs", out.getvalue()
    yield "1,000,000 tEXt 'a\\0' before IDAT", before_idat(png_chunk(b"tEXt", b"a\x00") * 1_000_000)
    yield "1,500,000 empty private chunks", before_idat(png_chunk(b"prIv", b"") * 1_500_000)
    yield "2,000,000 empty IDATs after the pixels", png[:iend] + png_chunk(b"IDAT", b"") * 2_000_000 + png[iend:]
    yield "20,000 keyless zTXt inflating to 1 MB", before_idat(png_chunk(b"zTXt", b"\x00\x00" + bomb) * 20_000)
    yield "20,000 iCCP inflating to 1 MB", before_idat(png_chunk(b"iCCP", b"p\x00\x00" + bomb) * 20_000)
    yield "20,000 zTXt with a key (Pillow's text budget)", before_idat(png_chunk(b"zTXt", b"k\x00\x00" + bomb) * 20_000)
    yield "20 private chunks of 1 MB", before_idat(png_chunk(b"prIv", bytes(2**20)) * 20)
    yield "APNG, 300,000 1x1 frames after the first", _apng(png, 300_000)


def _apng(png: bytes, frames: int) -> bytes:
    def fctl(seq: int, side: int) -> bytes:
        size = side.to_bytes(4, "big") * 2
        return png_chunk(b"fcTL", seq.to_bytes(4, "big") + size + bytes(8) + b"\x00\x01\x00\x0a\x00\x00")

    pixels = zlib.compress(b"\x00\x00\x00\x00")
    rest = b"".join(
        fctl(1 + 2 * k, 1) + png_chunk(b"fdAT", (2 + 2 * k).to_bytes(4, "big") + pixels) for k in range(frames)
    )
    actl = png_chunk(b"acTL", (frames + 1).to_bytes(4, "big") + bytes(4))
    idat, iend = png.index(b"IDAT") - 4, png.rindex(b"IEND") - 4
    return png[:33] + actl + png[33:idat] + fctl(0, 64) + png[idat:iend] + rest + png[iend:]


def _gif_cases() -> Iterator[tuple[str, bytes]]:
    gif = make_image("gif", 1, (64, 64))
    at = 13 + (3 << ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)

    def before_image(extra: bytes) -> bytes:
        return gif[:at] + extra + gif[at:]

    yield "real: 1 MP animated GIF, 3 frames", make_image("animated_gif", 1, (1000, 1000))
    yield "5,000,000 one-byte comments", before_image(b"!\xfe\x01x\x00" * 5_000_000)
    yield "one comment in 8,000,000 sub-blocks", before_image(b"!\xfe" + b"\x01x" * 8_000_000 + b"\x00")
    yield "3,000,000 graphic control extensions", before_image(b"!\xf9\x04\x00\x00\x00\x00\x00" * 3_000_000)
    yield "20 MB of stray bytes", before_image(bytes(20_000_000))
    frame = b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00"
    yield "1,500,000 1x1 frames after the first", gif[:-1] + frame * 1_500_000 + b";"


def _riff(chunks: list[bytes]) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, found = 12, []
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        found.append((data[pos : pos + 4], data[pos : pos + 8 + length + (length & 1)]))
        pos += 8 + length + (length & 1)
    return found


def _webp_cases() -> Iterator[tuple[str, bytes]]:
    animated = _riff_chunks(make_image("animated_webp", 1, (64, 64)))
    head = [c for kind, c in animated if kind != b"ANMF"]
    first = next(c for kind, c in animated if kind == b"ANMF")
    out = io.BytesIO()
    one = Image.new("RGB", (1, 1))
    one.save(out, "WEBP", save_all=True, append_images=[Image.new("RGB", (1, 1), "red")], duration=10, lossless=True)
    tiny = next(c for kind, c in _riff_chunks(out.getvalue()) if kind == b"ANMF")
    yield "real: 12 MP WebP", make_image("webp", 1, (4000, 3000))
    yield f"{25 * 2**20 // len(tiny):,} 1x1 ANMF frames", _riff([*head, first, *[tiny] * (25 * 2**20 // len(tiny))])
    unknown = b"ABCD\x00\x00\x00\x00"
    yield "animation + 3,000,000 unknown chunks", _riff([*head, first, *[unknown] * 3_000_000])
    still = _riff_chunks(make_image("webp", 1, (64, 64)))[0][1]
    vp8x = b"VP8X\x0a\x00\x00\x00\x08\x00\x00\x00" + (63).to_bytes(3, "little") * 2
    exif = b"EXIF" + (20 * 2**20 + 6).to_bytes(4, "little") + b"Exif\x00\x00" + bytes(20 * 2**20)
    yield "still + 20 MB EXIF", _riff([vp8x, still, exif])


_FORMATS: dict[str, tuple[str, Callable[[], Iterator[tuple[str, bytes]]], Callable[[bytes], str | None] | None]] = {
    "png": ("PNG", _png_cases, png_problem),
    "gif": ("GIF", _gif_cases, gif_problem),
    "webp": ("WEBP", _webp_cases, None),
}


def _pillow(data: bytes, fmt: str, timeout: float) -> tuple[str, str, str]:
    with tempfile.NamedTemporaryFile(suffix=".bin") as file:
        Path(file.name).write_bytes(data)
        try:
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, file.name, fmt], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return f"> {timeout:.0f}", "", "timed out"
    seconds, peak, outcome = (done.stdout.strip() or f"nan\tnan\t{done.stderr.strip()[-60:]}").split("\t")
    return seconds, peak, outcome


def _check(check: Callable[[bytes], str | None], data: bytes) -> tuple[float, str | None]:
    times = []
    for _ in range(9):
        started = time.perf_counter()
        problem = check(data)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, problem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(_FORMATS), default=list(_FORMATS))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds Pillow may take per file")
    args = parser.parse_args()
    print(
        "| file | MiB | Pillow open + load (s) | Pillow peak (+MB) | Pillow's outcome | check (ms) | check's answer |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.only:
        fmt, cases, check = _FORMATS[name]
        for case, data in cases():
            seconds, peak, outcome = _pillow(data, fmt, args.timeout)
            if check is None:
                took, answer = "", "(no check)"
            else:
                ms, problem = _check(check, data)
                took, answer = f"{ms:.3f}", problem or "passes"
            size = len(data) / 2**20
            print(f"| {fmt} {case} | {size:.1f} | {seconds} | {peak} | {outcome} | {took} | {answer} |", flush=True)


if __name__ == "__main__":
    main()
