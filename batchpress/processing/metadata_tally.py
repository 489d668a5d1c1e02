"""The count the structural checks (``jpeg_markers``, ``png_chunks``, ``gif_blocks``) keep of a file's metadata:
how many pieces it comes in and how many bytes they hold, each against a cap no real image reaches."""

from __future__ import annotations

from dataclasses import dataclass

# Real images carry kilobytes of metadata, an ICC profile or an embedded thumbnail at most a few hundred.
MAX_METADATA_BYTES = 16 * 1024 * 1024


@dataclass
class MetadataTally:
    format: str  # "JPEG", "PNG", "GIF"
    pieces: str  # what a piece is called in the reason: "metadata segments"
    max_pieces: int
    count: int = 0
    total: int = 0

    def add(self, length: int) -> str | None:
        """Count one piece of ``length`` bytes; the reason once a cap is passed, else None."""
        self.count += 1
        self.total += length
        if self.count > self.max_pieces:
            return f"the {self.format} has more than {self.max_pieces} {self.pieces}; no image needs that many"
        if self.total > MAX_METADATA_BYTES:
            return f"the {self.format} carries more than {MAX_METADATA_BYTES // 2**20} MB of metadata"
        return None
